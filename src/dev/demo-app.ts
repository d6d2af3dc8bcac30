/**
 * The demo app of `authctl dev`: one page, on a loopback port of its own, that signs in through a
 * provider exactly as a web app would (README "Web apps"). The PKCE verifier and challenge are made
 * in the browser with WebCrypto; the page sends the browser to `GET /v1/auth/oidc/{provider}/authorize`,
 * gets `?code=` back, redeems it with `POST /v1/auth/oidc/token` and shows `GET /v1/me` and the
 * access token's claims. Its origin is a different one from the API's, as an app's is: authctl dev
 * allows it by CORS and lists it in `identity.redirectUrls`.
 *
 * With `passkeys`, the page also signs in with a passkey (no username: the browser offers the
 * passkeys it holds) and, once signed in, adds one — README "Passkeys", through
 * `@simplewebauthn/browser`'s bundle, which the demo app serves itself. Its origin is
 * http://localhost:<port>, never 127.0.0.1: browsers refuse WebAuthn on IP addresses.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { escapeHtml } from '../mail/templates.js';
import { closeNow, listenPreferring } from './listen.js';

export interface DemoAppOptions {
  /** The API's base URL, e.g. http://127.0.0.1:8080. */
  apiUrl: string;
  /** The provider id (`identity.providers[].id`). */
  provider: string;
  /** The button's text, e.g. "Sign in with the dev provider". */
  label: string;
  /** Preferred port (else, or when it is taken, a free one). */
  port?: number;
  /** The loopback address to listen on (default 127.0.0.1); the page is named localhost whatever it is. */
  host?: string;
  /** Offer passkeys too (the API has identity.webauthn on, with this app's origin among its origins). */
  passkeys?: boolean;
}

export interface DemoApp {
  /** The page, and the `redirect_to` it sends: `http://localhost:<port>/`. */
  readonly url: string;
  /** `http://localhost:<port>`: what the API allows by CORS, and a passkey origin. */
  readonly origin: string;
  close(): Promise<void>;
}

/**
 * The page's script. Everything it shows goes through textContent (never innerHTML): the profile
 * and the error descriptions come from elsewhere. The one-time code leaves the address bar before
 * anything else happens, so it does not stay in the history.
 */
const SCRIPT = `
const config = JSON.parse(document.getElementById('config').textContent);
const $ = (id) => document.getElementById(id);
const show = (id, text) => { $(id).textContent = text; $(id).hidden = false; };
const base64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
const claimsOf = (jwt) => JSON.parse(atob(jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
const webauthn = window.SimpleWebAuthnBrowser;
let accessToken = null;
let pendingMfaToken = null;

/** A JSON POST to the API; a problem (RFC 9457) becomes an error saying its code and detail. */
async function post(path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = 'Bearer ' + token;
  const response = await fetch(config.apiUrl + path, { method: 'POST', headers, body: JSON.stringify(body) });
  const json = await response.json().catch(() => ({}));
  if (response.status === 404 && path.includes('passkey')) {
    throw new Error('passkeys are not available on this server: POST ' + path + ' answered 404 (is identity.webauthn on?)');
  }
  if (!response.ok) throw new Error((json.code || response.status) + ': ' + (json.detail || response.statusText));
  return json;
}

async function signIn() {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  sessionStorage.setItem('authctl-demo-verifier', verifier);
  const url = new URL(config.apiUrl + '/v1/auth/oidc/' + encodeURIComponent(config.provider) + '/authorize');
  url.searchParams.set('redirect_to', location.origin + location.pathname);
  url.searchParams.set('code_challenge', challenge);
  url.searchParams.set('code_challenge_method', 'S256');
  location.assign(url.href);
}

async function finish(params) {
  history.replaceState(null, '', location.pathname);
  if (params.has('error')) {
    show('error', params.get('error') + ': ' + (params.get('error_description') || ''));
    return;
  }
  const verifier = sessionStorage.getItem('authctl-demo-verifier');
  sessionStorage.removeItem('authctl-demo-verifier');
  if (!verifier) {
    show('error', 'no PKCE verifier in this tab: start again with the button');
    return;
  }
  show('status', 'Redeeming the code…');
  await signedIn(await post('/v1/auth/oidc/token', { code: params.get('code'), codeVerifier: verifier }));
}

/** Tokens: the profile and the claims shown. A second step asked for (an MfaChallenge): a passkey can answer it, when the user has one. */
async function signedIn(tokens) {
  if (!tokens.accessToken) {
    if (config.passkeys && webauthn && (tokens.factors || []).includes('passkey')) {
      pendingMfaToken = tokens.mfaToken;
      show('status', 'A second step is asked for: use a passkey, or finish with POST /v1/auth/mfa/verify.');
      $('passkey-mfa').hidden = false;
    } else {
      show('status', 'A second factor is asked for (mfaToken): finish with POST /v1/auth/mfa/verify.');
    }
    return;
  }
  accessToken = tokens.accessToken;
  $('passkey-mfa').hidden = true;
  const me = await fetch(config.apiUrl + '/v1/me', { headers: { authorization: 'Bearer ' + tokens.accessToken } });
  const profile = await me.json();
  const user = profile.user || profile;
  show('status', 'Signed in as ' + (user.email || user.username || user.id));
  show('me', JSON.stringify(profile, null, 2));
  show('claims', JSON.stringify(claimsOf(tokens.accessToken), null, 2));
  if (config.passkeys && webauthn) $('add-passkey').hidden = false;
}

/** Usernameless: the options name no user, the browser offers the passkeys it holds for this site. */
async function passkeySignIn() {
  const options = await post('/v1/auth/passkey/options', {});
  const response = await webauthn.startAuthentication({ optionsJSON: options });
  await signedIn(await post('/v1/auth/passkey/verify', { response }));
}

/** A two-step login's second step with a passkey of that user. */
async function passkeySecondStep() {
  const mfaToken = pendingMfaToken;
  const options = await post('/v1/auth/passkey/options', { mfaToken });
  const response = await webauthn.startAuthentication({ optionsJSON: options });
  await signedIn(await post('/v1/auth/mfa/verify', { mfaToken, passkey: response }));
}

/** Registration: needs a recent authentication, which a sign-in just now is. */
async function addPasskey() {
  const options = await post('/v1/me/passkeys/options', {}, accessToken);
  const response = await webauthn.startRegistration({ optionsJSON: options });
  const passkey = await post('/v1/me/passkeys', { response }, accessToken);
  show('status', 'Passkey added: ' + (passkey.name || passkey.id) + '. Sign in with it from a new tab.');
}

const failed = (err) => show('error', String(err && err.message ? err.message : err));
$('sign-in').addEventListener('click', () => signIn().catch(failed));
if (config.passkeys) {
  $('passkeys').hidden = false;
  if (!webauthn) show('passkey-note', 'Passkeys: @simplewebauthn/browser did not load here, so the passkey buttons are off.');
  else if (!webauthn.browserSupportsWebAuthn()) show('passkey-note', 'Passkeys: this browser has no WebAuthn.');
  else {
    $('passkey-sign-in').disabled = false;
    $('passkey-sign-in').addEventListener('click', () => passkeySignIn().catch(failed));
    $('add-passkey').addEventListener('click', () => addPasskey().catch(failed));
    $('passkey-mfa').addEventListener('click', () => passkeySecondStep().catch(failed));
  }
}
const params = new URLSearchParams(location.search);
if (params.has('code') || params.has('error')) finish(params).catch(failed);
`;

function page(options: DemoAppOptions, nonce: string, withBundle: boolean): string {
  const e = escapeHtml;
  // JSON in a script element that is data only; "<" escaped so it cannot close the element.
  const config = JSON.stringify({ apiUrl: options.apiUrl, provider: options.provider, passkeys: Boolean(options.passkeys) }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>authctl demo app</title>
<style nonce="${nonce}">
body{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#222}
button{font-size:1rem;padding:.6rem 1.2rem}
pre{background:#f6f6f6;padding:.75rem;border-radius:4px;overflow:auto}
.error{color:#b00}.meta{color:#666;font-size:.9rem}
</style>
</head>
<body>
<h1>authctl demo app</h1>
<p class="meta">A web app on its own origin, signing in through authctl at ${e(options.apiUrl)} with PKCE made in this page.</p>
<button id="sign-in" type="button">${e(options.label)}</button>
<span id="passkeys" hidden>
<button id="passkey-sign-in" type="button" disabled>Sign in with a passkey</button>
<button id="passkey-mfa" type="button" hidden>Use a passkey (second step)</button>
<button id="add-passkey" type="button" hidden>Add a passkey</button>
</span>
<p id="passkey-note" class="meta" hidden></p>
<p id="status" hidden></p>
<p id="error" class="error" hidden></p>
<h2>GET /v1/me</h2>
<pre id="me" hidden></pre>
<h2>Access token claims</h2>
<pre id="claims" hidden></pre>
<script type="application/json" id="config">${config}</script>
${withBundle ? `<script nonce="${nonce}" src="${BUNDLE_PATH}"></script>\n` : ''}<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}

/** Where the page loads `@simplewebauthn/browser` from: this app, so the page's CSP stays its own origin's. */
const BUNDLE_PATH = '/simplewebauthn-browser.js';

/**
 * `@simplewebauthn/browser`'s UMD bundle (the global `SimpleWebAuthnBrowser`); undefined when the
 * package is missing, and the page then says passkeys are off.
 */
async function loadBrowserBundle(): Promise<Buffer | undefined> {
  try {
    const entry = createRequire(import.meta.url).resolve('@simplewebauthn/browser');
    return await readFile(join(dirname(entry), '..', 'dist', 'bundle', 'index.umd.min.js'));
  } catch {
    return undefined;
  }
}

/** Starts the demo app's listener on loopback. */
export async function startDemoApp(options: DemoAppOptions): Promise<DemoApp> {
  const host = options.host ?? '127.0.0.1';
  const apiOrigin = new URL(options.apiUrl).origin;
  const bundle = options.passkeys ? await loadBrowserBundle() : undefined;
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://demo').pathname;
    if (req.method === 'GET' && path === BUNDLE_PATH && bundle) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
      res.end(bundle);
      return;
    }
    if (req.method !== 'GET' || path !== '/') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found');
      return;
    }
    const nonce = randomBytes(16).toString('base64');
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // The code in the address bar must not leak to other sites through Referer.
      'referrer-policy': 'no-referrer',
      'content-security-policy': [
        "default-src 'none'",
        `script-src 'nonce-${nonce}'`,
        `style-src 'nonce-${nonce}'`,
        // The API only: the page talks to nothing else.
        `connect-src ${apiOrigin}`,
        "form-action 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
      ].join('; '),
    });
    res.end(page(options, nonce, bundle !== undefined));
  });
  // Named localhost, whichever loopback address it listens on: WebAuthn needs a domain.
  const origin = `http://localhost:${await listenPreferring(server, options.port, host)}`;
  return {
    url: `${origin}/`,
    origin,
    close: () => closeNow(server),
  };
}
