/**
 * `forgot`: POST /v1/auth/password/forgot for a mix of known and unknown addresses, on a region of
 * its own with e-mail identity on, `authctl worker` running and a local SMTP catcher. Run twice:
 * the catcher answering each message at once, then after 500 ms. The request path only validates
 * and enqueues a job (the worker looks the account up and sends), so its latency must not follow
 * the SMTP server's.
 *
 * The send limits are off for this region (AUTHCTL_RATE_LIMIT=false): with them on, every request
 * after the first per address and minute takes the limit's shortcut (nothing enqueued), and the
 * run would measure that instead of the enqueue.
 */
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';
import { inParallel, JSON_HEADERS, PASSWORD, postJson } from '../lib/api.js';
import { processCpuSeconds } from '../lib/cpu.js';
import { Cleanup, startEnvironment } from '../lib/env.js';
import { measure, warmUp, type LoadResult, type LoadSpec, type LoadTarget } from '../lib/load.js';
import type { Scenario } from '../lib/scenario.js';

/** Delays of the catcher's reply to each message, one measured run each. */
export const SMTP_DELAYS_MS = [0, 500] as const;
/** Accounts with an address; every other request names one of them, the rest unknown addresses. */
const KNOWN = 32;
/** Seconds the worker is watched on the backlog after the runs. */
const DRAIN_S = 10;

/** An SMTP server that counts messages and holds each reply `delayMs`. */
async function startCatcher(): Promise<{ url: string; delivered(): number; setDelay(ms: number): void; close(): Promise<void> }> {
  let delivered = 0;
  let delayMs = 0;
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    closeTimeout: 500,
    onData(stream, _session, callback) {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        setTimeout(() => {
          delivered++;
          callback();
        }, delayMs);
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}`,
    delivered: () => delivered,
    setDelay: (ms) => (delayMs = ms),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const forgot: Scenario = {
  name: 'forgot',
  summary: `POST /v1/auth/password/forgot, half known half unknown addresses, worker running, SMTP replies after ${SMTP_DELAYS_MS.join(' / ')} ms`,
  async run(ctx) {
    const cleanup = new Cleanup();
    const results: LoadResult[] = [];
    try {
      const catcher = await startCatcher();
      cleanup.add('closing the SMTP catcher', () => catcher.close());
      const env = await startEnvironment({
        name: 'bench_forgot',
        pgUrl: ctx.pgUrl,
        redis: ctx.redis,
        worker: true,
        serverEnv: {
          AUTHCTL_IDENTITY_EMAIL: 'optional',
          AUTHCTL_REQUIRE_VERIFIED_EMAIL: 'true',
          AUTHCTL_MAIL_TRANSPORT: 'smtp',
          AUTHCTL_SMTP_URL: catcher.url,
          AUTHCTL_MAIL_FROM: 'bench <no-reply@bench.localhost>',
          AUTHCTL_RATE_LIMIT: 'false',
        },
        cleanup,
        log: ctx.log,
      });
      const known = Array.from({ length: KNOWN }, (_, i) => `known-${ctx.tag}-${i}@bench.localhost`);
      ctx.log(`  seeding ${KNOWN} users with an address`);
      await inParallel(known, 8, async (email, i) => {
        const res = await postJson(`${env.base}/v1/auth/register`, { username: `forgot-${ctx.tag}-${i}`, email, password: PASSWORD });
        if (res.status !== 201) throw new Error(`register ${email}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
      });
      const db = new pg.Client({ connectionString: env.databaseUrl });
      await db.connect();
      cleanup.add('closing the backlog query connection', () => db.end());
      /** Jobs of a queue not done yet (pg-boss's table): what the worker has still to do. */
      const backlog = async (queue: string) =>
        Number(
          (
            await db.query<{ n: string }>(
              `select count(*) as n from ${env.config.jobs.schema}.job where name = $1 and state in ('created', 'retry', 'active')`,
              [queue],
            )
          ).rows[0]!.n,
        );
      const target: LoadTarget = { ...ctx.target, base: env.base, serverPid: env.serverPid, database: env.databaseName };
      let n = 0;
      const spec = (delay: number): LoadSpec => ({
        name: `forgot (SMTP ${delay} ms)`,
        route: 'POST /v1/auth/password/forgot',
        expect: 202,
        durationS: ctx.durationS,
        connection: () => [
          {
            method: 'POST',
            path: '/v1/auth/password/forgot',
            headers: { ...JSON_HEADERS },
            setupRequest: (req) => {
              const i = n++;
              const email = i % 2 === 0 ? known[(i >> 1) % KNOWN]! : `ghost-${ctx.tag}-${i}@bench.localhost`;
              return { ...req, body: JSON.stringify({ email }) };
            },
          },
        ],
      });
      for (const delay of SMTP_DELAYS_MS) {
        catcher.setDelay(delay);
        await warmUp(target, spec(delay), ctx.warmupS);
        const deliveredBefore = catcher.delivered();
        const workerBefore = env.workerPid === undefined ? 0 : processCpuSeconds(env.workerPid);
        const started = performance.now();
        const result = await measure(target, spec(delay));
        const seconds = (performance.now() - started) / 1000;
        const delivered = catcher.delivered() - deliveredBefore;
        const workerCpu = env.workerPid === undefined ? 0 : Math.round(((processCpuSeconds(env.workerPid) - workerBefore) / seconds) * 100);
        result.notes.push(
          `worker: ${delivered} messages delivered during the run (${Math.round(delivered / seconds)}/s), ${workerCpu} % CPU; left queued: ${await backlog('email-request')} email-request, ${await backlog('mail')} mail jobs`,
        );
        results.push(result);
      }
      // The worker's own pace on the backlog, without load: email-request jobs done per second.
      const before = await backlog('email-request');
      const deliveredBefore = catcher.delivered();
      await new Promise((resolve) => setTimeout(resolve, DRAIN_S * 1000));
      const done = before - (await backlog('email-request'));
      results
        .at(-1)!
        .notes.push(
          `then ${DRAIN_S} s without load: ${Math.round(done / DRAIN_S)} email-request jobs/s done, ${Math.round((catcher.delivered() - deliveredBefore) / DRAIN_S)} messages/s delivered`,
        );
    } finally {
      await cleanup.run();
    }
    return results;
  },
};
