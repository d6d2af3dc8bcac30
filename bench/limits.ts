/**
 * The raw ceilings of this machine for the three things our hot paths are made of, measured in
 * the bench process (not through the server) while the server is idle:
 * - jose `jwtVerify` of one of our real access tokens with its JWKS key and the server's checks;
 * - argon2id `verify` at the configured parameters, through libuv's threadpool like the server;
 * - single-row `UPDATE … RETURNING` autocommits through `pg` with the server's pool size.
 * Each runs with concurrency = connections, like the HTTP scenarios.
 */
import argon2 from 'argon2';
import { decodeProtectedHeader, importJWK, jwtVerify, type JSONWebKeySet } from 'jose';
import pg from 'pg';
import type { Config } from '../src/config/schema.js';
import { PASSWORD } from './lib/api.js';
import { CpuMeter, type CpuUsage } from './lib/cpu.js';
import { closedLoop, round, type LatencySummary } from './lib/stats.js';

export interface Limit {
  /** Operations per second. */
  opsPerS: number;
  ops: number;
  errors: number;
  seconds: number;
  concurrency: number;
  latencyMs: LatencySummary;
  cpu: CpuUsage;
}

export interface Limits {
  jose: Limit & { alg: string };
  argon2: Limit & { memoryCost: number; timeCost: number; parallelism: number; uvThreadpoolSize: string };
  pg: Limit & { poolMax: number; statement: string };
}

export interface LimitsInput {
  base: string;
  serverPid: number;
  config: Config;
  databaseUrl: string;
  databaseName: string;
  /** A real access token the server issued. */
  accessToken: string;
  connections: number;
  log: (line: string) => void;
}

async function timed(input: LimitsInput, seconds: number, op: (worker: number) => Promise<unknown>): Promise<Limit> {
  // Unmeasured: JIT, connections, the threadpool's first start.
  const concurrency = input.connections;
  await closedLoop(concurrency, Math.min(0.5, seconds / 4), op);
  const meter = new CpuMeter(input.serverPid, input.databaseName);
  const run = await closedLoop(concurrency, seconds, op);
  return {
    opsPerS: Math.round((run.ops - run.errors) / run.elapsedS),
    ops: run.ops,
    errors: run.errors,
    seconds: round(run.elapsedS),
    concurrency,
    latencyMs: run.latency,
    cpu: meter.stop(),
  };
}

export async function measureLimits(input: LimitsInput): Promise<Limits> {
  const { connections, config } = input;

  // jose: the key from the JWKS, the claims checks the server makes (src/core/tokens/access-tokens.ts).
  const { kid, alg } = decodeProtectedHeader(input.accessToken);
  const jwks = (await (await fetch(`${input.base}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
  const jwk = jwks.keys.find((k) => k.kid === kid);
  if (!jwk || !alg) throw new Error(`no JWKS key for kid ${kid}`);
  const key = await importJWK(jwk, alg);
  const options = {
    algorithms: [alg],
    issuer: config.tokens.issuer,
    audience: config.tokens.audience,
    typ: 'at+jwt',
    clockTolerance: config.tokens.clockSkew,
    requiredClaims: ['exp', 'iat', 'sub', 'jti'],
  };
  input.log(`limits: jose jwtVerify (${alg}), ${connections} concurrent, 3 s`);
  const jose = { ...(await timed(input, 3, () => jwtVerify(input.accessToken, key, options))), alg };

  // argon2: verify of a hash made at the configured parameters.
  const params = config.hash;
  const hash = await argon2.hash(PASSWORD, { type: argon2.argon2id, ...params });
  input.log(`limits: argon2id verify (m=${params.memoryCost} KiB, t=${params.timeCost}, p=${params.parallelism}), ${connections} concurrent, 5 s`);
  const argon = {
    ...(await timed(input, 5, async () => {
      if (!(await argon2.verify(hash, PASSWORD))) throw new Error('argon2 verify failed');
    })),
    ...params,
    uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
  };

  // pg: one row per worker, so no row lock is contended: the ceiling of commits, not of locking.
  const poolMax = config.database.poolMax;
  const pool = new pg.Pool({ connectionString: input.databaseUrl, max: poolMax });
  const statement = 'UPDATE bench_limit SET n = n + 1 WHERE id = $1 RETURNING n';
  try {
    await pool.query('CREATE TABLE bench_limit (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)');
    await pool.query('INSERT INTO bench_limit (id) SELECT generate_series(1, $1::int)', [connections]);
    input.log(`limits: pg ${statement}, pool max ${poolMax}, ${connections} concurrent, 5 s`);
    const commits = await timed(input, 5, (worker) => pool.query(statement, [worker + 1]));
    await pool.query('DROP TABLE bench_limit');
    return { jose, argon2: argon, pg: { ...commits, poolMax, statement } };
  } finally {
    await pool.end();
  }
}
