import { randomBytes } from 'node:crypto';
import type { ClientScope, ServiceClientRecord } from '../../model/service-client.js';
import type { Clock } from '../../platform/clock.js';
import { AppError, invalidRequest } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { ServiceClientsRepo } from '../../store/pg/service-clients-repo.js';
import { CLIENT_SCOPES, createClientSchema, type ClientService, type IssuedClientSecret, type ServiceClientView } from './client-service.js';
import { digestClientSecret, digestsEqual, generateClientId, generateClientSecret, hashClientSecret, isClientId } from './client-secret.js';

/** How often every process re-reads the clients: the bound on how long a rotated or deleted client keeps working in another process. */
export const CLIENT_RELOAD_INTERVAL_MS = 5_000;
/** The least time between two reloads that unknown client ids cause (so random ids cannot turn into database load). */
export const UNKNOWN_CLIENT_RELOAD_MS = 1_000;

export interface ServiceClientsOptions {
  repo: ServiceClientsRepo;
  clock: Clock;
  log: Logger;
  region: string;
  reloadIntervalMs?: number;
  unknownIdReloadMs?: number;
}

/** One client of the in-memory snapshot: what authentication answers, and the digest it compares with. */
interface Entry {
  view: ServiceClientView;
  digest: Buffer;
}

export function toClientView(c: ServiceClientRecord): ServiceClientView {
  return {
    id: c.id,
    name: c.name,
    scopes: [...c.scopes],
    homeRegion: c.homeRegion,
    createdAt: c.createdAt.toISOString(),
    secretRotatedAt: c.secretRotatedAt.toISOString(),
  };
}

function notFound(id: string): AppError {
  return new AppError('not_found', `no such client: ${id} (see \`authctl client list\`)`);
}

/**
 * The region's service clients ({@link ClientService}). Writes go to PostgreSQL (and replicate);
 * authentication runs on an in-memory snapshot of every client (id → digest, scopes), read at
 * start, every {@link CLIENT_RELOAD_INTERVAL_MS} and after each write made here, so an
 * introspection call costs one SHA-256 and no database round trip.
 *
 * A client created by another process or region is found by the next reload; an unknown id
 * (of the form of an id) also reloads at once, at most once per {@link UNKNOWN_CLIENT_RELOAD_MS},
 * so a client works on its first call nearly always, and a flood of random ids costs the
 * database one query a second.
 */
export class ServiceClients implements ClientService {
  private entries = new Map<string, Entry>();
  /** Loads started and the newest load (or local write) applied: a load never replaces newer state. */
  private started = 0;
  private applied = 0;
  private loadedOnce = false;
  private lastUnknownReload = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** What an unknown id's secret is compared with, so that it costs what a known id's does. */
  private readonly dummyDigest = randomBytes(32);

  constructor(private readonly opts: ServiceClientsOptions) {}

  /** Whether the snapshot has been read from the database at least once. */
  get ready(): boolean {
    return this.loadedOnce;
  }

  async create(name: string, scopes: ClientScope[]): Promise<IssuedClientSecret> {
    const input = parseCreate(name, scopes);
    const now = this.opts.clock.now();
    const secret = generateClientSecret();
    const record: ServiceClientRecord = {
      id: generateClientId(),
      name: input.name,
      scopes: input.scopes,
      secretHash: hashClientSecret(secret),
      homeRegion: this.opts.region,
      createdAt: now,
      updatedAt: now,
      secretRotatedAt: now,
      version: 1,
    };
    await this.opts.repo.insert(record);
    this.patch((m) => m.set(record.id, toEntry(record)));
    this.opts.log.info('service client created', { event: 'client.created', clientId: record.id, scopes: record.scopes });
    return { client: toClientView(record), secret };
  }

  async list(): Promise<ServiceClientView[]> {
    return (await this.opts.repo.listAll()).map(toClientView);
  }

  async get(id: string): Promise<ServiceClientView> {
    const record = isClientId(id) ? await this.opts.repo.findById(id) : undefined;
    if (!record) throw notFound(id);
    return toClientView(record);
  }

  async rotateSecret(id: string): Promise<IssuedClientSecret> {
    if (!isClientId(id)) throw notFound(id);
    const secret = generateClientSecret();
    const record = await this.opts.repo.setSecretHash(id, hashClientSecret(secret), this.opts.clock.now());
    if (!record) throw notFound(id);
    this.patch((m) => m.set(record.id, toEntry(record)));
    this.opts.log.info('service client secret rotated', { event: 'client.secret_rotated', clientId: id });
    return { client: toClientView(record), secret };
  }

  async delete(id: string): Promise<void> {
    if (!isClientId(id) || !(await this.opts.repo.delete(id))) throw notFound(id);
    this.patch((m) => m.delete(id));
    this.opts.log.info('service client deleted', { event: 'client.deleted', clientId: id });
  }

  /**
   * Every path does the same work: one SHA-256 of the presented secret and one constant-time
   * comparison, with the client's digest or, for an unknown id, a random one. The one exception
   * is an unknown, well-formed id when no reload ran in the last second: it waits for one. That
   * tells a caller only that an id it already holds is not (yet) a client — ids are 128-bit
   * random and not secret — and never anything about a secret.
   */
  async authenticate(clientId: string, secret: string): Promise<ServiceClientView | undefined> {
    if (!this.loadedOnce) await this.load();
    let entry = this.entries.get(clientId);
    // Asked on every path, known id or not, so that deciding whether to reload costs the same.
    const mayReload = this.mayReloadFor(clientId);
    if (entry === undefined && mayReload) {
      this.lastUnknownReload = Date.now();
      await this.load().catch((err: unknown) => this.opts.log.warn('service clients could not be reloaded', { event: 'clients.reload_failed', err }));
      entry = this.entries.get(clientId);
    }
    const match = digestsEqual(digestClientSecret(secret), entry?.digest ?? this.dummyDigest);
    return match && entry !== undefined ? entry.view : undefined;
  }

  /** Reads every client and swaps the snapshot (unless a newer state was applied meanwhile). */
  async load(): Promise<void> {
    const seq = ++this.started;
    const records = await this.opts.repo.listAll();
    if (seq < this.applied) {
      // A write here, or a later load, overtook this read; a first load must still complete.
      if (!this.loadedOnce) await this.load();
      return;
    }
    this.entries = new Map(records.map((r) => [r.id, toEntry(r)]));
    this.applied = seq;
    this.loadedOnce = true;
  }

  start(): void {
    this.timer ??= setInterval(() => {
      this.load().catch((err: unknown) => this.opts.log.warn('service clients could not be reloaded', { event: 'clients.reload_failed', err }));
    }, this.opts.reloadIntervalMs ?? CLIENT_RELOAD_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Whether an id, if unknown, may reload the snapshot now: ids of the right form only, at most once per allowance. */
  private mayReloadFor(clientId: string): boolean {
    const wellFormed = isClientId(clientId);
    const due = Date.now() - this.lastUnknownReload >= (this.opts.unknownIdReloadMs ?? UNKNOWN_CLIENT_RELOAD_MS);
    return wellFormed && due;
  }

  /** A write made here, applied to the snapshot at once (copy on write: authentication never sees a half-changed map). */
  private patch(change: (next: Map<string, Entry>) => void): void {
    const next = new Map(this.entries);
    change(next);
    this.entries = next;
    this.applied = ++this.started;
  }
}

function toEntry(record: ServiceClientRecord): Entry {
  return { view: toClientView(record), digest: Buffer.from(record.secretHash, 'base64url') };
}

/** The name trimmed, the scopes deduplicated in their canonical order; `invalid_request` (exit 2) naming what is wrong. */
function parseCreate(name: string, scopes: ClientScope[]): { name: string; scopes: ClientScope[] } {
  const parsed = createClientSchema.safeParse({ name, scopes });
  if (!parsed.success) {
    const errors = parsed.error.issues.map((i) => ({ path: i.path.join('.') || 'body', message: i.message }));
    const unknown = scopes.filter((s) => !CLIENT_SCOPES.includes(s));
    const detail =
      unknown.length > 0
        ? `unknown scope ${unknown.map((s) => `"${String(s)}"`).join(', ')}: a scope is one of ${CLIENT_SCOPES.join(', ')}`
        : errors.map((e) => e.message).join('; ');
    throw invalidRequest(errors, detail);
  }
  return { name: parsed.data.name, scopes: CLIENT_SCOPES.filter((s) => parsed.data.scopes.includes(s)) };
}
