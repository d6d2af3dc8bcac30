import { AppError } from '../../platform/errors.js';

// SQLSTATE classes and node socket errors that mean "the database is not reachable right now"
// rather than "this query is wrong": they become 503 `unavailable` / exit 69.
// 57014: the statement timeout cancelled the query — the database could not answer in time.
// 25006: a write reached a read-only server — during a writer failover, the demoted writer or a
// replica that the writer's address still resolved to.
const UNAVAILABLE_SQLSTATES = new Set(['57014', '57P01', '57P02', '57P03', '53300', '53400', '25006']);
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'EPIPE', 'ENETUNREACH']);
// "timeout expired" is pg's own connect timer, which can fire before knex's acquire timeout does.
const UNAVAILABLE_MESSAGES = [
  /Connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /Timeout acquiring a connection/i,
  /Client has encountered a connection error/i,
  /the database system is (starting up|shutting down)/i,
  /Connection ended/i,
  /Query read timeout/i,
  /Client was closed/i,
  /socket hang up/i,
  /Connection (closed|lost)/i,
  /database .* does not exist/i,
  /^timeout expired$/i,
];

interface PgLikeError {
  code?: string;
  name?: string;
  message?: string;
  constraint?: string;
  errors?: unknown[];
}

export function isUnavailableError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as PgLikeError;
  if (e.name === 'KnexTimeoutError') return true;
  if (e.code && (UNAVAILABLE_SQLSTATES.has(e.code) || e.code.startsWith('08') || UNAVAILABLE_ERRNOS.has(e.code))) return true;
  if (e.message && UNAVAILABLE_MESSAGES.some((re) => re.test(e.message!))) return true;
  // `AggregateError` from a dual-stack connect: unavailable if every attempt was.
  if (Array.isArray(e.errors) && e.errors.length > 0) return e.errors.every(isUnavailableError);
  return false;
}

/** The one place where PostgreSQL errors become AppErrors. Anything unknown is rethrown as is (a bug → 500). */
export function translateDbError(err: unknown): unknown {
  if (err instanceof AppError) return err;
  if (isUnavailableError(err)) {
    return new AppError('unavailable', 'the database is unavailable; try again shortly', { cause: err, retryAfter: 2 });
  }
  const e = err as PgLikeError;
  if (e.code === '23505') {
    return new AppError('conflict', 'the record already exists', { cause: err });
  }
  return err;
}

export function uniqueConstraintOf(err: unknown): string | undefined {
  if (err instanceof AppError && err.code === 'conflict') return (err.cause as PgLikeError | undefined)?.constraint;
  return undefined;
}

/** Awaits a query and translates its failure. */
export async function guard<T>(work: Promise<T> | PromiseLike<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw translateDbError(err);
  }
}
