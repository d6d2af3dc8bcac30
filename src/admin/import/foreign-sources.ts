import { jsonParser } from 'stream-json/core/parser.js';
import { pbkdf2Phc } from '../../core/users/hash-formats.js';
import type { PortableIdentity, PortableUser } from '../portable-user.js';
import { textChunks, unusableFile } from './lines.js';
import { csvRecords, jsonLines, type SourceItem, type SourceOptions } from './sources.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
/** A string or number as text (a provider's subject may be either); anything else is empty. */
const scalar = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');

/* ------------------------------------------------------------------------------------------ */
/* Keycloak: a realm export (`kc.sh export --realm <realm> --file realm.json`, or the
 * `<realm>-users-N.json` files of `--users different_files`): one JSON document, its users in a
 * `users` array. Read as a token stream, so the rest of the realm (clients, roles, keys) costs
 * nothing and no user is held longer than it takes to read it. */

/** Decodes strict UTF-8 across chunk boundaries; the first invalid byte stops the file, with its offset. */
async function* strictUtf8(chunks: AsyncIterable<Buffer>): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let offset = 0;
  for await (const chunk of chunks) {
    try {
      yield decoder.decode(chunk, { stream: true });
    } catch {
      throw new Utf8Error(`the file is not valid UTF-8 (in the 64 KiB from byte ${offset})`);
    }
    offset += chunk.length;
  }
  yield decoder.decode();
}

class Utf8Error extends Error {}

interface Token {
  name: string;
  value?: string;
}

/**
 * Assembles JSON values from unpacked tokens, refusing (without keeping) strings and numbers
 * past `max` characters in all — stream-json's own packing would hold a 10 MB string whole.
 */
class BoundedAssembler {
  private stack: Array<Json[] | JsonObject> = [];
  private key: string | undefined;
  private keys: Array<string | undefined> = [];
  private chunk = '';
  size = 0;
  tooBig = false;
  result: Json | undefined;
  done = false;

  constructor(private readonly max: number) {}

  consume(token: Token): void {
    switch (token.name) {
      case 'startObject':
      case 'startArray': {
        const container = token.name === 'startObject' ? {} : [];
        this.keys.push(this.key);
        this.stack.push(container);
        this.key = undefined;
        return;
      }
      case 'endObject':
      case 'endArray': {
        const container = this.stack.pop()!;
        this.key = this.keys.pop();
        this.place(container);
        return;
      }
      case 'keyValue':
        this.key = token.value!;
        this.count(token.value!.length);
        return;
      case 'stringChunk':
      case 'numberChunk':
        this.count(token.value!.length);
        if (!this.tooBig) this.chunk += token.value!;
        return;
      case 'endString':
        this.place(this.chunk);
        this.chunk = '';
        return;
      case 'endNumber':
        this.place(Number(this.chunk));
        this.chunk = '';
        return;
      case 'trueValue':
        return this.place(true);
      case 'falseValue':
        return this.place(false);
      case 'nullValue':
        return this.place(null);
      default:
        return;
    }
  }

  private count(n: number): void {
    this.size += n;
    if (this.size > this.max) {
      this.tooBig = true;
      this.chunk = '';
    }
  }

  private place(value: Json): void {
    const top = this.stack[this.stack.length - 1];
    if (top === undefined) {
      this.result = this.tooBig ? null : value;
      this.done = true;
    } else if (this.tooBig) {
      // Nothing more is kept; the structure is still followed to find the record's end.
    } else if (Array.isArray(top)) top.push(value);
    else top[this.key!] = value;
  }
}

/** stream-json's bare tokenizer: a string in, its tokens out (`many`), `none` to flush (stream-chain's protocol, symbols by registry). */
const NONE = Symbol.for('object-stream.none');
type Tokenizer = (text: string | typeof NONE) => { values: Token[] } | typeof NONE;
/** The tokenizer gets text in slices: a malformed spot loses only its slice's tokens, never a whole 64 KiB of complete records. */
const SLICE = 1024;

async function* jsonTokens(input: AsyncIterable<Buffer>): AsyncGenerator<Token> {
  const tokenize = jsonParser({ packKeys: true, packStrings: false, packNumbers: false, streamKeys: false }) as unknown as Tokenizer;
  for await (const text of strictUtf8(input)) {
    for (let i = 0; i < text.length; i += SLICE) {
      const out = tokenize(text.slice(i, i + SLICE));
      if (out !== NONE) yield* out.values;
    }
  }
  const out = tokenize(NONE);
  if (out !== NONE) yield* out.values;
}

export async function* keycloakSource(input: AsyncIterable<Buffer>, options: SourceOptions): AsyncGenerator<SourceItem> {
  // Where the reader is: 0 before the document, 1 in its top-level object, deeper in a value it skips.
  let depth = 0;
  let key: string | undefined;
  let inUsers = false;
  let sawUsers = false;
  let index = 0;
  let record: BoundedAssembler | undefined;
  try {
    for await (const token of jsonTokens(textChunks(input))) {
      if (inUsers) {
        if (record === undefined && token.name === 'endArray') {
          inUsers = false;
          continue;
        }
        if (record === undefined) {
          index += 1;
          record = new BoundedAssembler(options.maxRecordBytes);
        }
        record.consume(token);
        if (!record.done) continue;
        const done = record;
        record = undefined;
        if (done.tooBig) yield { at: index, refused: `the record is larger than ${options.maxRecordBytes} bytes` };
        else yield keycloakUser(index, done.result);
        continue;
      }
      if (depth === 0 && token.name !== 'startObject') throw unusableFile('the file is not a JSON object: no Keycloak realm export here');
      if (depth === 1 && token.name === 'keyValue') {
        key = token.value;
        continue;
      }
      if (depth === 1 && key === 'users' && token.name === 'startArray') {
        if (sawUsers) throw unusableFile('the file has two "users" arrays');
        inUsers = sawUsers = true;
        key = undefined;
        continue;
      }
      if (depth === 1 && key === 'users') throw unusableFile('"users" is not an array in this file');
      if (token.name === 'startObject' || token.name === 'startArray') depth += 1;
      else if (token.name === 'endObject' || token.name === 'endArray') depth -= 1;
      if (depth === 1 && token.name !== 'keyValue') key = undefined;
    }
  } catch (err) {
    if (isUnusable(err)) throw err;
    const reason = err instanceof Utf8Error ? err.message : 'the JSON breaks off or is malformed';
    if (!sawUsers || (index === 0 && record === undefined)) throw unusableFile(`${reason}: no Keycloak realm export here`);
    const at = record ? index : index + 1;
    yield { at, fatal: `${reason} in record ${at} (cut short?); the records before it were read` };
    return;
  }
  if (!sawUsers) {
    throw unusableFile(
      'the file has no "users" array: a realm exported with --users different_files keeps its users in <realm>-users-N.json (import each of those)',
    );
  }
}

const isUnusable = (err: unknown) => (err as { code?: unknown } | null)?.code === 'invalid_import_file';

function parseJsonString(value: unknown): JsonObject | undefined {
  if (isObject(value)) return value;
  if (typeof value !== 'string') return undefined;
  try {
    const parsed = JSON.parse(value) as unknown;
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

const first = (v: Json | undefined): string | undefined => (Array.isArray(v) ? str(v[0]) : str(v));

/**
 * A Keycloak password credential as one stored hash string: PBKDF2-SHA256/512 as a PHC string
 * (pbkdf2Phc), argon2 (Keycloak 24+) as the argon2 PHC string of its parameters; Keycloak's
 * `pbkdf2` (SHA-1) and anything else are refused by name.
 */
export function keycloakHash(credential: JsonObject): { hash: string } | { refused: string } {
  const secret = parseJsonString(credential.secretData) ?? {};
  const data = parseJsonString(credential.credentialData) ?? {};
  // Exports of Keycloak before 11 keep the parts on the credential itself.
  const value = str(secret.value) ?? str(credential.hashedSaltedValue);
  const salt = str(secret.salt) ?? str(credential.salt);
  const algorithm = str(data.algorithm) ?? str(credential.algorithm);
  const iterations = typeof data.hashIterations === 'number' ? data.hashIterations : credential.hashIterations;
  if (value === undefined || algorithm === undefined) return { refused: 'the password credential has no value or algorithm' };
  if (algorithm === 'pbkdf2-sha256' || algorithm === 'pbkdf2-sha512') {
    if (salt === undefined || typeof iterations !== 'number') return { refused: `the ${algorithm} credential has no salt or iterations` };
    return { hash: pbkdf2Phc(algorithm === 'pbkdf2-sha256' ? 'sha256' : 'sha512', iterations, salt, value) };
  }
  if (algorithm === 'argon2') {
    const params = isObject(data.additionalParameters) ? data.additionalParameters : {};
    const type = first(params.type) ?? 'id';
    const version = first(params.version) ?? '1.3';
    const memory = first(params.memory);
    const parallelism = first(params.parallelism);
    if (
      !['id', 'i', 'd'].includes(type) ||
      !['1.3', '1.0'].includes(version) ||
      !memory ||
      !parallelism ||
      salt === undefined ||
      typeof iterations !== 'number'
    ) {
      return { refused: 'the argon2 credential lacks its type, version, memory, parallelism, iterations or salt' };
    }
    const unpad = (s: string) => s.replace(/=+$/, '');
    return { hash: `$argon2${type}$v=${version === '1.3' ? 19 : 16}$m=${memory},t=${iterations},p=${parallelism}$${unpad(salt)}$${unpad(value)}` };
  }
  if (algorithm === 'bcrypt' && /^\$2[aby]\$/.test(value)) return { hash: value };
  if (algorithm === 'pbkdf2')
    return { refused: 'Keycloak "pbkdf2" credentials are PBKDF2-SHA1, which authctl does not verify (the user can reset the password)' };
  return { refused: `Keycloak password algorithm "${algorithm}" is not one authctl verifies` };
}

function keycloakUser(at: number, value: Json | undefined): SourceItem {
  if (!isObject(value)) return { at, refused: 'the record is not a JSON object' };
  if (str(value.serviceAccountClientLink)) return { at, refused: `a service account (of client "${str(value.serviceAccountClientLink)}"), not a person` };
  const credentials = Array.isArray(value.credentials) ? value.credentials.filter(isObject) : [];
  const password = credentials.find((c) => c.type === 'password');
  let passwordHash: string | null = null;
  if (password) {
    const hash = keycloakHash(password);
    if ('refused' in hash) return { at, refused: hash.refused };
    passwordHash = hash.hash;
  }
  const federated = Array.isArray(value.federatedIdentities) ? value.federatedIdentities.filter(isObject) : [];
  const identities: PortableIdentity[] = federated.map((f) => ({
    provider: scalar(f.identityProvider),
    subject: scalar(f.userId),
  }));
  const candidate: PortableUser = {
    username: str(value.username) ?? null,
    email: str(value.email) ?? null,
    emailVerified: value.emailVerified === true,
    passwordHash,
    disabled: value.enabled === false,
    ...(typeof value.createdTimestamp === 'number' ? { createdAt: new Date(value.createdTimestamp).toISOString() } : {}),
    ...(identities.length > 0 ? { identities } : {}),
  };
  return { at, candidate, sourceId: str(value.id) ?? str(value.username) };
}

/* ------------------------------------------------------------------------------------------ */
/* Supabase: `auth.users` as CSV with a header row (README "### Import" gives the query). */

export const SUPABASE_COLUMNS = [
  'id',
  'email',
  'encrypted_password',
  'email_confirmed_at',
  'created_at',
  'banned_until',
  'deleted_at',
  'raw_app_meta_data',
  'identities',
] as const;

/** A PostgreSQL timestamp as psql or the dashboard writes it (`2024-05-01 10:20:30.123456+00`), or ISO 8601; undefined when empty, null when unreadable. */
export function pgTimestamp(text: string | undefined): string | undefined | null {
  if (text === undefined || text.trim() === '') return undefined;
  const iso = text
    .trim()
    .replace(' ', 'T')
    .replace(/(\.\d{3})\d+/, '$1')
    .replace(/([+-]\d{2})$/, '$1:00');
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

export async function* supabaseSource(input: AsyncIterable<Buffer>, options: SourceOptions, now: Date): AsyncGenerator<SourceItem> {
  const columns = { known: SUPABASE_COLUMNS, required: [['id'], ['email'], ['encrypted_password']], strict: false, caseless: true };
  for await (const record of csvRecords(input, columns, options)) {
    if (record.refused !== undefined) {
      yield record;
      continue;
    }
    const cell = (name: (typeof SUPABASE_COLUMNS)[number]) => record.cells.get(name);
    const at = record.at;
    if (str(cell('deleted_at'))) {
      yield { at, refused: 'the user is deleted in Supabase (deleted_at is set)' };
      continue;
    }
    if (!str(cell('email'))) {
      yield { at, refused: 'the user has no e-mail address (a phone-only or anonymous user)' };
      continue;
    }
    const times = {
      email_confirmed_at: pgTimestamp(cell('email_confirmed_at')),
      created_at: pgTimestamp(cell('created_at')),
      banned_until: pgTimestamp(cell('banned_until')),
    };
    const unreadable = Object.entries(times).find(([, v]) => v === null);
    if (unreadable) {
      yield { at, refused: `${unreadable[0]} is not a timestamp` };
      continue;
    }
    const identities = supabaseIdentities(cell('identities'));
    if (identities === null) {
      yield { at, refused: 'identities must be a JSON array of auth.identities rows' };
      continue;
    }
    const candidate: PortableUser = {
      email: cell('email')!,
      emailVerified: times.email_confirmed_at !== undefined,
      emailVerifiedAt: times.email_confirmed_at ?? null,
      passwordHash: str(cell('encrypted_password')) ?? null,
      disabled: times.banned_until !== undefined && times.banned_until !== null && new Date(times.banned_until) > now,
      ...(times.created_at ? { createdAt: times.created_at } : {}),
      ...(identities.length > 0 ? { identities } : {}),
    };
    yield { at, candidate, sourceId: cell('id') };
  }
}

/** The provider rows of the `identities` column (`auth.identities` as JSON), without the `email` and `phone` ones (those are the user's own). */
function supabaseIdentities(cell: string | undefined): PortableIdentity[] | null {
  if (!str(cell)) return [];
  let rows: unknown;
  try {
    rows = JSON.parse(cell!);
  } catch {
    return null;
  }
  if (!Array.isArray(rows)) return null;
  return rows
    .filter(isObject)
    .filter((row) => row.provider !== 'email' && row.provider !== 'phone')
    .map((row) => {
      const data = isObject(row.identity_data) ? row.identity_data : {};
      return {
        provider: scalar(row.provider),
        // provider_id since 2023 (GoTrue 2.40); before, the row's own id was the provider's user id.
        subject: scalar(row.provider_id ?? data.sub ?? row.id),
        email: str(row.email) ?? str(data.email) ?? null,
        emailVerified: data.email_verified === true,
      };
    });
}

/* ------------------------------------------------------------------------------------------ */
/* Auth0: the bulk user export (NDJSON of a `POST /api/v2/jobs/users-exports` job, format
 * "json"), joined with the password-hash export Auth0 support provides (NDJSON, `_id.$oid`,
 * `passwordHash`) — or that password-hash export alone. */

/** Auth0's provider names that differ from the provider id authctl's config uses. */
const AUTH0_PROVIDERS: Record<string, string> = { 'google-oauth2': 'google' };

/** The Auth0 `user_id` of a password-hash export record: `auth0|` and its `alt_id` (a custom id) or its `_id.$oid`. */
function auth0HashUserId(record: JsonObject): string | undefined {
  const oid = isObject(record._id) ? str(record._id.$oid) : str(record._id);
  const id = str(record.alt_id) ?? oid;
  return id === undefined ? undefined : `auth0|${id}`;
}

/**
 * Reads the password-hash export into a map from Auth0 `user_id` to hash — the one part of an
 * import held in memory (about 150 bytes a user), read before anything is written: a line of it
 * that cannot be read stops the import, rather than import its user without a password.
 */
export async function auth0Passwords(input: AsyncIterable<Buffer>, options: SourceOptions): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for await (const item of jsonLines(input, options)) {
    if (item.candidate === undefined) throw unusableFile(`the password-hash export, line ${item.at}: ${item.refused ?? item.fatal}`);
    const record = item.candidate as JsonObject;
    const userId = auth0HashUserId(record);
    const hash = str(record.passwordHash);
    if (userId === undefined) throw unusableFile(`the password-hash export, line ${item.at}: no _id`);
    if (hash !== undefined) hashes.set(userId, hash);
  }
  return hashes;
}

const auth0Date = (v: Json | undefined): string | undefined => (isObject(v) ? str(v.$date) : str(v));

export async function* auth0Source(
  input: AsyncIterable<Buffer>,
  options: SourceOptions,
  passwords: Map<string, string> | undefined,
): AsyncGenerator<SourceItem> {
  for await (const item of jsonLines(input, options)) {
    if (item.candidate === undefined) {
      yield item;
      continue;
    }
    const record = item.candidate as JsonObject;
    if (record._id !== undefined) {
      // A line of the password-hash export itself: id, address, verification and hash.
      const email = str(record.email) ?? identifier(record, 'email')?.value;
      yield {
        at: item.at,
        sourceId: auth0HashUserId(record),
        candidate: {
          email: email ?? null,
          emailVerified: record.email_verified === true || identifier(record, 'email')?.verified === true,
          passwordHash: str(record.passwordHash) ?? null,
        } satisfies PortableUser,
      };
      continue;
    }
    const userId = str(record.user_id);
    if (userId === undefined) {
      yield { at: item.at, refused: 'the record has no user_id (export the user_id field)' };
      continue;
    }
    const identities: PortableIdentity[] = (Array.isArray(record.identities) ? record.identities.filter(isObject) : [])
      .filter((i) => i.isSocial === true)
      .map((i) => ({ provider: AUTH0_PROVIDERS[scalar(i.provider)] ?? scalar(i.provider), subject: scalar(i.user_id) }));
    const createdAt = auth0Date(record.created_at);
    yield {
      at: item.at,
      sourceId: userId,
      candidate: {
        username: str(record.username) ?? null,
        email: str(record.email) ?? null,
        emailVerified: record.email_verified === true,
        passwordHash: passwords?.get(userId) ?? null,
        disabled: record.blocked === true,
        ...(createdAt ? { createdAt: pgTimestamp(createdAt) ?? createdAt } : {}),
        ...(identities.length > 0 ? { identities } : {}),
      } satisfies PortableUser,
    };
  }
}

function identifier(record: JsonObject, type: string): { value?: string; verified?: boolean } | undefined {
  const list = Array.isArray(record.identifiers) ? record.identifiers.filter(isObject) : [];
  const found = list.find((i) => i.type === type);
  return found ? { value: str(found.value), verified: found.verified === true } : undefined;
}
