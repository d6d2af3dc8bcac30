import { expect } from 'chai';
import type { TestApp } from '../helpers/app.js';
import { sleep } from '../helpers/http-assert.js';

export interface Readiness {
  status: string;
  checks: Record<string, string>;
  failing?: string[];
}

export async function readiness(app: TestApp): Promise<{ status: number; body: Readiness }> {
  const res = await app.request('/readyz');
  return { status: res.status, body: (await res.json()) as Readiness };
}

/** The value of one sample of `name` whose labels include `labels` (0 when absent). */
export async function metricValue(app: TestApp, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await app.request('/metrics');
  expect(res.status).to.equal(200);
  const text = await res.text();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = new Map<string, string>();
    for (const m of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found.set(m[1]!, m[2]!);
    if (Object.entries(labels).every(([k, v]) => found.get(k) === v)) return Number(match[3]);
  }
  return 0;
}

/**
 * Polls `GET /v1/verify` with `accessToken` on `app` until it is refused, for at most `limitMs`.
 * Returns the time it took and the refusing response, or undefined with the last status.
 */
export async function timeUntilRefused(
  app: TestApp,
  accessToken: string,
  limitMs: number,
): Promise<{ ms: number; response: Response } | { ms: undefined; lastStatus: number }> {
  const started = Date.now();
  for (;;) {
    const res = await app.request('/v1/verify', { token: accessToken });
    if (res.status !== 200) return { ms: Date.now() - started, response: res };
    await res.body?.cancel();
    if (Date.now() - started > limitMs) return { ms: undefined, lastStatus: res.status };
    await sleep(25);
  }
}

/** Polls `probe` until it returns something other than undefined, for at most `limitMs`. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, limitMs = 2_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > limitMs) expect.fail(`${what}: not within ${limitMs} ms`);
    await sleep(25);
  }
}

/** One request of a traffic test: when, on which server, what, and how it ended (-1: no response). */
export interface TrafficSample<Phase extends string = string, Op extends string = string> {
  phase: Phase;
  server: 'A' | 'B';
  op: Op;
  status: number;
  ms: number;
  body?: string;
}

/** Sends one request of a traffic test and records its sample, with the body of anything not 2xx. */
export async function recorded<Phase extends string, Op extends string>(
  samples: Array<TrafficSample<Phase, Op>>,
  what: Pick<TrafficSample<Phase, Op>, 'phase' | 'server' | 'op'>,
  send: () => Promise<Response>,
): Promise<Response> {
  const started = Date.now();
  let res: Response;
  try {
    res = await send();
  } catch (err) {
    samples.push({ ...what, status: -1, ms: Date.now() - started, body: String(err) });
    throw err;
  }
  const sample: TrafficSample<Phase, Op> = { ...what, status: res.status, ms: Date.now() - started };
  if (res.status >= 300) sample.body = await res.clone().text();
  samples.push(sample);
  return res;
}

/** Samples counted by phase, server, operation and status, a line each (for failure messages). */
export function describeSamples(list: TrafficSample[]): string {
  const counts = new Map<string, number>();
  for (const s of list) {
    const key = `${s.phase} ${s.server} ${s.op} ${s.status}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${k} ×${n}`).join('\n');
}
