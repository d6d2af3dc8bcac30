import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import type { ReplicationBacklog } from '../core/replication/backlog.js';
import type { UserService } from '../core/users/user-service.js';

export type CheckResult = 'pass' | 'fail' | 'skip';

/** One row of `authctl check`: what was checked, how it went, how long it took, and why. */
export interface CheckRow {
  check: string;
  result: CheckResult;
  ms: number;
  /** Status codes, problem codes, key ids, counts: never a token or a password. */
  detail: string;
}

/** Where the expected `iss` came from, so a failure says what to change. */
export type IssuerSource = '--issuer' | 'config' | '--url';

export interface RegionCheckOptions {
  /** The region's base URL, as its clients use it (a load balancer's). */
  url: string;
  issuer: { value: string; source: IssuerSource };
  /** The region's database (a config was given): replication status, and deletion when the API cannot. */
  database?: { backlog: Pick<ReplicationBacklog, 'status'>; users: Pick<UserService, 'delete'> } | undefined;
  /** A peer whose replication lag (p99, or the oldest pending change) is beyond this fails. */
  maxLagSeconds: number;
  /** Per request. */
  timeoutMs: number;
  /** The most the whole run waits for `429 Retry-After`, summed; beyond it the step fails. */
  maxWaitMs: number;
  /** How long a logged-out access token may still be accepted (revocation reaching every server). */
  revocationWaitMs: number;
}

export interface RegionCheckReport {
  url: string;
  issuer: string;
  issuerSource: IssuerSource;
  passed: boolean;
  checks: CheckRow[];
  /** The throw-away user; `deleted: false` with an id means it was left behind (said loudly). */
  user: { id: string | null; username: string; deleted: boolean } | null;
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> | undefined;
}

interface Tokens {
  accessToken: string;
  refreshToken: string;
}

/** A step that did not pass; `message` is the row's detail. */
class StepFailed extends Error {}

/** The region did not answer (unreachable, timed out): what the request did is unknown. */
class NoAnswer extends StepFailed {}

/** What a step returns: its detail and value, or that it was skipped and why. */
interface StepOutcome<T> {
  detail: string;
  value: T;
  result?: 'skip';
}

/** The region over HTTP: bounded requests, `429 Retry-After` waited out within one budget. */
class RegionClient {
  private waitedMs = 0;

  constructor(
    private readonly base: string,
    private readonly opts: Pick<RegionCheckOptions, 'timeoutMs' | 'maxWaitMs'>,
  ) {}

  async call(method: string, path: string, init: { json?: unknown; token?: string } = {}): Promise<Answer> {
    for (;;) {
      const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'authctl-check' };
      if (init.json !== undefined) headers['content-type'] = 'application/json';
      if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
      let res: Response;
      try {
        res = await fetch(this.base + path, {
          method,
          headers,
          body: init.json === undefined ? null : JSON.stringify(init.json),
          signal: AbortSignal.timeout(this.opts.timeoutMs),
          redirect: 'manual',
        });
      } catch (err) {
        throw new NoAnswer(`${method} ${path}: ${unreachable(err, this.opts.timeoutMs)}`);
      }
      const text = await res.text();
      if (res.status === 429) {
        const seconds = Math.max(1, Number.parseInt(res.headers.get('retry-after') ?? '1', 10) || 1);
        if (this.waitedMs + seconds * 1000 > this.opts.maxWaitMs) {
          throw new StepFailed(
            `${method} ${path}: 429 rate_limited, Retry-After ${seconds} s is beyond what --max-wait leaves (${Math.round(this.waitedMs / 1000)} s waited)`,
          );
        }
        this.waitedMs += seconds * 1000;
        await sleep(seconds * 1000);
        continue;
      }
      return { status: res.status, headers: res.headers, body: parseObject(text) };
    }
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function unreachable(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  return `unreachable (${e.cause?.code ?? e.cause?.message ?? e.message ?? String(err)})`;
}

/** `401 invalid_credentials: the current password is wrong`: what a refusal says (problem bodies carry no secret). */
function describe(answer: Answer): string {
  const { code, detail } = answer.body ?? {};
  return [String(answer.status), typeof code === 'string' ? code : undefined].filter(Boolean).join(' ') + (typeof detail === 'string' ? `: ${detail}` : '');
}

function expectStatus(answer: Answer, status: number, what: string): Record<string, unknown> {
  if (answer.status !== status) throw new StepFailed(`${what}: ${describe(answer)} (expected ${status})`);
  return answer.body ?? {};
}

function tokensOf(body: Record<string, unknown>, what: string): Tokens {
  const { accessToken, refreshToken } = body;
  if (typeof accessToken !== 'string' || typeof refreshToken !== 'string') throw new StepFailed(`${what}: the answer has no token pair`);
  return { accessToken, refreshToken };
}

/**
 * `authctl check --url`: a black-box smoke test of a deployed region, as its clients see it —
 * health and readiness, the JWKS, and a throw-away user (`authctl-check-<random>`, a random
 * password) registered, logged in, its token verified against the JWKS and issuer, refreshed
 * twice, logged out (refresh and access token refused), and deleted with `DELETE /v1/me`. The
 * user is deleted whatever failed before (through the database when no session could be had and
 * a config was given); every step is a row, and nothing secret is in any.
 */
export async function checkRegion(opts: RegionCheckOptions): Promise<RegionCheckReport> {
  const base = opts.url.replace(/\/+$/, '');
  const client = new RegionClient(base, opts);
  const checks: CheckRow[] = [];
  const run: Run = async (check, step) => {
    const started = performance.now();
    try {
      const { detail, value, result } = await step();
      checks.push({ check, result: result ?? 'pass', ms: Math.round(performance.now() - started), detail });
      return value;
    } catch (err) {
      const detail = err instanceof StepFailed ? err.message : `unexpected: ${(err as Error).message}`;
      checks.push({ check, result: 'fail', ms: Math.round(performance.now() - started), detail });
      return undefined;
    }
  };
  const skip = (check: string, detail: string) => checks.push({ check, result: 'skip', ms: 0, detail });

  await run('healthz', async () => {
    const body = expectStatus(await client.call('GET', '/healthz'), 200, 'GET /healthz');
    return { detail: `200 ${String(body.status)}`, value: true };
  });
  await run('readyz', async () => {
    const answer = await client.call('GET', '/readyz');
    const states = Object.entries((answer.body?.checks as Record<string, string> | undefined) ?? {})
      .map(([name, state]) => `${name} ${state}`)
      .join(', ');
    if (answer.status !== 200) {
      const why = Object.values((answer.body?.details as Record<string, string> | undefined) ?? {}).join('; ');
      throw new StepFailed(`${answer.status}: ${states || 'no checks'}${why ? ` — ${why}` : ''}`);
    }
    return { detail: `200 ${states}`, value: true };
  });
  const jwks = await run('jwks', async () => {
    const body = expectStatus(await client.call('GET', '/.well-known/jwks.json'), 200, 'GET /.well-known/jwks.json');
    const keys = Array.isArray(body.keys) ? (body.keys as Array<{ kid?: unknown }>) : [];
    if (keys.length === 0) throw new StepFailed('the JWKS lists no key');
    return { detail: `${keys.length} key(s): ${keys.map((k) => String(k.kid)).join(', ')}`, value: body as unknown as JSONWebKeySet };
  });

  const username = `authctl-check-${randomBytes(6).toString('hex')}`;
  // 32 random base64url characters: never common, never the username, never printed.
  const password = randomBytes(24).toString('base64url');
  let user: { id: string | null; registered: 'yes' | 'maybe' } | undefined;
  const cleanup = { deleted: false };
  try {
    user = await register(client, run, username, password);
    if (user?.registered !== 'yes') skip('login', user ? 'registration unconfirmed (no answer)' : 'no user (registration failed)');
    const session = user?.registered === 'yes' ? await login(client, run, username, password) : undefined;
    if (!session) {
      for (const check of ['token', 'refresh', 'logout']) skip(check, user?.registered === 'yes' ? 'no session (login failed)' : 'no user');
    } else {
      await run('token', () => verifyToken(session.accessToken, jwks, user?.id ?? null, opts.issuer));
      const latest = await run('refresh', () => refreshTwice(client, session, user?.id ?? null));
      if (latest) await run('logout', () => logout(client, latest, opts.revocationWaitMs));
      else skip('logout', 'no session (refresh failed)');
    }
    await run('replication', () => replication(opts));
  } finally {
    if (user) await run('delete', () => removeUser(client, opts, { username, password, ...user! }, cleanup));
  }
  return {
    url: base,
    issuer: opts.issuer.value,
    issuerSource: opts.issuer.source,
    passed: checks.every((c) => c.result !== 'fail'),
    checks,
    user: user ? { id: user.id, username, deleted: cleanup.deleted } : null,
  };
}

type Run = <T>(check: string, step: () => Promise<StepOutcome<T>>) => Promise<T | undefined>;

/**
 * Registers by username; a region that requires an address (`identity.email: required`) gets one
 * at `check.invalid` (RFC 6761: never deliverable, so no mailbox anywhere receives it).
 */
async function register(
  client: RegionClient,
  run: Run,
  username: string,
  password: string,
): Promise<{ id: string | null; registered: 'yes' | 'maybe' } | undefined> {
  let maybe = false;
  const registered = await run('register', async () => {
    let body: Record<string, unknown> = { username, password };
    let answer: Answer;
    try {
      answer = await client.call('POST', '/v1/auth/register', { json: body });
      const fields = (answer.body?.errors as Array<{ path?: string }> | undefined) ?? [];
      if (answer.status === 400 && fields.some((f) => f.path === 'email')) {
        body = { ...body, email: `${username.slice('authctl-check-'.length)}@check.invalid` };
        answer = await client.call('POST', '/v1/auth/register', { json: body });
      }
    } catch (err) {
      // No answer: the user may exist all the same; the clean-up looks for it by name.
      maybe = err instanceof NoAnswer;
      throw err;
    }
    const created = expectStatus(answer, 201, 'POST /v1/auth/register');
    const id = (created.user as { id?: unknown } | undefined)?.id;
    return { detail: `201 ${username}${body.email !== undefined ? ' (with an address at check.invalid)' : ''}`, value: typeof id === 'string' ? id : null };
  });
  if (registered !== undefined) return { id: registered, registered: 'yes' };
  return maybe ? { id: null, registered: 'maybe' } : undefined;
}

async function login(client: RegionClient, run: Run, username: string, password: string): Promise<Tokens | undefined> {
  return run('login', async () => {
    const body = expectStatus(await client.call('POST', '/v1/auth/login', { json: { username, password } }), 200, 'POST /v1/auth/login');
    return { detail: `200, access token for ${String(body.expiresIn)} s`, value: tokensOf(body, 'login') };
  });
}

async function verifyToken(
  accessToken: string,
  jwks: JSONWebKeySet | undefined,
  userId: string | null,
  issuer: RegionCheckOptions['issuer'],
): Promise<{ detail: string; value: true }> {
  if (!jwks) throw new StepFailed('cannot verify the access token: the JWKS could not be read');
  const { kid, alg } = decodeProtectedHeader(accessToken);
  const claimed = decodeJwt(accessToken).iss;
  try {
    const { payload } = await jwtVerify(accessToken, createLocalJWKSet(jwks), { issuer: issuer.value, typ: 'at+jwt' });
    if (userId !== null && payload.sub !== userId) throw new StepFailed(`the token's sub is not the registered user's id`);
  } catch (err) {
    if (err instanceof StepFailed) throw err;
    const code = (err as { code?: string }).code;
    if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claimed !== issuer.value) {
      throw new StepFailed(`iss is "${String(claimed)}", expected "${issuer.value}" (from ${issuer.source})`);
    }
    if (code === 'ERR_JWKS_NO_MATCHING_KEY') throw new StepFailed(`the token's key ${String(kid)} is not in the region's JWKS`);
    throw new StepFailed(`the access token does not verify against the JWKS: ${(err as Error).message}`);
  }
  return { detail: `${String(alg)} key ${String(kid)} in the JWKS, iss "${issuer.value}" (from ${issuer.source})`, value: true };
}

/** Rotation: the refreshed pair works (its access token is accepted, its refresh token rotates again). */
async function refreshTwice(client: RegionClient, first: Tokens, userId: string | null): Promise<{ detail: string; value: Tokens }> {
  const refresh = async (from: Tokens) => {
    const next = tokensOf(
      expectStatus(await client.call('POST', '/v1/auth/refresh', { json: { refreshToken: from.refreshToken } }), 200, 'POST /v1/auth/refresh'),
      'refresh',
    );
    if (next.refreshToken === from.refreshToken) throw new StepFailed('the refresh token was not rotated');
    return next;
  };
  const second = await refresh(first);
  const me = expectStatus(await client.call('GET', '/v1/me', { token: second.accessToken }), 200, 'GET /v1/me with the refreshed access token');
  if (userId !== null && (me.user as { id?: unknown } | undefined)?.id !== userId) throw new StepFailed('GET /v1/me answers for another user');
  const third = await refresh(second);
  return { detail: 'rotated twice; the refreshed access token is accepted by /v1/me', value: third };
}

/** After logout, the refresh token is refused at once and the access token once revocation reaches the server asked. */
async function logout(client: RegionClient, tokens: Tokens, waitMs: number): Promise<{ detail: string; value: true }> {
  expectStatus(
    await client.call('POST', '/v1/auth/logout', { token: tokens.accessToken, json: { refreshToken: tokens.refreshToken } }),
    204,
    'POST /v1/auth/logout',
  );
  const refreshed = await client.call('POST', '/v1/auth/refresh', { json: { refreshToken: tokens.refreshToken } });
  if (refreshed.status !== 401) throw new StepFailed(`the refresh token still works after logout: ${describe(refreshed)}`);
  const started = performance.now();
  for (;;) {
    const verify = await client.call('GET', '/v1/verify', { token: tokens.accessToken });
    const elapsed = Math.round(performance.now() - started);
    if (verify.status === 401) return { detail: `204; refresh ${describe(refreshed)}; access token refused after ${elapsed} ms`, value: true };
    if (verify.status !== 200) throw new StepFailed(`GET /v1/verify after logout: ${describe(verify)}`);
    if (elapsed > waitMs) throw new StepFailed(`the access token is still accepted ${elapsed} ms after logout (--revocation-wait)`);
    await sleep(100);
  }
}

async function replication(opts: RegionCheckOptions): Promise<StepOutcome<true>> {
  if (!opts.database) return { detail: 'skipped: no database access (give --config or AUTHCTL_DATABASE_URL)', value: true, result: 'skip' };
  let peers;
  try {
    peers = await opts.database.backlog.status();
  } catch (err) {
    throw new StepFailed(`replication status could not be read: ${(err as Error).message}`);
  }
  if (peers.length === 0) return { detail: 'no peers', value: true };
  const limitMs = opts.maxLagSeconds * 1000;
  const problems: string[] = [];
  const rows = peers.map((p) => {
    if (p.deadLettered > 0) problems.push(`${p.peer}: ${p.deadLettered} dead-lettered change(s) (\`authctl replication retry\`)`);
    if (p.lagP99Ms !== null && p.lagP99Ms > limitMs) problems.push(`${p.peer}: lag p99 ${Math.round(p.lagP99Ms)} ms over ${limitMs} ms`);
    if (p.oldestPendingSeconds !== null && p.oldestPendingSeconds * 1000 > limitMs) {
      problems.push(`${p.peer}: oldest pending change ${p.oldestPendingSeconds.toFixed(1)} s old`);
    }
    return `${p.peer}: backlog ${p.backlog}, lag p99 ${p.lagP99Ms === null ? '-' : `${Math.round(p.lagP99Ms)} ms`}`;
  });
  if (problems.length > 0) throw new StepFailed(problems.join('; '));
  return { detail: rows.join('; '), value: true };
}

/**
 * Deletes the throw-away user: `DELETE /v1/me` from a fresh session (the check's own was logged
 * out), else — no session to be had — through the database when a config gave access to it. A
 * `DELETE /v1/me` that answers wrong fails the row even when the database then removed the user.
 */
async function removeUser(
  client: RegionClient,
  opts: RegionCheckOptions,
  user: { username: string; password: string; id: string | null; registered: 'yes' | 'maybe' },
  state: { deleted: boolean },
): Promise<StepOutcome<true>> {
  const { username, password } = user;
  let why: string;
  let apiRefused = false;
  try {
    const answer = await client.call('POST', '/v1/auth/login', { json: { username, password } });
    if (answer.status === 401 && user.registered === 'maybe') {
      state.deleted = true;
      return { detail: 'the registration did not create the user: nothing to delete', value: true };
    }
    const session = tokensOf(expectStatus(answer, 200, 'login to delete'), 'login to delete');
    const deleted = await client.call('DELETE', '/v1/me', { token: session.accessToken, json: { currentPassword: password } });
    apiRefused = deleted.status !== 204;
    if (!apiRefused) {
      state.deleted = true;
      const after = await client.call('POST', '/v1/auth/refresh', { json: { refreshToken: session.refreshToken } });
      if (after.status !== 401) throw new StepFailed(`DELETE /v1/me answered 204 but the session still refreshes: ${describe(after)}`);
      return { detail: `204 DELETE /v1/me; ${username} is gone`, value: true };
    }
    why = `DELETE /v1/me: ${describe(deleted)}`;
  } catch (err) {
    if (!(err instanceof StepFailed) || state.deleted) throw err;
    why = err.message;
  }
  const label = `${username}${user.id ? ` (${user.id})` : ''}`;
  if (opts.database) {
    try {
      await opts.database.users.delete(user.id ?? username);
      state.deleted = true;
      const detail = `deleted ${label} through the database (${why})`;
      if (apiRefused) throw new StepFailed(detail);
      return { detail, value: true };
    } catch (err) {
      if (state.deleted) throw err;
      if (user.registered === 'maybe' && (err as { code?: unknown }).code === 'not_found') {
        state.deleted = true;
        return { detail: 'the registration did not create the user: nothing to delete', value: true };
      }
      why = `${why}; through the database: ${(err as Error).message}`;
    }
  }
  throw new StepFailed(`THE THROW-AWAY USER ${label} WAS NOT DELETED: ${why}. Delete it with \`authctl user delete ${user.id ?? username} --yes\``);
}
