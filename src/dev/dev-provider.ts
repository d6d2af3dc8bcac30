/**
 * The OpenID Provider of `authctl dev`: provider sign-in can be tried with no Google account and
 * no configuration. It is panva's `oidc-provider` (an OpenID-certified implementation, a
 * devDependency: a production install has none, and dev then runs without it), on a loopback
 * port, with one client (authctl) and a login page where any name signs in as an account whose
 * address `<name>@example.test` the provider says is verified. Nothing is persisted: its keys,
 * sessions and codes live in memory for the life of the process.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import { escapeHtml } from '../mail/templates.js';
import { closeNow, listenPreferring } from './listen.js';

export interface DevProviderOptions {
  /** The relying party's redirect URIs (authctl's `/v1/auth/oidc/<id>/callback`). */
  redirectUris: string[];
  /** Default: a free port. */
  port?: number;
  host?: string;
}

export interface DevProvider {
  /** `http://127.0.0.1:<port>`: discovery is at `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  close(): Promise<void>;
}

/** The claims of the account a typed name signs in as. */
export interface DevAccountClaims {
  sub: string;
  email: string;
  email_verified: true;
  name: string;
  preferred_username: string;
  [claim: string]: unknown;
}

/** What a name typed on the login page becomes: a stable subject (so the same name is the same account across runs). */
export function devAccount(typed: string): DevAccountClaims | undefined {
  const name = typed.normalize('NFKC').trim().replace(/\s+/g, ' ');
  const sub = name
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (sub === '' || sub.length > 64) return undefined;
  return { sub, email: `${sub}@example.test`, email_verified: true, name, preferred_username: sub };
}

// The parts of oidc-provider used here (it ships no types; it is loaded only when installed).
interface KoaContext {
  method: string;
  path: string;
  req: IncomingMessage;
  res: unknown;
  status: number;
  type: string;
  body: unknown;
  redirect(url: string): void;
  set(name: string, value: string): void;
  oidc?: { client?: { clientId: string }; session?: { accountId?: string; grantIdFor(clientId: string): string | undefined }; result?: unknown };
}
interface GrantModel {
  addOIDCScope(scope: string): void;
  save(): Promise<string>;
}
interface OidcProviderInstance {
  callback(): (req: IncomingMessage, res: unknown) => void;
  use(middleware: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>): void;
  interactionDetails(req: IncomingMessage, res: unknown): Promise<{ uid: string; prompt: { name: string }; params: Record<string, unknown> }>;
  interactionResult(req: IncomingMessage, res: unknown, result: Record<string, unknown>, options: { mergeWithLastSubmission: boolean }): Promise<string>;
  Grant: { new (init: { accountId: string; clientId: string }): GrantModel; find(id: string): Promise<GrantModel | undefined> };
}
type OidcProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => OidcProviderInstance;

/** Loads oidc-provider if it is installed (a devDependency); undefined otherwise. */
export async function loadOidcProvider(): Promise<OidcProviderConstructor | undefined> {
  // A specifier in a variable: the build does not depend on the package (nor on types it lacks).
  const specifier = 'oidc-provider';
  try {
    const module = (await import(specifier)) as { default: OidcProviderConstructor };
    return module.default;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw err;
  }
}

/**
 * oidc-provider's storage, in memory: its own in-memory adapter works the same but warns on the
 * console at every start, which would be noise in dev's terminal.
 */
function memoryAdapter(): new (model: string) => Record<string, (...args: never[]) => Promise<unknown>> {
  const store = new Map<string, { payload: Record<string, unknown>; expiresAt: number }>();
  const live = (key: string) => {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  };
  return class DevAdapter {
    constructor(private readonly model: string) {}
    private key(id: string): string {
      return `${this.model}:${id}`;
    }
    upsert(id: string, payload: Record<string, unknown>, expiresIn: number): Promise<void> {
      store.set(this.key(id), { payload, expiresAt: Date.now() + expiresIn * 1000 });
      return Promise.resolve();
    }
    find(id: string): Promise<unknown> {
      return Promise.resolve(live(this.key(id)));
    }
    findByUid(uid: string): Promise<unknown> {
      for (const key of store.keys()) if (key.startsWith(`${this.model}:`) && live(key)?.uid === uid) return Promise.resolve(live(key));
      return Promise.resolve(undefined);
    }
    findByUserCode(): Promise<unknown> {
      return Promise.resolve(undefined);
    }
    consume(id: string): Promise<void> {
      const payload = live(this.key(id));
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
      return Promise.resolve();
    }
    destroy(id: string): Promise<void> {
      store.delete(this.key(id));
      return Promise.resolve();
    }
    revokeByGrantId(grantId: string): Promise<void> {
      for (const [key, entry] of store) if (entry.payload.grantId === grantId) store.delete(key);
      return Promise.resolve();
    }
  } as never;
}

// No form-action: browsers apply it to the redirects after a form is sent too, and this one's
// lead to the relying party's callback and on to the app.
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

function loginPage(uid: string, clientName: string, error = ''): string {
  const e = escapeHtml;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sign in · authctl dev provider</title>
<style>
body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#222}
input{font-size:1rem;padding:.5rem;width:100%;box-sizing:border-box}
button{font-size:1rem;padding:.5rem 1rem;margin-top:.75rem}
.meta{color:#666;font-size:.9rem}.error{color:#b00}
</style>
</head>
<body>
<h1>authctl dev provider</h1>
<p>Sign in to <strong>${e(clientName)}</strong>. Any name works: it is an account whose address
<code>&lt;name&gt;@example.test</code> this provider says is verified.</p>
${error ? `<p class="error">${e(error)}</p>` : ''}
<form method="post" action="/interaction/${e(uid)}/login">
<label for="name">Name</label>
<input id="name" name="name" autofocus required maxlength="64" placeholder="alice">
<button type="submit" id="sign-in">Sign in</button>
</form>
<form method="post" action="/interaction/${e(uid)}/abort">
<button type="submit" id="cancel">Cancel (the app gets access_denied)</button>
</form>
<p class="meta">For trying authctl only: no password, nothing is stored.</p>
</body>
</html>
`;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > 4096) break;
  }
  return new URLSearchParams(text);
}

/**
 * The login page and its two answers: a name signs in (the grant of `openid email profile` is
 * given at once, so there is no consent page), Cancel ends the dance with `access_denied`.
 */
function interactions(provider: OidcProviderInstance, names: Map<string, string>) {
  return async (ctx: KoaContext, next: () => Promise<void>): Promise<void> => {
    const match = /^\/interaction\/([\w-]+)(\/login|\/abort)?$/.exec(ctx.path);
    if (!match) return next();
    ctx.set('content-security-policy', PAGE_CSP);
    ctx.set('cache-control', 'no-store');
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const clientName = String(details.params.client_id);
    if (ctx.method === 'GET' && !match[2]) {
      ctx.type = 'html';
      ctx.body = loginPage(details.uid, clientName);
      return;
    }
    if (ctx.method !== 'POST') return next();
    if (match[2] === '/abort') {
      const to = await provider.interactionResult(
        ctx.req,
        ctx.res,
        { error: 'access_denied', error_description: 'the user cancelled at the dev provider' },
        { mergeWithLastSubmission: false },
      );
      return ctx.redirect(to);
    }
    const account = devAccount((await readForm(ctx.req)).get('name') ?? '');
    if (!account) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = loginPage(details.uid, clientName, 'Type a name: letters or digits, at most 64.');
      return;
    }
    names.set(account.sub, account.name);
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false }));
  };
}

/** Starts the dev provider, or resolves undefined when oidc-provider is not installed. */
export async function startDevProvider(options: DevProviderOptions): Promise<DevProvider | undefined> {
  const Provider = await loadOidcProvider();
  if (!Provider) return undefined;
  const host = options.host ?? '127.0.0.1';
  const server: Server = createServer();
  const issuer = `http://${host}:${await listenPreferring(server, options.port, host)}`;
  const clientId = 'authctl-dev';
  const clientSecret = randomBytes(24).toString('base64url');
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  // The names as typed, by subject: the ID token's `name`.
  const names = new Map<string, string>();
  const provider = new Provider(issuer, {
    adapter: memoryAdapter(),
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        client_name: 'authctl dev',
        redirect_uris: options.redirectUris,
        response_types: ['code'],
        grant_types: ['authorization_code'],
        // openid-client's default with a secret.
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'dev-1', alg: 'RS256', use: 'sig' }] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    findAccount: (_ctx: unknown, sub: string) => {
      const account = devAccount(names.get(sub) ?? sub);
      return account ? { accountId: account.sub, claims: () => account } : undefined;
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    // Like Google: the ID token itself carries the scopes' claims (not only the userinfo endpoint).
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    // The user typed a name for this one client: consent is implied, as in a first-party provider.
    loadExistingGrant: async (ctx: KoaContext) => {
      const oidc = ctx.oidc!;
      const clientId = oidc.client!.clientId;
      const existing = oidc.session!.grantIdFor(clientId);
      if (existing) {
        const grant = await provider.Grant.find(existing);
        if (grant) return grant;
      }
      const grant = new provider.Grant({ accountId: oidc.session!.accountId!, clientId });
      grant.addOIDCScope('openid email profile');
      await grant.save();
      return grant;
    },
    clientBasedCORS: () => false,
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AuthorizationCode: 60, AccessToken: 600, IdToken: 600 },
    renderError: (ctx: KoaContext, out: Record<string, string>) => {
      ctx.type = 'html';
      const [error, description] = [escapeHtml(out.error ?? 'error'), escapeHtml(out.error_description ?? '')];
      ctx.body = `<!doctype html><meta charset="utf-8"><title>dev provider error</title><h1>${error}</h1><p>${description}</p>`;
    },
  });
  provider.use(interactions(provider, names));
  server.on('request', provider.callback());
  return {
    issuer,
    clientId,
    clientSecret,
    close: () => closeNow(server),
  };
}
