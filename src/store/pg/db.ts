import knex, { type Knex } from 'knex';
import type pg from 'pg';
import type { Config } from '../../config/schema.js';
import { guard } from './errors.js';
import { migrationSource } from './migrations/index.js';

export type Executor = Knex | Knex.Transaction;

/**
 * The region's PostgreSQL: a writer and, when `database.readUrl` is set, a reader (read replica).
 * Reads that can tolerate replica lag go to `reader`; everything that decides a security outcome
 * (rotation, revocation) reads from `writer`.
 */
export class Db {
  readonly writer: Knex;
  readonly reader: Knex;
  /** Connections per pool at most (config `database.poolMax`). */
  readonly poolMax: number;
  private readonly onQuery: ((pool: 'writer' | 'reader', seconds: number, ok: boolean) => void) | undefined;
  /** Named prepared statements live in one server connection: not behind a transaction pooler. */
  private readonly namedStatements: boolean;

  /** @param onQuery receives every query's duration, by pool (metrics). */
  constructor(config: Config['database'], onQuery?: (pool: 'writer' | 'reader', seconds: number, ok: boolean) => void) {
    this.writer = createKnex(config.url, config);
    this.poolMax = config.poolMax;
    this.onQuery = onQuery;
    this.namedStatements = config.pooler === 'none';
    this.reader = config.readUrl ? createKnex(config.readUrl, config) : this.writer;
    if (onQuery) {
      timeQueries(this.writer, (seconds, ok) => onQuery('writer', seconds, ok));
      if (this.reader !== this.writer) timeQueries(this.reader, (seconds, ok) => onQuery('reader', seconds, ok));
    }
  }

  /** Connections per pool (tarn): in use, idle, and acquisitions waiting for one. */
  poolStats(): Array<{ pool: string; used: number; free: number; pending: number }> {
    const pools: Array<[string, Knex]> = [['writer', this.writer], ...(this.reader !== this.writer ? [['reader', this.reader] as [string, Knex]] : [])];
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

  /** Cheap liveness check for `/readyz`. */
  async ping(): Promise<void> {
    await guard(this.writer.raw('select 1'));
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
    await Promise.all([this.writer.destroy(), this.reader === this.writer ? undefined : this.reader.destroy()]);
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
