import type { Db, Executor } from './db.js';
import { guard } from './errors.js';
import type { IdentityDbRow } from './identities-repo.js';

/** A `users` row an import writes (the columns of {@link userColumns}, timestamps as ISO strings). */
export interface ImportUserRow {
  id: string;
  username: string | null;
  email: string | null;
  email_verified_at: string | null;
  password_hash: string | null;
  status: 'active' | 'disabled';
  home_region: string;
  created_at: string;
  updated_at: string;
  password_changed_at: string;
}

/** A `user_identities` row an import writes (timestamps as ISO strings; live, at version 1). */
export type ImportIdentityRow = Omit<IdentityDbRow, 'created_at' | 'last_used_at' | 'removed_at' | 'version'> & { created_at: string; last_used_at: string };

/** A user already in the region that a batch's ids, usernames or addresses meet. */
export interface ExistingUser {
  id: string;
  username: string | null;
  email_key: string | null;
  updated_at: Date;
}

const USER_RECORD = `id uuid, username text, email text, email_verified_at timestamptz, password_hash text, status text,
  home_region text, created_at timestamptz, updated_at timestamptz, password_changed_at timestamptz`;
const IDENTITY_RECORD = `id uuid, user_id uuid, provider text, subject text, email text, email_verified boolean,
  home_region text, created_at timestamptz, last_used_at timestamptz`;

/**
 * The SQL of `authctl user import`: what a batch meets in the database (one query per kind, by
 * the unique indexes), and the batch's rows as one multi-row INSERT per table — a JSON array
 * unpacked by `jsonb_to_recordset`, one parameter whatever the batch size. The replication
 * capture triggers are statement-level, so a batch adds one outbox INSERT per table and peer.
 */
export class ImportRepo {
  constructor(private readonly db: Db) {}

  /** Users holding any of these ids, usernames or (lower-cased) addresses. */
  async existing(ids: string[], usernames: string[], emailKeys: string[], ex: Executor = this.db.writer): Promise<ExistingUser[]> {
    const result = await guard(
      ex.raw<{ rows: ExistingUser[] }>(
        `select id, username, lower(email) as email_key, updated_at from users where id in (select (jsonb_array_elements_text(?::jsonb))::uuid)
         union select id, username, lower(email), updated_at from users where username in (select jsonb_array_elements_text(?::jsonb))
         union select id, username, lower(email), updated_at from users where lower(email) in (select jsonb_array_elements_text(?::jsonb))`,
        [JSON.stringify(ids), JSON.stringify(usernames), JSON.stringify(emailKeys)],
      ),
    );
    return result.rows;
  }

  /** The live identities among these (provider, subject) pairs, and whose they are. */
  async liveIdentities(
    pairs: Array<{ provider: string; subject: string }>,
    ex: Executor = this.db.writer,
  ): Promise<Array<{ provider: string; subject: string; user_id: string }>> {
    if (pairs.length === 0) return [];
    const result = await guard(
      ex.raw<{ rows: Array<{ provider: string; subject: string; user_id: string }> }>(
        `select i.provider, i.subject, i.user_id from user_identities i
           join jsonb_to_recordset(?::jsonb) as p(provider text, subject text) on p.provider = i.provider and p.subject = i.subject
          where i.removed_at is null`,
        [JSON.stringify(pairs)],
      ),
    );
    return result.rows;
  }

  /** Which of these ids are of users deleted here or by a peer (replication_tombstones): such an id stays retired. */
  async tombstoned(ids: string[], ex: Executor = this.db.writer): Promise<string[]> {
    if (ids.length === 0) return [];
    const result = await guard(
      ex.raw<{ rows: Array<{ id: string }> }>(`select id from replication_tombstones where id in (select (jsonb_array_elements_text(?::jsonb))::uuid)`, [
        JSON.stringify(ids),
      ]),
    );
    return result.rows.map((r) => r.id);
  }

  async insertUsers(rows: ImportUserRow[], ex: Executor): Promise<void> {
    if (rows.length === 0) return;
    await guard(
      ex.raw(
        `insert into users (id, username, email, email_verified_at, password_hash, status, home_region, created_at, updated_at, password_changed_at)
         select * from jsonb_to_recordset(?::jsonb) as r(${USER_RECORD})`,
        [JSON.stringify(rows)],
      ),
    );
  }

  async insertIdentities(rows: ImportIdentityRow[], ex: Executor): Promise<void> {
    if (rows.length === 0) return;
    await guard(
      ex.raw(
        `insert into user_identities (id, user_id, provider, subject, email, email_verified, home_region, created_at, last_used_at)
         select * from jsonb_to_recordset(?::jsonb) as r(${IDENTITY_RECORD})`,
        [JSON.stringify(rows)],
      ),
    );
  }
}
