import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';

/**
 * Passkeys in a real browser: headless Chromium (Debian's, test/helpers/browser.ts) with the
 * DevTools virtual authenticator — a CTAP2 platform authenticator with resident keys and user
 * verification, which makes real key pairs and signs real assertions — on a small page that calls
 * @simplewebauthn/browser exactly as an app's page does. The test posts what the page returns to
 * authctl itself (no CORS in the way), as an app's backend-for-frontend or its fetch would.
 *
 * The page is served on a loopback port and reached by name: `http://localhost:<port>` (the RP ID
 * `localhost`: browsers refuse WebAuthn on IP addresses) or `http://<sub>.localhost:<port>`
 * (another origin, and a host whose RP ID may be `<sub>.localhost`), both secure contexts.
 */

/** Chromium's flags for these tests: every `*.localhost` name goes to the page server on IPv4. */
export const PASSKEY_CHROMIUM_ARGS = ['--host-resolver-rules=MAP localhost 127.0.0.1, MAP *.localhost 127.0.0.1'];

const require = createRequire(import.meta.url);
// The package exports only its modules; its UMD bundle (what a page loads with a script tag) sits beside them.
const BUNDLE = readFileSync(join(dirname(require.resolve('@simplewebauthn/browser')), '..', 'dist', 'bundle', 'index.umd.min.js'));

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>authctl passkeys test page</title>
<script src="/simplewebauthn-browser.js"></script></head>
<body><input id="username" autocomplete="username webauthn"></body>
</html>`;

/** The page server: the test page and the @simplewebauthn/browser bundle, on one port for every `*.localhost` name. */
export interface PageServer {
  readonly port: number;
  /** `http://localhost:<port>`, or `http://<sub>.localhost:<port>`. */
  origin(sub?: string): string;
  close(): Promise<void>;
}

export async function startPageServer(): Promise<PageServer> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/simplewebauthn-browser.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(BUNDLE);
    } else if (req.url === '/' || req.url?.startsWith('/?')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: (sub) => `http://${sub ? `${sub}.` : ''}localhost:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A virtual authenticator's settings (the DevTools protocol's), with the common case as defaults. */
export interface AuthenticatorSettings {
  /** The authenticator verifies its user (a PIN or biometric) and says so (UV flag). Default true. */
  userVerified?: boolean;
  /** Credentials it makes are backup-eligible (a synced passkey) and backed up. Default false. */
  synced?: boolean;
  /** Resident (discoverable) keys. Default true. */
  residentKey?: boolean;
}

/** A credential the virtual authenticator holds (the DevTools protocol's `WebAuthn.Credential`; private key included: a test may clone it). */
export interface VirtualCredential {
  /** base64. */
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  /** The ECDSA P-256 private key, PKCS#8, base64. */
  privateKey: string;
  /** base64. */
  userHandle?: string;
  signCount: number;
  backupEligibility?: boolean;
  backupState?: boolean;
}

/**
 * One browser tab with a virtual authenticator attached, on the test page. The authenticator
 * belongs to the tab and survives navigation, so the same credentials can be used from another
 * origin ({@link goto}). Close with {@link close}.
 */
export class PasskeyTab {
  private constructor(
    readonly page: Page,
    private readonly context: BrowserContext,
    private readonly cdp: CDPSession,
    private authenticatorId: string,
  ) {}

  /** A new context and tab on `origin` with a fresh virtual authenticator. */
  static async open(browser: Browser, origin: string, settings: AuthenticatorSettings = {}): Promise<PasskeyTab> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', { options: authenticatorOptions(settings) });
    const tab = new PasskeyTab(page, context, cdp, authenticatorId);
    await tab.goto(origin);
    return tab;
  }

  /** Loads the test page from `origin` (the authenticator stays). */
  async goto(origin: string): Promise<void> {
    await this.page.goto(`${origin}/`);
    await this.page.waitForFunction('typeof SimpleWebAuthnBrowser === "object"');
  }

  /** `startRegistration({optionsJSON})` in the page: a new passkey, the response the page would POST. */
  register(optionsJSON: PublicKeyCredentialCreationOptionsJSON): Promise<RegistrationResponseJSON> {
    // A string of code, not a function: the test build has no DOM types, and this runs in the page.
    return this.page.evaluate<RegistrationResponseJSON>(`SimpleWebAuthnBrowser.startRegistration({ optionsJSON: ${JSON.stringify(optionsJSON)} })`);
  }

  /** `startAuthentication({optionsJSON})` in the page: an assertion, the response the page would POST. */
  authenticate(optionsJSON: PublicKeyCredentialRequestOptionsJSON): Promise<AuthenticationResponseJSON> {
    return this.page.evaluate<AuthenticationResponseJSON>(`SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: ${JSON.stringify(optionsJSON)} })`);
  }

  /** What the page's ceremony threw (a `NotAllowedError` when no credential matches, say), or undefined if it succeeded. */
  async authenticateError(optionsJSON: PublicKeyCredentialRequestOptionsJSON): Promise<string | undefined> {
    return this.page.evaluate<string | undefined>(
      `SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: ${JSON.stringify(optionsJSON)} }).then(() => undefined, (e) => e.name + ': ' + e.message)`,
    );
  }

  /** The credentials the authenticator holds now (with their private keys and counters). */
  async credentials(): Promise<VirtualCredential[]> {
    return (await this.cdp.send('WebAuthn.getCredentials', { authenticatorId: this.authenticatorId })).credentials;
  }

  /** Puts a credential into the authenticator: a clone of another's (same key, older counter), or one under another key. */
  async addCredential(credential: VirtualCredential): Promise<void> {
    await this.cdp.send('WebAuthn.addCredential', { authenticatorId: this.authenticatorId, credential });
  }

  async clearCredentials(): Promise<void> {
    await this.cdp.send('WebAuthn.clearCredentials', { authenticatorId: this.authenticatorId });
  }

  /** Whether user verification succeeds from now on. */
  async setUserVerified(isUserVerified: boolean): Promise<void> {
    await this.cdp.send('WebAuthn.setUserVerified', { authenticatorId: this.authenticatorId, isUserVerified });
  }

  /** Swaps the authenticator for a fresh one with other settings (no credentials). */
  async replaceAuthenticator(settings: AuthenticatorSettings): Promise<void> {
    await this.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: this.authenticatorId });
    this.authenticatorId = (await this.cdp.send('WebAuthn.addVirtualAuthenticator', { options: authenticatorOptions(settings) })).authenticatorId;
  }

  async close(): Promise<void> {
    await this.context.close();
  }
}

function authenticatorOptions(settings: AuthenticatorSettings) {
  return {
    protocol: 'ctap2' as const,
    transport: 'internal' as const,
    hasResidentKey: settings.residentKey ?? true,
    hasUserVerification: true,
    isUserVerified: settings.userVerified ?? true,
    automaticPresenceSimulation: true,
    defaultBackupEligibility: settings.synced ?? false,
    defaultBackupState: settings.synced ?? false,
  };
}

/** `identity.webauthn` for a test app whose pages are on `origins` (RP ID `localhost`). */
export function webauthnConfig(origins: string[], rpId = 'localhost') {
  return { enabled: true, rpId, rpName: 'authctl tests', origins };
}

/** base64url of a JSON-able value's UTF-8 (to re-encode an altered `clientDataJSON`). */
export function base64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** The parsed `clientDataJSON` of a response. */
export function clientDataOf(
  response: RegistrationResponseJSON | AuthenticationResponseJSON,
): { type: string; challenge: string; origin: string } & Record<string, unknown> {
  return JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString('utf8')) as { type: string; challenge: string; origin: string };
}
