import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { expectProblem, uniquePassword, type UserView } from '../helpers/http-assert.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { startWorker, type RunningWorker } from '../../src/jobs/worker.js';
import { migrateDatabase, startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { TcpProxy } from '../helpers/http-tcp-proxy.js';
import { LogCapture } from '../helpers/log-capture.js';
import { waitUntil } from '../jobs/setup.js';
import { TestSmtpServer, type Received } from '../mail/support.js';

export const FROM = 'authctl tests <no-reply@example.test>';

/** A region with e-mail identity on: the HTTP app, its worker (polling every 0.5 s) and a real SMTP server. */
export interface EmailRegion {
  app: TestApp;
  smtp: TestSmtpServer;
  worker: RunningWorker;
  logs: LogCapture;
  close(): Promise<void>;
}

export async function startEmailRegion(label: string, overrides: ConfigInput = {}, smtp?: TestSmtpServer, db?: TestDatabase): Promise<EmailRegion> {
  const server = smtp ?? (await TestSmtpServer.start());
  const logs = new LogCapture();
  const app = await startTestApp(label, {
    logSink: logs,
    ...(db ? { db } : {}),
    overrides: {
      log: { level: 'info' },
      ...overrides,
      // Every test sends from 127.0.0.1: the per-client limit would trip across unrelated tests
      // (the per-address limits keep their defaults).
      identity: { email: 'optional', sendsPerIpPerHour: 100_000, ...overrides.identity },
      mail: { transport: 'smtp', smtpUrl: `smtp://127.0.0.1:${server.port}`, from: FROM, retryDelaySeconds: 1, retryDelayMaxSeconds: 2, ...overrides.mail },
    },
  });
  const worker = await startWorker(app.container, app.container.jobs, { pollingIntervalSeconds: 0.5, stopTimeoutMs: 5_000 });
  return {
    app,
    smtp: server,
    worker,
    logs,
    async close() {
      await worker.stop();
      await app.close();
      if (!smtp) await server.close();
    },
  };
}

/** The code and link of a message (the 6 digits on a line of their own, the first http link). */
export function codeAndLink(mail: Received): { code: string; link: string; token: string } {
  const text = mail.parsed.text ?? '';
  const code = /^\s*(\d{6})\s*$/m.exec(text)?.[1];
  const link = /(https?:\/\/\S+)/.exec(text)?.[1];
  if (!code || !link) throw new Error(`no code or link in: ${text}`);
  return { code, link, token: new URL(link).searchParams.get('token') ?? '' };
}

/** Waits for a message to `to` whose subject matches, after `since` messages were received. */
export async function nextMail(smtp: TestSmtpServer, to: string, subject: RegExp, since = 0, timeoutMs = 15_000): Promise<Received> {
  let found: Received | undefined;
  await waitUntil(
    () => {
      found = smtp.received.slice(since).find((m) => m.envelopeTo.includes(to) && subject.test(m.parsed.subject ?? ''));
      return found !== undefined;
    },
    `a message to ${to} matching ${subject}`,
    timeoutMs,
  );
  return found!;
}

/** Rewrites a link of a message (at `publicUrl`/the issuer) to the region's own address. */
export function local(region: EmailRegion, link: string): string {
  return link.replace(/^https?:\/\/[^/]+/, region.app.url);
}

/** The `data` of the jobs of `queue` (pg-boss keeps finished jobs in pgboss.job until they are deleted). */
export async function jobRows(region: EmailRegion, queues: string[]): Promise<Array<{ name: string; state: string; data: unknown }>> {
  const result = await region.app.container.db.writer.raw<{ rows: Array<{ name: string; state: string; data: unknown }> }>(
    'select name, state, data from pgboss.job where name = any(?) order by created_on',
    [queues],
  );
  return result.rows;
}

/**
 * Waits until every anonymous request naming `who` (an address or a username) was handled by
 * the worker: what it would have sent is in the mail queue (or was never enqueued) by then.
 */
export async function requestsDone(region: EmailRegion, who: { email?: string; username?: string }, count = 1): Promise<void> {
  await waitUntil(
    async () => {
      const rows = (await jobRows(region, ['email-request'])).filter((r) => {
        const data = r.data as { email?: string; username?: string };
        return who.email !== undefined ? data.email === who.email : data.username === who.username;
      });
      return rows.length >= count && rows.every((r) => r.state === 'completed');
    },
    `the email-request jobs for ${JSON.stringify(who)}`,
  );
}

/** Waits until no mail job is waiting or being sent: every message enqueued so far was delivered (or given up). */
export async function mailQueueIdle(region: EmailRegion, timeoutMs = 15_000): Promise<void> {
  await waitUntil(
    async () => (await jobRows(region, ['mail', 'email-request'])).every((r) => r.state === 'completed' || r.state === 'failed' || r.state === 'cancelled'),
    'an idle mail queue',
    timeoutMs,
  );
}

/** A short random tag for unique usernames and addresses. */
export const tag = (): string => randomBytes(4).toString('hex');

/** POSTs JSON to the region (with a Bearer token if given). */
export function poster(region: EmailRegion): (path: string, json: unknown, token?: string) => Promise<Response> {
  return (path, json, token) => region.app.request(path, { method: 'POST', json, ...(token ? { token } : {}) });
}

export interface SignedUp {
  username: string;
  email: string;
  password: string;
  user: UserView;
  /** The first verification message. */
  first: Received;
}

/** A user signed up over HTTP with an address (unverified), and its first verification message (through `wait`). */
export async function signUp(
  region: EmailRegion,
  prefix: string,
  wait: (to: string, subject: RegExp, since: number) => Promise<Received> = (to, subject, since) => nextMail(region.smtp, to, subject, since),
): Promise<SignedUp> {
  const username = `${prefix}${tag()}`;
  const email = `${username}@example.com`;
  const password = uniquePassword();
  const since = region.smtp.received.length;
  const res = await poster(region)('/v1/auth/register', { username, email, password });
  expect(res.status, await res.clone().text()).to.equal(201);
  const { user } = (await res.json()) as { user: UserView };
  return { username, email, password, user, first: await wait(email, /verification code/, since) };
}

/**
 * An e-mail region whose PostgreSQL is reached through a TCP proxy the test stops and starts (a
 * database outage), with short database timeouts so a request answers 503 quickly.
 */
export interface ProxiedEmailRegion {
  region: EmailRegion;
  proxy: TcpProxy;
  close(): Promise<void>;
}

export async function startProxiedEmailRegion(label: string): Promise<ProxiedEmailRegion> {
  const db = await createTestDatabase(label);
  const proxy = new TcpProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port || 5432) });
  await proxy.start();
  const proxied = new URL(db.url);
  proxied.port = String(proxy.port);
  await migrateDatabase(proxied.toString());
  const region = await startEmailRegion(label, { database: { connectTimeoutMs: 500, statementTimeoutMs: 1_000 } }, undefined, {
    ...db,
    url: proxied.toString(),
  });
  return {
    region,
    proxy,
    async close() {
      if (!proxy.listening) await proxy.start();
      await region.close();
      await proxy.stop();
      await db.drop();
    },
  };
}

/** Asserts a `503 unavailable` problem with a `Retry-After` in seconds. */
export async function expectUnavailable(res: Response): Promise<void> {
  await expectProblem(res, 503, 'unavailable');
  expect(res.headers.get('retry-after'), 'Retry-After').to.match(/^\d+$/);
}
