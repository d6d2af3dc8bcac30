import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Knex } from 'knex';
import { standardPhc } from '../core/users/password-hasher.js';
import type { Db } from '../store/pg/db.js';
import type { ExportedIdentityRow, IdentitiesRepo } from '../store/pg/identities-repo.js';
import type { ExportedUserRow, UsersRepo } from '../store/pg/users-repo.js';
import type { PortableIdentity, PortableUser } from './portable-user.js';

/**
 * Users per query. Large enough that the round trips vanish against the rows (a page of 1,000 is
 * about a millisecond of index scan; the export still writes well over 100,000 users/s), small
 * enough that one page — its rows, their identities and its text, about 300 KB — is all the export
 * ever holds. Pages of 5,000 were 10 % faster but raised the peak RSS by about 60 MB: more of each
 * page is still live when the young generation is collected, so more is promoted, and V8 lets the
 * old generation grow in proportion before it collects it.
 */
export const EXPORT_PAGE_SIZE = 1_000;

export interface UserExportDeps {
  db: Pick<Db, 'snapshot'>;
  users: Pick<UsersRepo, 'pageById' | 'count'>;
  identities: Pick<IdentitiesRepo, 'liveInUserRange'>;
}

export interface ExportOptions {
  pageSize?: number;
  /** Read the writer even when a read replica is configured (`authctl user export --writer`). */
  writer?: boolean;
  /** Ends `out` when the export is done (not for standard output). Default true. */
  end?: boolean;
  /** Called after every page handed to `out`, with the users written so far. */
  onProgress?: (users: number) => void;
}

export interface ExportSummary {
  users: number;
  identities: number;
  /** Queries of users run (one per page, plus the empty one that ends it). */
  pages: number;
}

/**
 * `authctl user export`: every user of the region as NDJSON, one {@link PortableUser} a line, in id
 * order, what `authctl user import --format ndjson` reads back.
 *
 * Constant memory: users are read a page at a time by keyset on the primary key, each page's
 * identities in one more query, and the next page is read only once `out` has taken the last one
 * (the pipeline's backpressure), so a slow disk or pipe holds the export back instead of filling
 * memory. All pages are read in one read-only REPEATABLE READ transaction ({@link Db.snapshot}):
 * the export is the region as it was at one moment — a user renamed, deleted or registered during
 * it is exported as it was or not at all, never twice or half-changed — and it locks nothing. The
 * price is a snapshot held for the export's duration (vacuum keeps the rows it sees; on a replica,
 * a conflicting replay can cancel it unless `hot_standby_feedback` is on — then `--writer`).
 *
 * Deleted users are gone and not exported; disabled ones are, with `disabled: true`. Second
 * factors, recovery codes and sessions are never read.
 */
export class UserExport {
  constructor(private readonly deps: UserExportDeps) {}

  /** About how many users an export writes (exact below 100,000, the planner's estimate above): for a progress line. */
  async estimate(): Promise<number> {
    return (await this.deps.users.count()).count;
  }

  async writeNdjson(out: Writable, options: ExportOptions = {}): Promise<ExportSummary> {
    const summary: ExportSummary = { users: 0, identities: 0, pages: 0 };
    const pageSize = options.pageSize ?? EXPORT_PAGE_SIZE;
    await this.deps.db.snapshot(
      async (trx) => {
        // One page in flight: the next query waits until `out` has taken this one.
        const source = Readable.from(this.pages(trx, pageSize, summary, options.onProgress), { objectMode: true, highWaterMark: 1 });
        await pipeline(source, out, { end: options.end ?? true });
      },
      { writer: options.writer },
    );
    return summary;
  }

  private async *pages(trx: Knex.Transaction, pageSize: number, summary: ExportSummary, onProgress?: (users: number) => void): AsyncGenerator<string> {
    let after: string | undefined;
    for (;;) {
      const users = await this.deps.users.pageById(after, pageSize, trx);
      summary.pages += 1;
      if (users.length === 0) return;
      const first = users[0]!.id;
      after = users.at(-1)!.id;
      const identities = groupByUser(await this.deps.identities.liveInUserRange(first, after, trx));
      let text = '';
      for (const user of users) {
        const own = identities.get(user.id) ?? [];
        summary.identities += own.length;
        text += `${JSON.stringify(portableUser(user, own))}\n`;
      }
      summary.users += users.length;
      yield text;
      onProgress?.(summary.users);
      if (users.length < pageSize) return;
    }
  }
}

/**
 * The portable record of a user: every field, nulls included, so that every line has the same
 * shape. The password hash as a standard PHC string (a row written before migration 0011, or
 * replicated from a region that still writes the argon2 package's order, is reordered here too);
 * an imported foreign hash as it is stored.
 */
export function portableUser(row: ExportedUserRow, identities: PortableIdentity[]): Required<PortableUser> {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    emailVerified: row.email_verified_at !== null,
    emailVerifiedAt: row.email_verified_at?.toISOString() ?? null,
    passwordHash: row.password_hash === null ? null : standardPhc(row.password_hash),
    disabled: row.status === 'disabled',
    createdAt: row.created_at.toISOString(),
    homeRegion: row.home_region,
    identities,
  };
}

function groupByUser(rows: ExportedIdentityRow[]): Map<string, PortableIdentity[]> {
  const byUser = new Map<string, PortableIdentity[]>();
  for (const row of rows) {
    const identity: PortableIdentity = { provider: row.provider, subject: row.subject, email: row.email, emailVerified: row.email_verified };
    const own = byUser.get(row.user_id);
    if (own) own.push(identity);
    else byUser.set(row.user_id, [identity]);
  }
  return byUser;
}
