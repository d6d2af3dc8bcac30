import { createHash } from 'node:crypto';
import { errors as joseErrors, createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import * as client from 'openid-client';
import { AppError } from '../../platform/errors.js';
import type { ProviderSettings } from './provider-settings.js';

/** How long a provider's JWKS is kept (jose refetches sooner for a key it does not know, at most every 30 s). */
const JWKS_MAX_AGE_MS = 10 * 60_000;
/** Clock difference tolerated on an ID token's `exp`, `iat` and `nbf` (openid-client's default too). */
export const ID_TOKEN_SKEW_SECONDS = 30;
/** Seconds a client is told to wait (`Retry-After`) when the provider does not answer. */
const RETRY_AFTER_SECONDS = 5;

/** An ID token's claims, once every check passed. */
export type IdTokenClaims = JWTPayload & {
  sub: string;
  nonce?: unknown;
  email?: unknown;
  email_verified?: unknown;
  name?: unknown;
  preferred_username?: unknown;
};

export interface ProviderClientOptions {
  settings: ProviderSettings;
  /** `identity.providerTimeoutMs`: every request to the provider is bounded by it. */
  timeoutMs: number;
}

/**
 * The relying party towards one provider, on openid-client: its discovery document (fetched once
 * per process and kept; a failed discovery is not kept, so the next sign-in tries again), the
 * authorization URL, the code exchange with every ID-token check (signature through the
 * provider's JWKS — openid-client's non-repudiation checks — `iss`, `aud`, `azp`, `exp`, `iat`,
 * nonce, PKCE, state, RFC 9207 `iss`), and the native ID-token check. `http` issuers are allowed
 * on loopback hosts only (development, tests); every other issuer must be `https`.
 */
export class ProviderClient {
  private configuration: Promise<client.Configuration> | undefined;
  private jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  constructor(private readonly opts: ProviderClientOptions) {}

  get settings(): ProviderSettings {
    return this.opts.settings;
  }

  /** The discovered configuration; `provider_unavailable` / `provider_error` when discovery fails. */
  config(): Promise<client.Configuration> {
    this.configuration ??= this.discover().catch((err: unknown) => {
      this.configuration = undefined;
      throw this.failure(err, 'discovery');
    });
    return this.configuration;
  }

  async authorizationUrl(params: { redirectUri: string; state: string; nonce: string; codeChallenge: string }): Promise<URL> {
    return client.buildAuthorizationUrl(await this.config(), {
      redirect_uri: params.redirectUri,
      scope: this.opts.settings.scopes.join(' '),
      response_type: 'code',
      state: params.state,
      nonce: params.nonce,
      code_challenge: params.codeChallenge,
      code_challenge_method: 'S256',
    });
  }

  /**
   * The code exchange of a callback whose state opened: `callbackUrl` is the redirect URI the
   * flow started with plus the callback's query (openid-client sends that redirect URI again).
   */
  async exchange(callbackUrl: URL, checks: { state: string; nonce: string; pkceVerifier: string }): Promise<IdTokenClaims> {
    const config = await this.config();
    try {
      const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        pkceCodeVerifier: checks.pkceVerifier,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      if (!claims) throw new AppError('invalid_id_token', `${this.name} sent no ID token`);
      return claims;
    } catch (err) {
      throw this.failure(err, 'exchange');
    }
  }

  /**
   * A native app's ID token (docs/api.md#native-apps): signed by a key of the provider's JWKS,
   * issued by its issuer, for this client (`aud` includes the client id; `azp` is it when there
   * are several audiences), unexpired (30 s of skew), and carrying the app's nonce — the nonce
   * itself, or its SHA-256 in hex (what Sign in with Apple and Google's iOS SDK put in the token
   * when the app hashed the nonce it sent).
   */
  async verifyIdToken(idToken: string, nonce: string): Promise<IdTokenClaims> {
    const config = await this.config();
    const metadata = config.serverMetadata();
    try {
      this.jwks ??= createRemoteJWKSet(new URL(metadata.jwks_uri!), { timeoutDuration: this.opts.timeoutMs, cacheMaxAge: JWKS_MAX_AGE_MS });
      const { payload } = await jwtVerify(idToken, this.jwks, {
        issuer: metadata.issuer,
        audience: this.opts.settings.clientId,
        clockTolerance: ID_TOKEN_SKEW_SECONDS,
        requiredClaims: ['sub', 'exp', 'iat'],
      });
      if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload['azp'] !== this.opts.settings.clientId) {
        throw new AppError('invalid_id_token', 'the ID token has several audiences and its azp is not this client');
      }
      const hashed = createHash('sha256').update(nonce, 'utf8').digest('hex');
      if (payload['nonce'] !== nonce && payload['nonce'] !== hashed) throw new AppError('invalid_id_token', "the ID token's nonce is not the one given");
      return payload as IdTokenClaims;
    } catch (err) {
      throw this.failure(err, 'id-token');
    }
  }

  private get name(): string {
    return this.opts.settings.displayName;
  }

  private async discover(): Promise<client.Configuration> {
    const { issuer, clientId, clientSecret } = this.opts.settings;
    const url = new URL(issuer);
    const insecure = url.protocol === 'http:';
    if (insecure && !isLoopback(url.hostname)) {
      throw new AppError('bad_config', `identity.providers: the issuer of "${this.opts.settings.id}" must be https (http only on a loopback host)`);
    }
    return client.discovery(url, clientId, clientSecret, clientSecret ? client.ClientSecretPost(clientSecret) : client.None(), {
      timeout: this.opts.timeoutMs / 1000,
      execute: [...(insecure ? [client.allowInsecureRequests] : []), client.enableNonRepudiationChecks],
    });
  }

  /** The problem a failure talking to the provider (or a failed check of what it sent) becomes. */
  private failure(err: unknown, during: 'discovery' | 'exchange' | 'id-token'): AppError {
    if (err instanceof AppError) return err;
    const cause = { cause: err };
    if (isTimeout(err)) {
      return new AppError('provider_unavailable', `${this.name} did not answer within ${this.opts.timeoutMs} ms`, {
        ...cause,
        retryAfter: RETRY_AFTER_SECONDS,
      });
    }
    if (isUnreachable(err)) return new AppError('provider_unavailable', `${this.name} cannot be reached`, { ...cause, retryAfter: RETRY_AFTER_SECONDS });
    if (err instanceof client.ResponseBodyError) {
      return new AppError('provider_error', `${this.name} refused the code exchange (${safeToken(err.error)})`, cause);
    }
    if (during === 'discovery')
      return new AppError('provider_error', `${this.name}'s discovery document is not an OpenID Provider's for ${this.opts.settings.issuer}`, cause);
    const idTokenProblem = idTokenFailure(err);
    if (idTokenProblem) return new AppError('invalid_id_token', `the ID token is not valid: ${idTokenProblem}`, cause);
    return new AppError('provider_error', `${this.name} answered, but not as OpenID Connect says`, cause);
  }
}

/** What check an ID token failed, when the error is one of openid-client's or jose's ID-token checks. */
function idTokenFailure(err: unknown): string | undefined {
  if (err instanceof joseErrors.JWTExpired) return 'it has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `its "${err.claim}" claim is wrong`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed || err instanceof joseErrors.JWKSNoMatchingKey)
    return "its signature is not by a key of the provider's";
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JOSEAlgNotAllowed) return 'it is malformed';
  if (err instanceof joseErrors.JWKSInvalid) return undefined;
  if (err instanceof client.ClientError) {
    const code = err.code ?? '';
    const claim = (err.cause as { claim?: unknown } | undefined)?.claim;
    if (code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED') return typeof claim === 'string' ? `its "${claim}" is out of range (expired?)` : 'it has expired';
    if (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED') return typeof claim === 'string' ? `its "${claim}" claim is wrong` : 'a claim is wrong';
    if (code === 'OAUTH_KEY_SELECTION_FAILED') return "its signing key is not in the provider's JWKS";
    if (/signature/i.test(err.message) || /signature/i.test((err.cause as Error | undefined)?.message ?? ''))
      return "its signature is not by a key of the provider's";
  }
  return undefined;
}

function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = err; e !== undefined && e !== null && chain.length < 8; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}

function isTimeout(err: unknown): boolean {
  return causes(err).some(
    (e) =>
      e instanceof joseErrors.JWKSTimeout ||
      (e instanceof client.ClientError && e.code === 'OAUTH_TIMEOUT') ||
      (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError')) ||
      (e as { code?: unknown }).code === 'UND_ERR_CONNECT_TIMEOUT',
  );
}

/** A refused, reset or unresolvable connection (undici's `fetch failed` and its system error). */
function isUnreachable(err: unknown): boolean {
  return causes(err).some((e) => {
    const code = (e as { code?: unknown }).code;
    return (
      typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|UND_ERR_SOCKET|UND_ERR_CLOSED)$/.test(code)
    );
  });
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** An OAuth error code as a provider sent it, safe to repeat (RFC 6749 §5.2's character set, bounded). */
export function safeToken(value: unknown): string {
  return typeof value === 'string' && /^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$/.test(value) ? value : 'error';
}
