import { createHash } from 'node:crypto';
import * as client from 'openid-client';
import type { Config } from '../../config/schema.js';
import type { ProviderIdentity } from '../../model/identity.js';
import type { UserRecord } from '../../model/user.js';
import { AppError, isAppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { AuthService, SignInResult } from '../auth/auth-service.js';
import type { ClientMeta } from '../sessions/session-service.js';
import type { Telemetry } from '../telemetry.js';
import type { AccessTokens } from '../tokens/access-tokens.js';
import { normalizeEmail } from '../users/email.js';
import type { UserService } from '../users/user-service.js';
import type { Executor } from '../../store/pg/db.js';
import type { MfaTokenUsesRepo } from '../../store/pg/mfa-token-uses-repo.js';
import type { Clock } from '../../platform/clock.js';
import { CODE_CHALLENGE, FlowSeals, type OidcPurpose } from './flow-seals.js';
import { assertActive, type IdentityAccounts } from './identity-accounts.js';
import { ID_TOKEN_SKEW_SECONDS, ProviderClient, safeToken, type IdTokenClaims } from './provider-client.js';
import { providerSettings, type ProviderSettings } from './provider-settings.js';
import { RedirectAllowList } from './redirect-urls.js';

export type { OidcPurpose } from './flow-seals.js';

/** `GET …/authorize`'s input, checked by the route. */
export interface AuthorizeRequest {
  provider: string;
  redirectTo: string;
  /** The app's PKCE challenge (S256): the one-time code is redeemed with its verifier. */
  codeChallenge: string;
  purpose: OidcPurpose;
  /** The signed-in user, for `link`. */
  userId?: string;
}

/** What discovery found for a provider. */
export interface ProviderEndpoints {
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  jwksUri: string;
  userinfoEndpoint: string | undefined;
  /** The redirect URI to register at the provider: `<publicUrl>/v1/auth/oidc/<id>/callback`. */
  redirectUri: string;
}

export interface OidcFlowsOptions {
  config: Pick<Config, 'identity' | 'publicUrl' | 'tokens'>;
  /** Sealing keys (`ServerSecrets.macKeys`) of the flow state and of the one-time codes; absent without a server secret. */
  stateKeys: Buffer[] | undefined;
  codeKeys: Buffer[] | undefined;
  uses: MfaTokenUsesRepo;
  identities: Pick<IdentityAccounts, 'signInWith'>;
  auth: Pick<AuthService, 'signIn'>;
  users: Pick<UserService, 'get'>;
  accessTokens: Pick<AccessTokens, 'assertCanSign'>;
  clock: Clock;
  region: string;
  telemetry: Telemetry;
  log: Logger;
}

/** The longest ID token and nonce taken from a native app (Google's are ~1 KiB). */
const ID_TOKEN_MAX_LENGTH = 16_384;
const NONCE_MAX_LENGTH = 512;

/**
 * The relying-party side of sign-in through OpenID Connect providers (README "Sign in with Google
 * and other providers"): discovery, the sealed flow state, the callback, the one-time code and
 * the native ID-token sign-in. Built on openid-client.
 *
 * Where a failure is answered: before the state has opened (an unknown provider, a `redirect_to`
 * not allowed, a missing or bad state) the answer is a problem, never a redirect — the
 * `redirect_to` is not trusted yet. Once the callback's state has opened, every failure goes back
 * to the app as `redirect_to?error=<code>&error_description=<detail>`, and no account is
 * created or changed.
 */
export class OidcFlows {
  private readonly settings: ProviderSettings[];
  private readonly clients = new Map<string, ProviderClient>();
  private readonly redirects: RedirectAllowList;
  private readonly seals: FlowSeals;

  constructor(private readonly opts: OidcFlowsOptions) {
    const { identity } = opts.config;
    this.settings = providerSettings(opts.config);
    for (const settings of this.settings) this.clients.set(settings.id, new ProviderClient({ settings, timeoutMs: identity.providerTimeoutMs }));
    this.redirects = new RedirectAllowList(identity.redirectUrls);
    this.seals = new FlowSeals({
      stateKeys: opts.stateKeys,
      codeKeys: opts.codeKeys,
      uses: opts.uses,
      clock: opts.clock,
      region: opts.region,
      flowTtlSeconds: identity.providerFlowTtl,
    });
  }

  /** The configured providers, presets applied. */
  providers(): ProviderSettings[] {
    return this.settings;
  }

  /**
   * The provider's discovery document as the relying party uses it (`authctl providers check`):
   * `provider_unavailable` when it does not answer in time, `provider_error` when its answer is not
   * an OpenID Provider's for the configured issuer.
   */
  async discover(provider: string): Promise<ProviderEndpoints> {
    const rp = this.client(provider);
    const metadata = (await rp.config()).serverMetadata();
    return {
      issuer: metadata.issuer,
      authorizationEndpoint: metadata.authorization_endpoint ?? '',
      tokenEndpoint: metadata.token_endpoint ?? '',
      jwksUri: metadata.jwks_uri ?? '',
      userinfoEndpoint: metadata.userinfo_endpoint,
      redirectUri: this.redirectUri(provider),
    };
  }

  /**
   * The provider's authorization URL to send the browser to: `redirect_to` allowed
   * (`redirect_not_allowed`), the app's S256 challenge well-formed (`invalid_request`), then
   * authctl's own state (sealed: it carries everything the callback needs, in any region), nonce
   * and PKCE towards the provider.
   */
  async authorize(request: AuthorizeRequest): Promise<URL> {
    const rp = this.client(request.provider);
    const redirectTo = this.redirects.check(request.redirectTo);
    if (!CODE_CHALLENGE.test(request.codeChallenge)) {
      throw new AppError('invalid_request', 'code_challenge must be the base64url SHA-256 of a PKCE verifier (43 characters, S256)', {
        errors: [{ path: 'code_challenge', message: 'must be 43 base64url characters' }],
      });
    }
    const pkceVerifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const redirectUri = this.redirectUri(request.provider);
    const { state } = this.seals.sealState({
      provider: request.provider,
      purpose: request.purpose,
      userId: request.purpose === 'link' ? request.userId : undefined,
      redirectTo: redirectTo.href,
      codeChallenge: request.codeChallenge,
      pkceVerifier,
      nonce,
      redirectUri,
    });
    return rp.authorizationUrl({ redirectUri, state, nonce, codeChallenge: await client.calculatePKCECodeChallenge(pkceVerifier) });
  }

  /**
   * The provider's callback: where to send the browser (the app's `redirect_to` with a code or an
   * error). Throws — a problem, no redirect — only for an unknown provider and a state that does
   * not open (missing, forged, tampered with, expired, of another provider, used).
   */
  async callback(provider: string, query: URLSearchParams): Promise<URL> {
    const rp = this.client(provider);
    const raw = query.get('state');
    if (raw === null || raw === '') throw new AppError('invalid_oidc_state', "the sign-in's state is missing: start the sign-in from the app");
    const state = this.seals.openState(raw, provider);
    await this.seals.spendState(state);
    const back = new URL(state.redirectTo);
    try {
      const error = query.get('error');
      if (error !== null) {
        const description = query.get('error_description');
        this.opts.telemetry.oidcFailed(safeToken(error), provider);
        return withParams(back, {
          error: safeToken(error),
          error_description: description === null ? 'the provider refused the sign-in' : safeText(description),
        });
      }
      const callbackUrl = new URL(state.redirectUri);
      callbackUrl.search = query.toString();
      const claims = await rp.exchange(callbackUrl, { state: raw, nonce: state.nonce, pkceVerifier: state.pkceVerifier });
      const identity = identityOf(provider, claims);
      if (state.purpose === 'link') {
        const code = this.seals.issueCode({ provider, purpose: 'link', userId: state.userId!, codeChallenge: state.codeChallenge, identity });
        return withParams(back, { code });
      }
      const user = await this.userOf(identity);
      return withParams(back, {
        code: this.seals.issueCode({ provider, purpose: 'login', userId: user.id, codeChallenge: state.codeChallenge, identity: undefined }),
      });
    } catch (err) {
      const problem = this.failed(err, provider);
      return withParams(back, { error: problem.code, error_description: problem.detail });
    }
  }

  /** `POST /v1/auth/oidc/token`: a login's one-time code and the app's verifier → the login's first step's end. */
  async exchange(code: unknown, codeVerifier: unknown, meta: ClientMeta): Promise<SignInResult> {
    // A server that cannot sign says so (503) before it spends the code.
    this.opts.accessTokens.assertCanSign();
    const opened = this.seals.openCode(code, codeVerifier, 'login');
    const user = await this.opts.users.get(opened.userId).catch((err: unknown) => {
      throw isAppError(err, 'not_found') ? new AppError('invalid_oidc_code', 'the code is not valid: its user no longer exists') : err;
    });
    assertActive(user);
    return this.opts.auth.signIn(user, 'fed', meta, { idp: opened.provider, spend: (ex: Executor) => this.seals.spendCode(opened, ex) });
  }

  /**
   * A link's one-time code, redeemed by the user who started it: the provider account to link.
   * The code is spent here; a link that then fails (`identity_taken`) needs a new dance.
   */
  async redeemLink(code: unknown, codeVerifier: unknown, userId: string): Promise<ProviderIdentity> {
    const opened = this.seals.openCode(code, codeVerifier, 'link');
    if (opened.userId !== userId || !opened.identity) throw new AppError('invalid_oidc_code', 'the code is not valid: it was issued to another user');
    await this.seals.spendCode(opened);
    return opened.identity;
  }

  /**
   * `POST /v1/auth/oidc/{provider}/id-token`: a native app's ID token and the nonce it asked for.
   * The token is single-use: its hash is spent in `mfa_token_uses` (in the session's transaction,
   * or before the second step's mfaToken) until it expires.
   */
  async signInWithIdToken(provider: string, idToken: unknown, nonce: unknown, meta: ClientMeta): Promise<SignInResult> {
    const rp = this.client(provider);
    this.opts.accessTokens.assertCanSign();
    if (typeof idToken !== 'string' || idToken.length === 0 || idToken.length > ID_TOKEN_MAX_LENGTH) {
      throw new AppError('invalid_request', 'idToken must be the ID token the provider gave the app', { errors: [{ path: 'idToken', message: 'required' }] });
    }
    if (typeof nonce !== 'string' || nonce.length === 0 || nonce.length > NONCE_MAX_LENGTH) {
      throw new AppError('invalid_request', 'nonce must be the nonce the app asked the provider to put in the ID token', {
        errors: [{ path: 'nonce', message: `required, at most ${NONCE_MAX_LENGTH} characters` }],
      });
    }
    try {
      const claims = await rp.verifyIdToken(idToken, nonce);
      const user = await this.userOf(identityOf(provider, claims));
      const use = { id: tokenUseId(idToken), expiresAt: new Date(((claims.exp ?? 0) + ID_TOKEN_SKEW_SECONDS) * 1000) };
      return await this.opts.auth.signIn(user, 'fed', meta, {
        idp: provider,
        spend: async (ex: Executor) => {
          const fresh = await this.opts.uses.insertOnce({ ...use, userId: user.id, homeRegion: this.opts.region, usedAt: this.opts.clock.now() }, ex);
          if (!fresh) throw new AppError('invalid_id_token', 'the ID token was used already: get a new one from the provider');
        },
      });
    } catch (err) {
      throw this.failed(err, provider);
    }
  }

  /** The user a provider sign-in is (found, linked or created), who may log in. */
  private async userOf(identity: ProviderIdentity): Promise<UserRecord> {
    const user = await this.opts.identities.signInWith(identity, this.client(identity.provider).settings.linking);
    assertActive(user);
    return user;
  }

  /** A failed sign-in as the app is told it, counted and logged (its reason only). */
  private failed(err: unknown, provider: string): AppError {
    const problem = isAppError(err) ? err : new AppError('internal_error', 'the sign-in failed; try again', { cause: err });
    if (!isAppError(err)) this.opts.log.error('provider sign-in failed unexpectedly', { event: 'oidc.error', provider, err });
    this.opts.telemetry.oidcFailed(problem.code, provider);
    return problem;
  }

  private client(provider: string): ProviderClient {
    const rp = this.clients.get(provider);
    if (!rp) throw new AppError('not_found', `no provider "${safeToken(provider)}" is configured (identity.providers)`);
    return rp;
  }

  private redirectUri(provider: string): string {
    const base = (this.opts.config.publicUrl ?? this.opts.config.tokens.issuer).replace(/\/+$/, '');
    return `${base}/v1/auth/oidc/${provider}/callback`;
  }
}

/** What an ID token that passed every check says about who signed in. Only `email_verified: true` verifies. */
function identityOf(provider: string, claims: IdTokenClaims): ProviderIdentity {
  let email: string | null = null;
  if (typeof claims.email === 'string') {
    try {
      email = normalizeEmail(claims.email);
    } catch {
      // An address authctl could not send to is no address of the account's.
      email = null;
    }
  }
  return {
    provider,
    subject: claims.sub,
    email,
    emailVerified: email !== null && claims.email_verified === true,
    name: typeof claims.name === 'string' ? claims.name.slice(0, 256) : null,
    preferredUsername: typeof claims.preferred_username === 'string' ? claims.preferred_username.slice(0, 256) : null,
  };
}

function withParams(url: URL, params: Record<string, string>): URL {
  const next = new URL(url);
  for (const [key, value] of Object.entries(params)) next.searchParams.set(key, value);
  return next;
}

/** A provider's `error_description`, safe to repeat: printable ASCII (RFC 6749 §4.1.2.1), bounded. */
function safeText(value: string): string {
  return value.replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, ' ').slice(0, 200);
}

/**
 * The `mfa_token_uses` id of a native ID token: a UUID (version 8, RFC 9562's custom layout) made
 * of its SHA-256, so a replay meets the first use at the primary key without storing the token.
 */
function tokenUseId(idToken: string): string {
  const hash = createHash('sha256').update('authctl/v1/id-token-use').update(idToken).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x80;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
