import knex, { type Knex } from 'knex';
import type pg from 'pg';
import type { Config } from '../../config/schema.js';
import { BreakerOpenError, CircuitBreaker } from '../cache/circuit-breaker.js';
import { guard, isUnavailableError, translateDbError } from './errors.js';
import { migrationSource } from './migrations/index.js';

export type Executor = Knex | Knex.Transaction;

/** `'ok'`, or `'degraded'` while the reader fails and its reads go to the writer. */
export type ReaderHealth = 'ok' | 'degraded';

/** What the reader's routing reports: each read it sent to the writer instead, and health changes. */
export interface ReaderEvents {
  /** `error`: the reader failed this read; `degraded`: the reader was skipped (marked degraded). */
  fallback(reason: 'error' | 'degraded'): void;
  /** The reader became degraded (with the failure that did it) or usable again. */
  health(state: ReaderHealth, cause?: unknown): void;
}

/**
 * The region's PostgreSQL: a writer and, when `database.readUrl` is set, a reader (read replica).
 * Only reads that tolerate the replica's lag go to the reader, through {@link Db.read}; anything a
 * caller must see its own writes in, and everything that decides a security outcome (rotation,
 * revocation, login), reads from `writer` (docs/consistency.md).
 */
export class Db {
  readonly writer: Knex;
  /** Connections per pool at most (config `database.poolMax`). */
  readonly poolMax: number;
  private readonly onQuery: ((pool: 'writer' | 'reader', seconds: number, ok: boolean) => void) | undefined;
  private readonly replica: Replica | undefined;
  /** Named prepared statements live in one server connection: not behind a transaction pooler. */
  private readonly namedStatements: boolean;

  /**
   * @param onQuery receives every query's duration, by pool (metrics).
   * @param readerEvents receives the reader's fallbacks and health changes (metrics, logs).
   */
  constructor(config: Config['database'], onQuery?: (pool: 'writer' | 'reader', seconds: number, ok: boolean) => void, readerEvents?: ReaderEvents) {
    this.writer = createKnex(config.url, config);
    this.poolMax = config.poolMax;
    this.onQuery = onQuery;
    this.namedStatements = config.pooler === 'none';
    this.replica = config.readUrl ? new Replica(createKnex(config.readUrl, config), readerEvents) : undefined;
    if (onQuery) {
      timeQueries(this.writer, (seconds, ok) => onQuery('writer', seconds, ok));
      if (this.replica) timeQueries(this.replica.knex, (seconds, ok) => onQuery('reader', seconds, ok));
    }
  }

  /**
   * Runs a read that tolerates replica lag on the reader (on the writer without one). When the
   * reader cannot answer — unreachable, timed out, its query cancelled by a conflict with
   * recovery — the read is run on the writer instead and the reader is marked degraded: reads
   * skip it until a probe, after a second and backing off to 5 s, finds it answering again.
   * `query` is called once per attempt, so it must build a fresh query each time. Errors of the
   * query itself (not of the reader) are not retried. DB errors are translated.
   */
  async read<T>(query: (k: Knex) => PromiseLike<T>): Promise<T> {
    const replica = this.replica;
    if (!replica) return guard(query(this.writer));
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = await replica.run(async () => {
        try {
          return { value: await query(replica.knex) };
        } catch (err) {
          // The writer would fail this query the same way: report it, do not blame the reader.
          if (!isReaderFailure(err)) return { error: err };
          throw err;
        }
      });
    } catch (err) {
      replica.events?.fallback(err instanceof BreakerOpenError ? 'degraded' : 'error');
      return guard(query(this.writer));
    }
    if ('error' in outcome) throw translateDbError(outcome.error);
    return outcome.value;
  }

  /** Connections per pool (tarn): in use, idle, and acquisitions waiting for one. */
  poolStats(): Array<{ pool: string; used: number; free: number; pending: number }> {
    const pools: Array<[string, Knex]> = [['writer', this.writer], ...(this.replica ? [['reader', this.replica.knex] as [string, Knex]] : [])];
    return pools.map(([pool, k]) => {
      const tarn = (k.client as { pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number } }).pool;
      return { pool, used: tarn?.numUsed() ?? 0, free: tarn?.numFree() ?? 0, pending: tarn?.numPendingAcquires() ?? 0 };
    });
  }

  /**
   * Runs one hot statement on the writer as a named prepared statement (parsed and planned once
   * per connection, not per call), bypassing knex's query building. For the few statements on
   * the request path; everything else goes through knex. Timed like knex queries.
   *
   * Behind a transaction pooler (`database.pooler: "transaction"`) the statement goes unnamed
   * (parsed and planned at every call): a named one would exist only in the server connection
   * that prepared it, and the pooler hands the next call to any server connection ("prepared
   * statement … does not exist" / "… already exists" on PgBouncer before 1.21).
   */
  async prepared<R>(name: string, text: string, values: unknown[]): Promise<R[]> {
    const client = this.writer.client as { acquireConnection(): Promise<pg.ClientBase>; releaseConnection(c: pg.ClientBase): Promise<void> };
    const started = performance.now();
    let ok = false;
    try {
      const connection = await client.acquireConnection();
      try {
        const result = await connection.query<R & pg.QueryResultRow>(this.namedStatements ? { name, text, values } : { text, values });
        ok = true;
        return result.rows;
      } finally {
        await client.releaseConnection(connection);
      }
    } finally {
      this.onQuery?.('writer', (performance.now() - started) / 1000, ok);
    }
  }

  /** Runs `work` in one transaction on the writer; DB errors are translated. */
  transaction<T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    return guard(this.writer.transaction(work));
  }

  /**
   * Runs `work` in one read-only REPEATABLE READ transaction: every query in it sees the same
   * snapshot, so a read of many pages (`authctl user export`) is of one moment, whatever is
   * written meanwhile, without locking anything. On the reader when there is one (a read that
   * tolerates the replica's lag, like the admin reads of {@link Db.read}) unless `writer` is set.
   * A reader that cannot start the transaction sends it to the writer; once `work` has begun
   * nothing is retried — its output may already be out — so a failure after that is the caller's.
   * DB errors are translated.
   */
  async snapshot<T>(work: (trx: Knex.Transaction) => Promise<T>, options: { writer?: boolean } = {}): Promise<T> {
    const config: Knex.TransactionConfig = { isolationLevel: 'repeatable read', readOnly: true };
    const replica = options.writer ? undefined : this.replica;
    let trx: Knex.Transaction | undefined;
    if (replica) {
      try {
        trx = await replica.run(() => replica.knex.transaction(config));
      } catch (err) {
        if (!(err instanceof BreakerOpenError) && !isReaderFailure(err)) throw translateDbError(err);
        replica.events?.fallback(err instanceof BreakerOpenError ? 'degraded' : 'error');
      }
    }
    trx ??= await guard(this.writer.transaction(config));
    try {
      const result = await work(trx);
      await trx.commit();
      return result;
    } catch (err) {
      await trx.rollback().catch(() => undefined);
      throw translateDbError(err);
    }
  }

  /** Cheap liveness check of the writer for `/readyz`. */
  async ping(): Promise<void> {
    await guard(this.writer.raw('select 1'));
  }

  /**
   * The reader's health for `/readyz`, `undefined` without a reader. A `select 1` that counts as
   * a probe: a degraded reader is contacted at most once per retry period, and the answer clears
   * the degraded mark by itself once the replica is back.
   */
  async readerHealth(): Promise<ReaderHealth | undefined> {
    const replica = this.replica;
    if (!replica) return undefined;
    return replica
      .run(() => replica.knex.raw('select 1'))
      .then(
        () => 'ok' as const,
        () => 'degraded' as const,
      );
  }

  async migrateLatest(): Promise<{ batch: number; applied: string[] }> {
    const [batch, applied] = (await guard(this.writer.migrate.latest(migratorConfig))) as [number, string[]];
    return { batch, applied };
  }

  async migrateRollback(all = false): Promise<{ batch: number; reverted: string[] }> {
    const [batch, reverted] = (await guard(this.writer.migrate.rollback(migratorConfig, all))) as [number, string[]];
    return { batch, reverted };
  }

  async migrateStatus(): Promise<{ applied: string[]; pending: string[] }> {
    // With a custom migration source knex lists pending entries as the source's own objects.
    const [completed, pending] = (await guard(this.writer.migrate.list(migratorConfig))) as [
      Array<{ name: string }>,
      Parameters<typeof migrationSource.getMigrationName>[0][],
    ];
    return { applied: completed.map((m) => m.name), pending: pending.map((m) => migrationSource.getMigrationName(m)) };
  }

  async close(): Promise<void> {
    await Promise.all([this.writer.destroy(), this.replica?.knex.destroy()]);
  }
}

/** Times queries through knex's query events, keyed by knex's per-query uid. */
function timeQueries(k: Knex, observe: (seconds: number, ok: boolean) => void): void {
  const started = new Map<string, number>();
  type QueryEvent = { __knexQueryUid?: string };
  const end = (ok: boolean) => (_response: unknown, query: QueryEvent) => {
    const uid = query.__knexQueryUid;
    const at = uid === undefined ? undefined : started.get(uid);
    if (at === undefined) return;
    started.delete(uid!);
    observe((performance.now() - at) / 1000, ok);
  };
  k.on('query', (query: QueryEvent) => {
    if (query.__knexQueryUid) started.set(query.__knexQueryUid, performance.now());
  });
  k.on('query-response', end(true));
  k.on('query-error', end(false));
}

/**
 * The read replica's pool behind a circuit breaker: one failure opens it (a replica that refused
 * a connection or cancelled a query is no better on the next request), and while it is open reads
 * go to the writer without waiting on the replica.
 */
class Replica {
  private readonly breaker: CircuitBreaker;
  private degraded = false;
  private lastFailure: unknown;

  constructor(
    readonly knex: Knex,
    readonly events: ReaderEvents | undefined,
  ) {
    this.breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 1_000, maxOpenMs: 5_000, onStateChange: (state) => this.changed(state) });
  }

  /** Runs `operation` on the reader through the breaker; rejects with BreakerOpenError while degraded. */
  run<T>(operation: () => Promise<T>): Promise<T> {
    return this.breaker.run(() =>
      operation().catch((err: unknown) => {
        this.lastFailure = err;
        throw err;
      }),
    );
  }

  private changed(state: 'closed' | 'open' | 'half-open'): void {
    // A failed probe re-opens the breaker: still the same degraded spell, reported once.
    if (state === 'open' && !this.degraded) {
      this.degraded = true;
      this.events?.health('degraded', this.lastFailure);
    } else if (state === 'closed' && this.degraded) {
      this.degraded = false;
      this.events?.health('ok');
    }
  }
}

/**
 * A failure of the reader rather than of the query: it cannot be reached or answer in time, or a
 * hot standby cancelled the query because replaying the writer's changes needed what it held
 * ("canceling statement due to conflict with recovery", SQLSTATE 40001 or 40P01).
 */
function isReaderFailure(err: unknown): boolean {
  if (isUnavailableError(err)) return true;
  const message = typeof err === 'object' && err !== null ? (err as { message?: unknown }).message : undefined;
  return typeof message === 'string' && /conflict with recovery/i.test(message);
}

const migratorConfig: Knex.MigratorConfig = { migrationSource, tableName: 'authctl_migrations' };

/**
 * How long one statement may run on a connection of the region's database: `statement_timeout`,
 * enforced by the server, sent in the connection's startup packet; and a client-side bound a
 * second later that also covers a database that stops answering on an open connection (network
 * partition, frozen host).
 *
 * Behind a transaction pooler the startup packet carries no `statement_timeout`: PgBouncer refuses
 * the connection over it ("unsupported startup parameter"), and a session setting would follow
 * the server connection, not this client. The server-side bound then comes from the role
 * (`ALTER ROLE … SET statement_timeout`, README "Behind a connection pooler"); the client-side
 * one stays.
 */
export function statementTimeouts(config: Config['database'], ms: number): { statement_timeout?: number; query_timeout: number } {
  return { ...(config.pooler === 'none' ? { statement_timeout: ms } : {}), query_timeout: ms + 1_000 };
}

function createKnex(url: string, config: Config['database']): Knex {
  return knex({
    client: 'pg',
    connection: {
      connectionString: url,
      connectionTimeoutMillis: config.connectTimeoutMs,
      ...statementTimeouts(config, config.statementTimeoutMs),
      keepAlive: true,
      application_name: 'authctl',
    },
    // min 0: the server must start (and answer 503) while the database is down.
    pool: { min: 0, max: config.poolMax },
    acquireConnectionTimeout: config.connectTimeoutMs,
    // Connection failures surface as AppError('unavailable') where they happen (errors.ts);
    // knex's own console warnings would only duplicate them outside the structured log.
    log: { warn: () => undefined, error: () => undefined, deprecate: () => undefined, debug: () => undefined },
  });
}
