/**
 * The demo app of `authctl dev`: one page, on a loopback port of its own, that signs in through a
 * provider exactly as a web app would (README "Web apps"). The PKCE verifier and challenge are made
 * in the browser with WebCrypto; the page sends the browser to `GET /v1/auth/oidc/{provider}/authorize`,
 * gets `?code=` back, redeems it with `POST /v1/auth/oidc/token` and shows `GET /v1/me` and the
 * access token's claims. Its origin is a different one from the API's, as an app's is: authctl dev
 * allows it by CORS and lists it in `identity.redirectUrls`.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
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
  host?: string;
}

export interface DemoApp {
  /** The page, and the `redirect_to` it sends: `http://127.0.0.1:<port>/`. */
  readonly url: string;
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
  const response = await fetch(config.apiUrl + '/v1/auth/oidc/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code: params.get('code'), codeVerifier: verifier }),
  });
  const tokens = await response.json();
  if (!response.ok) {
    show('error', tokens.code + ': ' + tokens.detail);
    return;
  }
  if (!tokens.accessToken) {
    show('status', 'A second factor is asked for (mfaToken): finish with POST /v1/auth/mfa/verify.');
    return;
  }
  const me = await fetch(config.apiUrl + '/v1/me', { headers: { authorization: 'Bearer ' + tokens.accessToken } });
  const profile = await me.json();
  const user = profile.user || profile;
  show('status', 'Signed in as ' + (user.email || user.username || user.id));
  show('me', JSON.stringify(profile, null, 2));
  show('claims', JSON.stringify(claimsOf(tokens.accessToken), null, 2));
}

$('sign-in').addEventListener('click', () => signIn().catch((err) => show('error', String(err))));
const params = new URLSearchParams(location.search);
if (params.has('code') || params.has('error')) finish(params).catch((err) => show('error', String(err)));
`;

function page(options: DemoAppOptions, nonce: string): string {
  const e = escapeHtml;
  // JSON in a script element that is data only; "<" escaped so it cannot close the element.
  const config = JSON.stringify({ apiUrl: options.apiUrl, provider: options.provider }).replace(/</g, '\\u003c');
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
<p id="status" hidden></p>
<p id="error" class="error" hidden></p>
<h2>GET /v1/me</h2>
<pre id="me" hidden></pre>
<h2>Access token claims</h2>
<pre id="claims" hidden></pre>
<script type="application/json" id="config">${config}</script>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}

/** Starts the demo app's listener on loopback. */
export async function startDemoApp(options: DemoAppOptions): Promise<DemoApp> {
  const host = options.host ?? '127.0.0.1';
  const apiOrigin = new URL(options.apiUrl).origin;
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://demo').pathname;
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
    res.end(page(options, nonce));
  });
  const origin = `http://${host}:${await listenPreferring(server, options.port, host)}`;
  return {
    url: `${origin}/`,
    origin,
    close: () => closeNow(server),
  };
}
