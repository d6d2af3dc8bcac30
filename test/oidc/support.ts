import { createHash, randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { expect } from 'chai';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import * as oidcClient from 'openid-client';
import type { ConfigInput } from '../../src/config/schema.js';

/** Someone who can log in at the test provider. */
export interface ProviderAccount {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
}

/** A client of the test provider: authctl's registration there (its redirect URIs are its callbacks). */
export interface ProviderClientRegistration {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
}

export interface StartProviderOptions {
  accounts?: ProviderAccount[];
  /** The display name of its login page. */
  name?: string;
  /** Another key pair than a fresh one (two instances with the same keys). */
  signingKey?: JWK;
  /** The issuer its discovery document names, when it should not be its own URL (a wrong-issuer provider). */
  claimedIssuer?: (url: string) => string;
}

/** A change to the ID token between the provider and authctl: a misbehaving (or impersonated) provider. */
export type IdTokenTamper = (claims: JWTPayload) => JWTPayload;

/**
 * A real OpenID Provider (panva's oidc-provider, OpenID Certified) playing "Google" on a free
 * loopback port, with its own RS256 key, PKCE required, the ID token carrying the scope's claims
 * (as Google's does), and a scripted login: `POST /interaction/{uid}/login` with `sub` logs that
 * account in (the HTML page of `GET /interaction/{uid}` has a button per account, for a browser),
 * `POST /interaction/{uid}/abort` answers `access_denied`. Consent is implied (a first-party client).
 *
 * It runs behind a front server on its issuer URL, which forwards every request and can misbehave
 * on purpose: {@link delay} answers slowly, {@link tamperIdToken} rewrites (and re-signs) the ID
 * token of the token endpoint, {@link forgeSignatures} re-signs it with a key of its own under the
 * provider's kid, {@link stop} makes the provider unreachable.
 */
export class TestProvider {
  /** Milliseconds to hold requests whose path matches, before forwarding them. */
  delay: { path: RegExp; ms: number } | undefined;
  tamperIdToken: IdTokenTamper | undefined;
  /** Re-sign ID tokens with a key that is not the provider's (same kid). */
  forgeSignatures = false;
  readonly accounts = new Map<string, ProviderAccount>();

  private provider!: Provider;
  private readonly clients = new Map<string, ProviderClientRegistration>();
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private front: Server | undefined;

  private constructor(
    private readonly inner: Server,
    private readonly innerPort: number,
    readonly url: string,
    readonly issuer: string,
    private readonly key: JWK,
    private readonly forger: JWK,
    private readonly name: string,
  ) {}

  static async start(options: StartProviderOptions = {}): Promise<TestProvider> {
    const key = options.signingKey ?? (await newSigningKey());
    const forger = { ...(await newSigningKey()), kid: key.kid! };
    let handler: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;
    const inner = createServer((req, res) => handler(req, res));
    await listen(inner, 0);
    const front = createServer();
    await listen(front, 0);
    const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
    const issuer = options.claimedIssuer?.(url) ?? url;
    const op = new TestProvider(inner, (inner.address() as AddressInfo).port, url, issuer, key, forger, options.name ?? 'Google');
    for (const account of options.accounts ?? []) op.accounts.set(account.sub, account);
    op.attachFront(front);
    op.build();
    handler = (req, res) => op.handleInner(req, res);
    return op;
  }

  /** Registers (or replaces) a client; the provider is rebuilt with it (its sessions are forgotten). */
  registerClient(client: ProviderClientRegistration): void {
    this.clients.set(client.clientId, client);
    this.build();
  }

  /** The private JWK the provider signs with (to mint ID tokens as it would, in native tests). */
  get signingKey(): JWK {
    return this.key;
  }

  /** Signs `claims` as this provider's ID token (with `key`: as an impostor under the provider's kid). */
  async mintIdToken(claims: JWTPayload, key: JWK = this.key): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: this.key.kid!, typ: 'JWT' }).sign(await importJWK(key, 'RS256'));
  }

  /** The provider stops answering: the port refuses connections until {@link start}. */
  async stop(): Promise<void> {
    const front = this.front!;
    this.front = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => front.close(() => resolve()));
  }

  async start(): Promise<void> {
    const front = createServer();
    await listen(front, Number(new URL(this.url).port));
    this.attachFront(front);
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    if (this.front) await this.stop();
    this.inner.closeAllConnections();
    await new Promise<void>((resolve) => this.inner.close(() => resolve()));
  }

  /** authctl's `identity.providers` entry and `redirectUrls` for this provider. */
  config(client: Pick<ProviderClientRegistration, 'clientId' | 'clientSecret'>, redirectUrls: string[], id = 'google'): NonNullable<ConfigInput['identity']> {
    return { providers: [{ id, issuer: this.url, clientId: client.clientId, clientSecret: client.clientSecret }], redirectUrls };
  }

  private build(): void {
    const accounts = this.accounts;
    const configuration: Configuration = {
      clients: [...this.clients.values()].map((c) => ({
        client_id: c.clientId,
        client_secret: c.clientSecret,
        redirect_uris: c.redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      })),
      jwks: { keys: [this.key] },
      cookies: { keys: [randomBytes(16).toString('hex')] },
      claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
      // As Google's: the scope's claims are in the ID token itself.
      conformIdTokenClaims: false,
      pkce: { required: () => true },
      ttl: { Interaction: 600, Grant: 600, Session: 600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
      features: { devInteractions: { enabled: false } },
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      findAccount: (_ctx, sub) => {
        const account = accounts.get(sub);
        return account ? { accountId: sub, claims: () => ({ ...account }) } : undefined;
      },
      // A first-party client: consent is implied.
      loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
        const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session!.grantIdFor(ctx.oidc.client!.clientId);
        if (grantId) return ctx.oidc.provider.Grant.find(grantId);
        const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client!.clientId, accountId: ctx.oidc.session!.accountId! });
        grant.addOIDCScope('openid email profile');
        await grant.save();
        return grant;
      },
    };
    this.provider = new Provider(this.issuer, configuration);
  }

  private attachFront(front: Server): void {
    this.front = front;
    front.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    front.on('request', (req, res) => {
      const delay = this.delay && this.delay.path.test(req.url ?? '') ? this.delay.ms : 0;
      if (delay === 0) return this.forward(req, res);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.forward(req, res);
      }, delay);
      this.timers.add(timer);
    });
  }

  /** Passes a request to the provider (Host kept, so its URLs name the front), rewriting the token endpoint's ID token when told to. */
  private forward(req: IncomingMessage, res: ServerResponse): void {
    if (res.destroyed) return;
    const rewrite = (this.tamperIdToken || this.forgeSignatures) && req.method === 'POST' && req.url?.startsWith('/token');
    const upstream = httpRequest({ host: '127.0.0.1', port: this.innerPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (!rewrite) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        void this.rewriteTokens(Buffer.concat(chunks).toString('utf8')).then((body) => {
          const headers = { ...answer.headers, 'content-length': String(Buffer.byteLength(body)) };
          res.writeHead(answer.statusCode ?? 502, headers);
          res.end(body);
        });
      });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }

  private async rewriteTokens(text: string): Promise<string> {
    const body = JSON.parse(text) as { id_token?: string };
    if (!body.id_token) return text;
    const claims = this.tamperIdToken ? this.tamperIdToken(decodeJwt(body.id_token)) : decodeJwt(body.id_token);
    expect(decodeProtectedHeader(body.id_token).kid).to.equal(this.key.kid);
    body.id_token = await this.mintIdToken(claims, this.forgeSignatures ? this.forger : this.key);
    return JSON.stringify(body);
  }

  private handleInner(req: IncomingMessage, res: ServerResponse): void {
    const match = /^\/interaction\/([\w-]+)(\/login|\/abort)?$/.exec(req.url ?? '');
    if (!match) {
      void this.provider.callback()(req, res);
      return;
    }
    void this.interaction(req, res, match[2]).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  }

  /** The login page, and its two answers. */
  private async interaction(req: IncomingMessage, res: ServerResponse, action: string | undefined): Promise<void> {
    const details = await this.provider.interactionDetails(req, res);
    if (action === undefined) {
      const buttons = [...this.accounts.values()]
        .map((a) => `<button type="submit" name="sub" value="${a.sub}">Sign in as ${a.name ?? a.sub}</button>`)
        .join('\n');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        `<!doctype html><title>Sign in – ${this.name}</title><h1>${this.name}</h1>` +
          `<form method="post" action="/interaction/${details.uid}/login">${buttons}</form>` +
          `<form method="post" action="/interaction/${details.uid}/abort"><button type="submit">Cancel</button></form>`,
      );
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    const result =
      action === '/abort' ? { error: 'access_denied', error_description: 'The user cancelled the sign-in' } : { login: { accountId: form.get('sub') ?? '' } };
    await this.provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
}

export const startProvider = (options?: StartProviderOptions) => TestProvider.start(options);

async function newSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: randomBytes(6).toString('hex'), alg: 'RS256', use: 'sig' };
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** A PKCE pair as an app makes one (RFC 7636): a 43-character verifier and its S256 challenge. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** Cookies by name for one browser (the provider's paths are all under its one origin). */
export class CookieJar {
  private readonly cookies = new Map<string, string>();

  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** One request of the browser: no redirects followed, cookies from and into the jar. */
async function browse(jar: CookieJar, url: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const cookie = jar.header();
  if (cookie) headers.set('cookie', cookie);
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  jar.store(res);
  return res;
}

function locationOf(res: Response, base: string): string {
  const location = res.headers.get('location');
  expect(location, `a redirect from ${base} (status ${res.status})`).to.be.a('string');
  return new URL(location!, base).href;
}

/** Where a sign-in stands after the provider: its callback URL to authctl (not yet delivered). */
export interface ProviderLeg {
  callbackUrl: URL;
  jar: CookieJar;
}

/**
 * The browser at the provider: from its authorization URL through the login page to the redirect
 * back to authctl, which is returned, not followed. `sub` logs that account in; `deny` cancels.
 */
export async function loginAtProvider(op: TestProvider, authorizationUrl: string, choice: { sub: string } | { deny: true }): Promise<ProviderLeg> {
  const jar = new CookieJar();
  let url = authorizationUrl;
  let res = await browse(jar, url);
  // The authorization endpoint sends the browser to the login page.
  while (res.status >= 300 && res.status < 400 && !new URL(locationOf(res, url)).pathname.startsWith('/interaction/')) {
    url = locationOf(res, url);
    res = await browse(jar, url);
  }
  const interaction = new URL(locationOf(res, url));
  const page = await browse(jar, interaction.href);
  expect(page.status, await page.clone().text()).to.equal(200);
  const action = 'deny' in choice ? 'abort' : 'login';
  res = await browse(jar, `${op.url}${interaction.pathname}/${action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'deny' in choice ? '' : new URLSearchParams({ sub: choice.sub }).toString(),
  });
  url = locationOf(res, interaction.href);
  // Back to the authorization endpoint (resume), which redirects to the client's redirect URI.
  while (url.startsWith(op.url)) {
    res = await browse(jar, url);
    url = locationOf(res, url);
  }
  return { callbackUrl: new URL(url), jar };
}

/** What a sign-in through the provider ended with, at the app's `redirect_to`. */
export interface SignInOutcome {
  /** Where authctl sent the browser back to. */
  location: URL;
  code: string | null;
  error: string | null;
  errorDescription: string | null;
  /** The app's PKCE verifier for `POST /v1/auth/oidc/token`. */
  verifier: string;
  callbackUrl: URL;
}

/** Any authctl requester: `TestApp.request`, or one of another region. */
export type AppRequest = (path: string, init?: RequestInit & { json?: unknown; token?: string; contract?: boolean }) => Promise<Response>;

/**
 * A whole web sign-in as an app and its browser run it: `GET …/authorize` at `start` (the app's
 * PKCE challenge, `redirectTo`), the provider's login as `sub` (or cancelled), and the callback
 * delivered to `finish` (default `start`: another region's requester to finish it there).
 */
export async function signInThroughProvider(
  start: AppRequest,
  op: TestProvider,
  options: { provider?: string; redirectTo: string; finish?: AppRequest } & ({ sub: string } | { deny: true }),
): Promise<SignInOutcome> {
  const { verifier, challenge } = pkcePair();
  const query = new URLSearchParams({ redirect_to: options.redirectTo, code_challenge: challenge, code_challenge_method: 'S256' });
  const authorize = await start(`/v1/auth/oidc/${options.provider ?? 'google'}/authorize?${query.toString()}`, { redirect: 'manual' });
  expect(authorize.status, await authorize.clone().text()).to.equal(302);
  const leg = await loginAtProvider(op, authorize.headers.get('location')!, 'deny' in options ? { deny: true } : { sub: options.sub });
  const landed = await deliverCallback(options.finish ?? start, leg.callbackUrl);
  return { ...landed, verifier, callbackUrl: leg.callbackUrl };
}

/** Delivers the provider's redirect to authctl (`app`); the redirect back to the app it answers. */
export async function deliverCallback(app: AppRequest, callbackUrl: URL): Promise<Omit<SignInOutcome, 'verifier' | 'callbackUrl'>> {
  const res = await app(callbackUrl.pathname + callbackUrl.search, { redirect: 'manual' });
  expect(res.status, await res.clone().text()).to.equal(302);
  const location = new URL(res.headers.get('location')!);
  return {
    location,
    code: location.searchParams.get('code'),
    error: location.searchParams.get('error'),
    errorDescription: location.searchParams.get('error_description'),
  };
}

/**
 * The authctl config of a test app at `appUrl` signing in through `op`: accounts known by address
 * (`identity.email` optional, mail written to the log), the provider, and `redirectUrls`.
 */
export function providerConfig(op: TestProvider, appUrl: string, client: { clientId: string; clientSecret: string }, redirectUrls: string[]): ConfigInput {
  return {
    publicUrl: appUrl,
    identity: { username: 'optional', email: 'optional', ...op.config(client, redirectUrls) },
    mail: { transport: 'log', from: 'authctl <no-reply@example.com>' },
  };
}

/** The redirect URI a native app's provider SDK uses (registered beside authctl's callback). */
export const NATIVE_REDIRECT_URI = 'http://127.0.0.1/native-callback';

/**
 * What a mobile app's provider SDK does (Google Sign-In): its own authorization code flow with
 * `nonce`, for authctl's client id, at the provider — the ID token it ends with, to hand to
 * `POST /v1/auth/oidc/{provider}/id-token`. The client must list {@link NATIVE_REDIRECT_URI}.
 */
export async function nativeIdToken(op: TestProvider, client: { clientId: string; clientSecret: string }, sub: string, nonce: string): Promise<string> {
  const config = await oidcClient.discovery(new URL(op.url), client.clientId, client.clientSecret, undefined, { execute: [oidcClient.allowInsecureRequests] });
  const { verifier, challenge } = pkcePair();
  const state = oidcClient.randomState();
  const url = oidcClient.buildAuthorizationUrl(config, {
    redirect_uri: NATIVE_REDIRECT_URI,
    scope: 'openid email profile',
    nonce,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  const { callbackUrl } = await loginAtProvider(op, url.href, { sub });
  const tokens = await oidcClient.authorizationCodeGrant(config, callbackUrl, { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
  return tokens.id_token!;
}
