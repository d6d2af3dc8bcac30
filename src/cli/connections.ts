import { Redis } from 'ioredis';
import pg from 'pg';
import { SmtpMailer } from '../mail/smtp-mailer.js';

export type CheckResult = { ok: true; detail: string } | { ok: false; reason: string; missingDatabase?: string };

/** Connection checks `authctl init` runs on each URL as it is given (injectable for tests). */
export interface ConnectionChecks {
  database(url: string): Promise<CheckResult>;
  /** Creates the database a PostgreSQL URL names, connecting to the server's `postgres` database. */
  createDatabase(url: string): Promise<void>;
  redis(url: string): Promise<CheckResult>;
  /** Connects, greets, upgrades to TLS and logs in (nodemailer `verify()`), then hangs up. */
  smtp(url: string): Promise<CheckResult>;
}

const TIMEOUT_MS = 4_000;

/** What went wrong, in words, without the URL (it may hold a password). */
function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { code?: string; message?: string };
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused: is the server running, and on that host and port?';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host name';
    case 'ETIMEDOUT':
      return 'timed out connecting';
    case '28P01':
    case '28000':
      return 'authentication failed: check the user name and password';
    default:
      return e.message && !/:\/\//.test(e.message) ? e.message.replace(/\.$/, '') : 'could not connect';
  }
}

function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: TIMEOUT_MS });
  // A connection that fails later must not crash the process with an unhandled 'error'.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export const liveChecks: ConnectionChecks = {
  async database(url) {
    try {
      const version = await withClient(url, async (client) => (await client.query<{ v: string }>('SHOW server_version')).rows[0]!.v);
      return { ok: true, detail: `PostgreSQL ${version}` };
    } catch (err) {
      if ((err as { code?: string }).code === '3D000')
        return { ok: false, reason: `database ${databaseName(url)} does not exist`, missingDatabase: databaseName(url) };
      return { ok: false, reason: describe(err) };
    }
  },

  async createDatabase(url) {
    const admin = new URL(url);
    admin.pathname = '/postgres';
    await withClient(admin.toString(), async (client) => {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(databaseName(url))}`);
    });
  },

  async redis(url) {
    const client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    // The connect() rejection is a generic "Connection is closed"; the 'error' event says why.
    let cause: unknown;
    client.on('error', (err) => (cause ??= err));
    try {
      await client.connect();
      const info = await client.info('server');
      const version = /redis_version:(\S+)/.exec(info)?.[1];
      return { ok: true, detail: `Redis ${version ?? ''}`.trim() };
    } catch (err) {
      return { ok: false, reason: describe(cause ?? err) };
    } finally {
      client.disconnect();
    }
  },

  async smtp(url) {
    const mailer = new SmtpMailer({ url, from: 'authctl-init@localhost', timeoutMs: TIMEOUT_MS, pool: false });
    try {
      await mailer.verify();
      return { ok: true, detail: `SMTP at ${mailer.endpoint}` };
    } catch (err) {
      // The detail names the server by host:port only, never the URL's password.
      return { ok: false, reason: ((err as { detail?: string }).detail ?? 'could not connect').replace(/^the SMTP server at \S+ /, 'the server ') };
    } finally {
      mailer.close();
    }
  },
};
