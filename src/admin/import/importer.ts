import { v5 as uuidv5, validate as isUuid } from 'uuid';
import type { Config } from '../../config/schema.js';
import { emailKey, normalizeEmail } from '../../core/users/email.js';
import { hashFormat, type HashFormat } from '../../core/users/hash-formats.js';
import { normalizeUsername } from '../../core/users/username.js';
import type { Clock } from '../../platform/clock.js';
import { isAppError } from '../../platform/errors.js';
import type { Db } from '../../store/pg/db.js';
import { uniqueConstraintOf } from '../../store/pg/errors.js';
import type { ImportIdentityRow, ImportRepo, ImportUserRow } from '../../store/pg/import-repo.js';
import { portableUserSchema, type PortableUser } from '../portable-user.js';
import { auth0Passwords, auth0Source, keycloakSource, supabaseSource } from './foreign-sources.js';
import { csvSource, ndjsonSource, type ImportFormat, type SourceItem, type SourceOptions } from './sources.js';

/** The UUIDv5 namespace of imported ids: `uuidv5("<source>:<source id>", IMPORT_NAMESPACE)`. */
export const IMPORT_NAMESPACE = '5b0f6a52-8f0e-4a8e-9d6b-3f1f4f3f0b19';

/** How ids of a source are derived (ndjson and csv are one source: authctl's own record). */
const ID_SOURCE: Record<ImportFormat, string> = { ndjson: 'authctl', csv: 'authctl', keycloak: 'keycloak', supabase: 'supabase', auth0: 'auth0' };

/**
 * The id an imported user gets: the source's id when it is a UUID (Keycloak's, Supabase's,
 * authctl's own), else a UUIDv5 of the source and its id — stable, so a rerun finds the user it
 * imported the first time.
 */
export function importedId(format: ImportFormat, sourceId: string): string {
  return isUuid(sourceId) ? sourceId.toLowerCase() : uuidv5(`${ID_SOURCE[format]}:${sourceId}`, IMPORT_NAMESPACE);
}

/** One refused record: where it is in the file, and why. */
export interface ImportRefusal {
  /** The line (NDJSON, CSV, Auth0) or, in a Keycloak JSON document, the record's position in `users` (from 1). */
  at: number;
  reason: string;
}

export interface ImportReport {
  format: ImportFormat;
  dryRun: boolean;
  /** `line` for the line-based formats, `record` for a Keycloak document. */
  unit: 'line' | 'record';
  /** Records read from the file. */
  read: number;
  /** Users written (with --dry-run: that would be). */
  imported: number;
  /** Provider identities written with them. */
  identities: number;
  /** Users already in the region under the same id (an earlier run of the file). */
  skipped: number;
  refused: number;
  /** The first {@link MAX_LISTED_REFUSALS} refusals, in file order. */
  refusals: ImportRefusal[];
  /** Refusals beyond those listed. */
  refusalsNotListed: number;
  /** Imported users by the format of their password hash (none: no password). */
  hashFormats: Partial<Record<HashFormat | 'none', number>>;
  /** Set when the file broke off (truncated JSON): where, and why; the records before it were imported. */
  aborted?: ImportRefusal;
  seconds: number;
}

export const MAX_LISTED_REFUSALS = 10_000;

export interface ImportProgress {
  read: number;
  imported: number;
  skipped: number;
  refused: number;
  seconds: number;
}

export interface ImportRequest {
  format: ImportFormat;
  input: AsyncIterable<Buffer>;
  /** Auth0: the password-hash export, joined to the user export by user_id. */
  passwords?: AsyncIterable<Buffer>;
  dryRun?: boolean;
  batchSize?: number;
  maxRecordBytes?: number;
  onProgress?: (progress: ImportProgress) => void;
  onRefused?: (refusal: ImportRefusal) => void;
}

export interface Prepared {
  at: number;
  user: ImportUserRow;
  identities: ImportIdentityRow[];
  emailKey: string | null;
  format: HashFormat | 'none';
}

export interface UserImporterDeps {
  config: Pick<Config, 'region' | 'identity'>;
  clock: Clock;
  db: Pick<Db, 'writer'>;
  repo: ImportRepo;
}

/** What an earlier record of the file (this batch, or for --dry-run the whole file so far) holds. */
export interface BatchContext {
  seen: Seen;
  dryRun: boolean;
  /** The run's updated_at (see {@link UserImporter.run}). */
  runAt: Date;
  unit: 'line' | 'record';
}

export class Seen {
  readonly ids = new Map<string, Prepared>();
  readonly usernames = new Map<string, number>();
  readonly emails = new Map<string, number>();
  readonly pairs = new Map<string, number>();
  clear(): void {
    this.ids.clear();
    this.usernames.clear();
    this.emails.clear();
    this.pairs.clear();
  }
}

const pairKey = (provider: string, subject: string) => `${provider}\u0000${subject}`;

/**
 * `authctl user import` (README "### Import"): reads a source file record by record, validates
 * each as a sign-up would be (username and address rules, a hash in a format authctl verifies,
 * nothing taken by another user), and writes batches of users with their identities, each batch
 * in one transaction. A record is imported whole or refused with its line and reason; a rerun of
 * the file skips the users it imported before (same id, same username and address).
 */
export class UserImporter {
  constructor(private readonly deps: UserImporterDeps) {}

  async run(request: ImportRequest): Promise<ImportReport> {
    const started = performance.now();
    const dryRun = request.dryRun ?? false;
    const batchSize = request.batchSize ?? 1_000;
    const options: SourceOptions = { maxRecordBytes: request.maxRecordBytes ?? 1_048_576 };
    const report: ImportReport = {
      format: request.format,
      dryRun,
      unit: request.format === 'keycloak' ? 'record' : 'line',
      read: 0,
      imported: 0,
      identities: 0,
      skipped: 0,
      refused: 0,
      refusals: [],
      refusalsNotListed: 0,
      hashFormats: {},
      seconds: 0,
    };
    const refuse = (at: number, reason: string) => {
      report.refused += 1;
      if (report.refusals.length < MAX_LISTED_REFUSALS) report.refusals.push({ at, reason });
      else report.refusalsNotListed += 1;
      request.onRefused?.({ at, reason });
    };
    const seconds = () => (performance.now() - started) / 1000;
    // Every row of the run gets this updated_at: a row the database shows with it was written by
    // this run (an earlier batch), so a record meeting it is a duplicate in the file, not a rerun.
    const runAt = this.deps.clock.now();
    const source = await this.source(request, options);
    // A real run checks earlier batches in the database (they are written); a dry run writes
    // nothing, so it remembers the whole file instead.
    const seen = new Seen();
    let batch: Prepared[] = [];
    // Records refused as they were read wait for their batch, so that refusals come out in file order.
    let early: ImportRefusal[] = [];
    const flush = async () => {
      const items = batch;
      const refusals = early;
      batch = [];
      early = [];
      if (items.length === 0) {
        for (const r of refusals) refuse(r.at, r.reason);
        return;
      }
      const outcome = await this.processBatch(items, { seen, dryRun, runAt, unit: report.unit }, (at, reason) => refusals.push({ at, reason }));
      for (const r of refusals.sort((a, b) => a.at - b.at)) refuse(r.at, r.reason);
      report.imported += outcome.imported.length;
      report.skipped += outcome.skipped;
      for (const p of outcome.imported) {
        report.identities += p.identities.length;
        report.hashFormats[p.format] = (report.hashFormats[p.format] ?? 0) + 1;
      }
      if (!dryRun) seen.clear();
      request.onProgress?.({ read: report.read, imported: report.imported, skipped: report.skipped, refused: report.refused, seconds: seconds() });
    };
    for await (const item of source) {
      if (item.fatal !== undefined) {
        report.aborted = { at: item.at, reason: item.fatal };
        break;
      }
      report.read += 1;
      const prepared = item.refused !== undefined ? item.refused : this.prepare(request.format, item, runAt);
      if (typeof prepared === 'string') {
        early.push({ at: item.at, reason: prepared });
        if (early.length >= batchSize) await flush();
        continue;
      }
      batch.push(prepared);
      if (batch.length >= batchSize) await flush();
    }
    await flush();
    report.seconds = Math.round(seconds() * 1000) / 1000;
    return report;
  }

  private async source(request: ImportRequest, options: SourceOptions): Promise<AsyncIterable<SourceItem>> {
    switch (request.format) {
      case 'ndjson':
        return ndjsonSource(request.input, options);
      case 'csv':
        return csvSource(request.input, options);
      case 'keycloak':
        return keycloakSource(request.input, options);
      case 'supabase':
        return supabaseSource(request.input, options, this.deps.clock.now());
      case 'auth0': {
        const passwords = request.passwords ? await auth0Passwords(request.passwords, options) : undefined;
        return auth0Source(request.input, options, passwords);
      }
    }
  }

  /** A record as the rows it becomes, or why it is refused (everything that needs no database). */
  prepare(source: ImportFormat, item: Extract<SourceItem, { candidate: unknown }>, runAt: Date): Prepared | string {
    const parsed = portableUserSchema.safeParse(item.candidate);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const path = issue.path.join('.');
      return `${path ? `${path}: ` : ''}${issue.message}`;
    }
    const user: PortableUser = parsed.data;
    const rules = this.deps.config.identity;
    let username: string | null = null;
    let email: string | null = null;
    try {
      if (user.username) username = normalizeUsername(user.username);
      if (user.email) email = normalizeEmail(user.email);
    } catch (err) {
      if (isAppError(err)) return err.detail;
      throw err;
    }
    if (email !== null && rules.email === 'off') return 'the user has an e-mail address, and addresses are off here (identity.email is "off")';
    if (username === null && rules.username === 'required')
      return 'the user has no username, and usernames are required here (identity.username is "required")';
    if (email === null && rules.email === 'required') return 'the user has no e-mail address, and addresses are required here (identity.email is "required")';
    if (username === null && email === null) return 'the user has neither a username nor an e-mail address';
    let format: HashFormat | 'none' = 'none';
    if (user.passwordHash) {
      const found = hashFormat(user.passwordHash);
      if (found === undefined) return 'the password hash is in no format authctl verifies (argon2, bcrypt, scrypt, PBKDF2, Django PBKDF2)';
      format = found;
    }
    // Without a source id, the identifiers stand in for one: a rerun still finds the user.
    const sourceId = item.sourceId ?? user.id ?? `${username ?? ''}\u0000${email === null ? '' : emailKey(email)}`;
    const id = importedId(source, sourceId);
    const now = runAt.toISOString();
    const createdAt = user.createdAt ? new Date(user.createdAt).toISOString() : now;
    const verifiedAt = email === null ? null : user.emailVerifiedAt ? new Date(user.emailVerifiedAt).toISOString() : user.emailVerified ? now : null;
    const homeRegion = user.homeRegion ?? this.deps.config.region;
    const identities: ImportIdentityRow[] = [];
    const pairs = new Set<string>();
    for (const identity of user.identities ?? []) {
      if (!/^[a-z][a-z0-9-]{0,31}$/.test(identity.provider))
        return `identity provider "${identity.provider}" is not a provider id (1–32 lowercase letters, digits or "-")`;
      const key = pairKey(identity.provider, identity.subject);
      if (pairs.has(key)) return `the identity ${identity.provider}:${identity.subject} is listed twice`;
      pairs.add(key);
      identities.push({
        id: uuidv5(`${id}:${key}`, IMPORT_NAMESPACE),
        user_id: id,
        provider: identity.provider,
        subject: identity.subject,
        email: identity.email ?? null,
        email_verified: identity.emailVerified ?? false,
        home_region: homeRegion,
        created_at: createdAt,
        last_used_at: createdAt,
      });
    }
    return {
      at: item.at,
      emailKey: email === null ? null : emailKey(email),
      format,
      identities,
      user: {
        id: id,
        username,
        email,
        email_verified_at: verifiedAt,
        password_hash: user.passwordHash ?? null,
        status: user.disabled ? 'disabled' : 'active',
        home_region: homeRegion,
        created_at: createdAt,
        updated_at: now,
        password_changed_at: now,
      },
    };
  }

  /**
   * Checks a batch against the file so far and the database, then (unless a dry run) writes
   * what passes in one transaction. A record whose id is there already with the same username
   * and address is the same user from an earlier run: skipped. Anything else taken is refused.
   */
  async processBatch(batch: Prepared[], run: BatchContext, refuse: (at: number, reason: string) => void): Promise<{ imported: Prepared[]; skipped: number }> {
    const { repo } = this.deps;
    const { seen, unit } = run;
    const ids = batch.map((p) => p.user.id);
    const usernames = batch.flatMap((p) => (p.user.username === null ? [] : [p.user.username]));
    const emails = batch.flatMap((p) => (p.emailKey === null ? [] : [p.emailKey]));
    const pairs = batch.flatMap((p) => p.identities.map((i) => ({ provider: i.provider, subject: i.subject })));
    const [existing, live, retired] = await Promise.all([repo.existing(ids, usernames, emails), repo.liveIdentities(pairs), repo.tombstoned(ids)]);
    const byId = new Map(existing.map((u) => [u.id, u]));
    const byUsername = new Map(existing.flatMap((u) => (u.username === null ? [] : [[u.username, u.id] as const])));
    const byEmail = new Map(existing.flatMap((u) => (u.email_key === null ? [] : [[u.email_key, u.id] as const])));
    const pairOwner = new Map(live.map((i) => [pairKey(i.provider, i.subject), i.user_id]));
    const retiredIds = new Set(retired);
    const accepted: Prepared[] = [];
    let skipped = 0;
    for (const p of batch) {
      const { id, username } = p.user;
      // The same user: no identifier both sides have differs (the password-hash export of Auth0
      // alone has no username, the full export has one: still the one user).
      const agree = (a: string | null, b: string | null) => a === null || b === null || a === b;
      const same = (other: { username: string | null; emailKey: string | null }) => agree(other.username, username) && agree(other.emailKey, p.emailKey);
      const there = byId.get(id);
      if (there && there.updated_at.getTime() === run.runAt.getTime()) {
        refuse(p.at, `a duplicate of an earlier ${unit} of the file (the same id)`);
        continue;
      }
      if (there) {
        if (same({ username: there.username, emailKey: there.email_key })) skipped += 1;
        else refuse(p.at, `the id ${id} belongs to another user here (${there.username ?? there.email_key})`);
        continue;
      }
      const earlier = seen.ids.get(id);
      if (earlier) {
        // Within the file a user comes once: the same id again (or, without ids, the same
        // username and address) is a duplicate, whatever else it says.
        refuse(
          p.at,
          same({ username: earlier.user.username, emailKey: earlier.emailKey })
            ? `a duplicate of ${unit} ${earlier.at}`
            : `the id ${id} is also that of ${unit} ${earlier.at}, another user`,
        );
        continue;
      }
      if (retiredIds.has(id)) {
        refuse(p.at, `a user with the id ${id} was deleted here; a deleted user's id is not used again`);
        continue;
      }
      const problem =
        (username !== null && byUsername.has(username) && `the username "${username}" is taken here`) ||
        (username !== null && seen.usernames.has(username) && `the username "${username}" is also on ${unit} ${seen.usernames.get(username)}`) ||
        (p.emailKey !== null && byEmail.has(p.emailKey) && 'the e-mail address is taken here') ||
        (p.emailKey !== null && seen.emails.has(p.emailKey) && `the e-mail address is also on ${unit} ${seen.emails.get(p.emailKey)}`) ||
        p.identities.map((i) => identityProblem(i, pairOwner, seen, unit)).find(Boolean);
      if (problem) {
        refuse(p.at, problem);
        continue;
      }
      seen.ids.set(id, p);
      if (username !== null) seen.usernames.set(username, p.at);
      if (p.emailKey !== null) seen.emails.set(p.emailKey, p.at);
      for (const i of p.identities) seen.pairs.set(pairKey(i.provider, i.subject), p.at);
      accepted.push(p);
    }
    if (run.dryRun || accepted.length === 0) return { imported: accepted, skipped };
    return { imported: await this.write(accepted, refuse), skipped };
  }

  /**
   * Writes a checked batch in one transaction. A unique index can still refuse it — a user
   * created meanwhile by a sign-up or another import — and then the batch is written again row
   * by row, each in a savepoint, so the good rows go in and the one that collides is refused.
   */
  async write(batch: Prepared[], refuse: (at: number, reason: string) => void): Promise<Prepared[]> {
    const { repo, db } = this.deps;
    try {
      await db.writer.transaction(async (trx) => {
        await repo.insertUsers(
          batch.map((p) => p.user),
          trx,
        );
        await repo.insertIdentities(
          batch.flatMap((p) => p.identities),
          trx,
        );
      });
      return batch;
    } catch (err) {
      if (uniqueConstraintOf(err) === undefined) throw err;
    }
    const written: Prepared[] = [];
    await db.writer.transaction(async (trx) => {
      for (const p of batch) {
        try {
          await trx.transaction(async (savepoint) => {
            await repo.insertUsers([p.user], savepoint);
            await repo.insertIdentities(p.identities, savepoint);
          });
          written.push(p);
        } catch (err) {
          const constraint = uniqueConstraintOf(err);
          if (constraint === undefined) throw err;
          refuse(p.at, CONFLICT_REASONS[constraint] ?? 'a user created meanwhile holds its id, username, address or identity');
        }
      }
    });
    return written;
  }
}

/** What a unique index that refused a row (a writer that came first) means, in a refusal. */
const CONFLICT_REASONS: Record<string, string> = {
  users_pkey: 'a user with this id was created meanwhile',
  users_username_key: 'the username was taken meanwhile',
  users_email_key: 'the e-mail address was taken meanwhile',
  user_identities_subject_idx: 'one of its identities was linked to another user meanwhile',
};

function identityProblem(identity: ImportIdentityRow, owners: Map<string, string>, seen: Seen, unit: string): string | undefined {
  const key = pairKey(identity.provider, identity.subject);
  const label = `${identity.provider}:${identity.subject}`;
  if (owners.has(key) && owners.get(key) !== identity.user_id) return `the identity ${label} is linked to another user here`;
  if (seen.pairs.has(key)) return `the identity ${label} is also on ${unit} ${seen.pairs.get(key)}`;
  return undefined;
}
