import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import winston from 'winston';
import type { ConfigInput } from '../../src/config/schema.js';
import { buildContainer, type Container } from '../../src/container.js';
import type { Clock } from '../../src/platform/clock.js';
import { JobQueue } from '../../src/jobs/job-queue.js';
import type { Logger } from '../../src/platform/logger.js';
import type { SessionRecord } from '../../src/model/session.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { shutdown } from '../../src/runtime.js';

export interface LogEntry {
  level: string;
  message: string;
  event?: string;
  [key: string]: unknown;
}

/** A real winston logger that keeps its entries, so tests can assert on events. */
export function captureLogger(): { log: Logger; entries: LogEntry[]; events: (name: string) => LogEntry[] } {
  const entries: LogEntry[] = [];
  const sink = new Writable({
    objectMode: true,
    write(info: LogEntry, _encoding, next) {
      entries.push(info);
      next();
    },
  });
  const log = winston.createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream: sink })] });
  return { log, entries, events: (name) => entries.filter((e) => e.event === name) };
}

export interface JobsFixture {
  db: TestDatabase;
  container: Container;
  /** A JobQueue on the fixture's database, stopped by close(). */
  newQueue(options?: { log?: Logger }): JobQueue;
  close(): Promise<void>;
}

/**
 * A database of its own, migrated the way `authctl migrate` does it: authctl's tables, then the
 * job queue.
 */
export async function setupJobs(label: string, options: { overrides?: ConfigInput; clock?: Clock; log?: Logger } = {}): Promise<JobsFixture> {
  const db = await createTestDatabase(label);
  const config = testConfig(db.url, options.overrides);
  const container = buildContainer(config, { ...(options.clock ? { clock: options.clock } : {}), ...(options.log ? { log: options.log } : {}) });
  await container.db.migrateLatest();
  const queues: JobQueue[] = [];
  const newQueue = (queueOptions: { log?: Logger } = {}) => {
    const queue = new JobQueue({ config, log: queueOptions.log ?? container.log });
    queues.push(queue);
    return queue;
  };
  await newQueue().install();
  return {
    db,
    container,
    newQueue,
    async close() {
      await Promise.allSettled(queues.map((q) => q.stop({ graceful: false })));
      await shutdown(container);
      await db.drop();
    },
  };
}

/** Polls `check` until it holds, at most `timeoutMs`; fails with `what` otherwise. */
export async function waitUntil(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A session row as SessionsRepo.insert takes it, around `now`. */
export function sessionAt(now: Date, fields: { expiresInSeconds: number; userId?: string | null }): Omit<SessionRecord, 'revokedAt' | 'revokeReason'> {
  const expiresAt = new Date(now.getTime() + fields.expiresInSeconds * 1000);
  const created = new Date(Math.min(now.getTime() - 60_000, expiresAt.getTime() - 3_600_000));
  return {
    id: randomUUID(),
    userId: fields.userId ?? null,
    homeRegion: 'local',
    counter: 0,
    createdAt: created,
    lastUsedAt: created,
    rotatedAt: created,
    expiresAt,
    userAgent: null,
    ip: null,
    authTime: created,
    amr: ['pwd'],
    idp: null,
    passkeyId: null,
  };
}
