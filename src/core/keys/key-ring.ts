import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Logger } from '../../platform/logger.js';
import type { Db } from '../../store/pg/db.js';
import type { SigningKeyRecord } from '../../model/signing-key.js';
import type { SigningKeysRepo } from '../../store/pg/signing-keys-repo.js';
import { AppError } from '../../platform/errors.js';
import type { Clock } from '../../platform/clock.js';
import type { ServerSecrets } from './secrets.js';

export type SigningAlg = 'EdDSA' | 'ES256';
export type KeyState = 'pending' | 'active' | 'retiring' | 'retired';
/** Whether this server can sign: `unsealable` when its secret cannot open the key that signs now. */
export type SigningHealth = 'ok' | 'loading' | 'unsealable';

export interface KeyInfo {
  kid: string;
  alg: string;
  region: string;
  state: KeyState;
  createdAt: Date;
  activatesAt: Date;
  retiresAt: Date | null;
}

/** A public key with the algorithm it verifies (one object per key, built when the key loads). */
export interface PublicKey {
  readonly alg: string;
  readonly key: KeyObject;
}

interface LoadedKey {
  record: SigningKeyRecord;
  publicKey: PublicKey;
}

export interface KeyRingOptions {
  db: Db;
  repo: SigningKeysRepo;
  clock: Clock;
  log: Logger;
  region: string;
  alg: SigningAlg;
  /** Absent for commands that only read keys; signing and key creation then fail with bad_config. */
  secrets: ServerSecrets | undefined;
  activationDelaySeconds: number;
  /** How long after a key stops signing it must stay published: access TTL + clock skew. */
  retireAfterSeconds: number;
  reloadIntervalMs: number;
}

/**
 * The region's signing keys, held in memory so signing and verification never touch the
 * database. Keys are published (JWKS) from creation, sign from `activatesAt`, and leave the JWKS
 * at `retiresAt` — which a rotation sets to the successor's activation plus the longest life of
 * a token the old key signed. State is derived from those timestamps, never stored.
 */
export class KeyRing {
  private keys = new Map<string, LoadedKey>();
  private privateKeys = new Map<string, KeyObject>();
  /** Kids of this region's keys that the configured secrets cannot open (decided once per kid). */
  private unsealable = new Set<string>();
  private warnedUnsealable = new Set<string>();
  private loadedAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastUnknownKidReload = 0;

  constructor(private readonly opts: KeyRingOptions) {}

  get ready(): boolean {
    return this.loadedAt !== undefined;
  }

  /** Reads every key from the database and swaps the in-memory ring. */
  async load(): Promise<void> {
    const records = await this.opts.repo.listAll();
    const next = new Map<string, LoadedKey>();
    for (const record of records) {
      const existing = this.keys.get(record.kid);
      const publicKey = existing ? existing.publicKey : { alg: record.alg, key: createPublicKey({ key: record.publicJwk, format: 'jwk' }) };
      next.set(record.kid, { record, publicKey });
    }
    this.keys = next;
    this.unseal();
    this.loadedAt = Date.now();
  }

  /**
   * `unsealable` when the key that signs now cannot be opened with this server's secret (nor the
   * previous one): every login and refresh would fail, so the server must not be ready.
   */
  signingHealth(): SigningHealth {
    if (!this.ready) return 'loading';
    const signer = this.currentSigningRecord();
    return signer && this.unsealable.has(signer.kid) ? 'unsealable' : 'ok';
  }

  /** What `signingHealth() === 'unsealable'` means, for an admin: key ids and what to set, never a secret. */
  unsealableDetail(): string {
    const signer = this.currentSigningRecord();
    return (
      `the signing key ${signer?.kid ?? '?'} of region ${this.opts.region} cannot be unsealed with this server's secret: ` +
      "AUTHCTL_SECRET must be the secret the region's keys were sealed with (during a secret rotation, the old one in AUTHCTL_PREVIOUS_SECRET)"
    );
  }

  /** Makes sure the region has a key that signs now, creating the first one if needed. */
  async ensureSigningKey(): Promise<void> {
    if (!this.ready) await this.load();
    if (this.currentSigningRecord()) return;
    await this.opts.db.transaction(async (trx) => {
      await this.opts.repo.lockForKeyCreation(trx);
      // Another server may have created it while we waited for the lock.
      const records = await this.opts.repo.listAll(trx);
      const now = this.opts.clock.now();
      if (records.some((r) => this.signsAt(r, now))) return;
      await this.opts.repo.insert(await this.generate(now), trx);
    });
    await this.load();
  }

  /**
   * Adds a key that is published now and signs after the activation delay; every older key of
   * this region is scheduled to leave the JWKS once the last token it may sign has expired.
   */
  async rotate(): Promise<KeyInfo> {
    if (!this.ready) await this.load();
    const now = this.opts.clock.now();
    // With no key signing yet, nobody can have cached anything: the new key may sign at once.
    const delay = this.currentSigningRecord() ? this.opts.activationDelaySeconds : 0;
    const activatesAt = new Date(now.getTime() + delay * 1000);
    const record = await this.generate(now, activatesAt);
    const retireAt = new Date(activatesAt.getTime() + this.opts.retireAfterSeconds * 1000);
    await this.opts.db.transaction(async (trx) => {
      await this.opts.repo.lockForKeyCreation(trx);
      await this.opts.repo.insert(record, trx);
      await this.opts.repo.scheduleRetirement(this.opts.region, record.kid, retireAt, trx);
    });
    await this.load();
    return this.describe(this.keys.get(record.kid)!.record, now);
  }

  /**
   * Takes a key out of the JWKS: after the longest life of a token it signed (the default), or at
   * once (`immediately`: a leaked key; every token it signed is refused from then on). The key
   * that signs now cannot be retired (rotate first), nor can another region's key.
   */
  async retire(kid: string, options: { immediately?: boolean } = {}): Promise<KeyInfo> {
    await this.load();
    const record = this.keys.get(kid)?.record;
    if (!record) throw new AppError('not_found', `no such key: ${kid} (see \`authctl keys list\`)`);
    const now = this.opts.clock.now();
    if (record.homeRegion !== this.opts.region) {
      throw new AppError('conflict', `key ${kid} belongs to region ${record.homeRegion}: retire it there`);
    }
    if (!this.isPublished(record, now)) throw new AppError('conflict', `key ${kid} is already retired`);
    if (this.currentSigningRecord()?.kid === kid) {
      throw new AppError('conflict', `key ${kid} signs new tokens now: run \`authctl keys rotate\` first, then retire it once the new key is active`);
    }
    const at = options.immediately ? now : new Date(now.getTime() + this.opts.retireAfterSeconds * 1000);
    await this.opts.repo.retire(kid, at);
    await this.load();
    return this.describe(this.keys.get(kid)!.record, now);
  }

  /**
   * The private key that signs now, with its kid. A node:crypto KeyObject, not a WebCrypto key:
   * signing then runs synchronously in `crypto.sign` (measured: WebCrypto's per-call job and
   * promise cost more than the Ed25519 signature itself).
   */
  signingKey(): { kid: string; alg: SigningAlg; key: KeyObject } {
    const record = this.currentSigningRecord();
    if (!record || !record.privateJwkEncrypted) {
      throw new AppError('unavailable', 'no signing key is loaded yet', { retryAfter: 2 });
    }
    if (this.unsealable.has(record.kid)) {
      // Another server of the region, with the right secret, can serve this request.
      throw new AppError('unavailable', "this server cannot sign tokens: its server secret does not unseal the region's signing key", { retryAfter: 2 });
    }
    let key = this.privateKeys.get(record.kid);
    if (!key) {
      key = this.open(record, this.requireSecrets());
      this.privateKeys.set(record.kid, key);
    }
    return { kid: record.kid, alg: record.alg as SigningAlg, key };
  }

  /**
   * The public key for a kid published at `nowMs` (default: now), or undefined. Never fetched from
   * anywhere a token names. Runs on every Bearer request: it allocates nothing.
   */
  publicKey(kid: string, nowMs: number = this.opts.clock.now().getTime()): PublicKey | undefined {
    const loaded = this.keys.get(kid);
    return loaded && this.publishedAt(loaded.record, nowMs) ? loaded.publicKey : undefined;
  }

  /**
   * The public key of any key in the ring, published or retired: a signature check on its own.
   * Whether the key may verify anything is {@link publicKey}'s question, asked first.
   */
  anyPublicKey(kid: string): PublicKey | undefined {
    return this.keys.get(kid)?.publicKey;
  }

  /**
   * A token named a kid we do not know: another server may have rotated. Reload, but at most
   * once per 5 s, so a flood of tokens with random kids cannot turn into database load.
   */
  async reloadForUnknownKid(): Promise<boolean> {
    const now = Date.now();
    if (now - this.lastUnknownKidReload < 5_000) return false;
    this.lastUnknownKidReload = now;
    try {
      await this.load();
      return true;
    } catch {
      // Database away: the ring we have is all we know; the token is judged against it.
      return false;
    }
  }

  /** The JWKS document: every key that may have signed a live access token. */
  jwks(): { keys: JWK[] } {
    const now = this.opts.clock.now();
    const keys: JWK[] = [];
    for (const { record } of this.keys.values()) {
      if (this.isPublished(record, now)) keys.push({ ...(record.publicJwk as JWK), kid: record.kid, alg: record.alg, use: 'sig' });
    }
    return { keys };
  }

  list(): KeyInfo[] {
    const now = this.opts.clock.now();
    const signer = this.currentSigningRecord()?.kid;
    return [...this.keys.values()].map(({ record }) => this.describe(record, now, signer));
  }

  start(): void {
    this.timer ??= setInterval(() => {
      this.load().catch((err: unknown) => this.opts.log.warn('signing keys could not be reloaded', { event: 'keys.reload_failed', err }));
    }, this.opts.reloadIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Opens every private key of this region that may sign (published, with a private part) once,
   * when it first loads, so that a wrong secret shows at start-up and in /readyz rather than as a
   * failed login. Keys that do not open are remembered; those that do not sign now (retiring, or
   * pending) are logged once with their ids, the one that signs now as an error.
   */
  private unseal(): void {
    const secrets = this.opts.secrets;
    if (!secrets) return;
    const now = this.opts.clock.now();
    for (const kid of this.privateKeys.keys()) if (!this.keys.has(kid)) this.privateKeys.delete(kid);
    for (const kid of this.unsealable) if (!this.keys.has(kid)) this.unsealable.delete(kid);
    const failed: string[] = [];
    for (const { record } of this.keys.values()) {
      if (record.homeRegion !== this.opts.region || !record.privateJwkEncrypted || !this.isPublished(record, now)) continue;
      if (!this.privateKeys.has(record.kid) && !this.unsealable.has(record.kid)) {
        try {
          this.privateKeys.set(record.kid, this.open(record, secrets));
        } catch {
          this.unsealable.add(record.kid);
        }
      }
      if (this.unsealable.has(record.kid) && !this.warnedUnsealable.has(record.kid)) failed.push(record.kid);
    }
    if (failed.length === 0) return;
    for (const kid of failed) this.warnedUnsealable.add(kid);
    const signer = this.currentSigningRecord()?.kid;
    const event = { event: 'keys.unsealable', kids: failed, region: this.opts.region };
    if (signer !== undefined && failed.includes(signer)) {
      this.opts.log.error('the signing key cannot be unsealed with this server secret: this server cannot sign tokens', { ...event, signingKid: signer });
    } else {
      this.opts.log.warn('signing keys that do not sign now cannot be unsealed with this server secret', event);
    }
  }

  private open(record: SigningKeyRecord, secrets: ServerSecrets): KeyObject {
    return createPrivateKey({ key: JSON.parse(secrets.open(record.privateJwkEncrypted!, record.kid)) as JsonWebKey, format: 'jwk' });
  }

  private currentSigningRecord(): SigningKeyRecord | undefined {
    const now = this.opts.clock.now();
    let best: SigningKeyRecord | undefined;
    for (const { record } of this.keys.values()) {
      if (this.signsAt(record, now) && (!best || record.activatesAt > best.activatesAt)) best = record;
    }
    return best;
  }

  private signsAt(record: SigningKeyRecord, now: Date): boolean {
    return record.homeRegion === this.opts.region && record.privateJwkEncrypted !== null && record.activatesAt <= now && this.isPublished(record, now);
  }

  private isPublished(record: SigningKeyRecord, now: Date): boolean {
    return this.publishedAt(record, now.getTime());
  }

  private publishedAt(record: SigningKeyRecord, nowMs: number): boolean {
    return record.retiresAt === null || record.retiresAt.getTime() > nowMs;
  }

  /** pending → active (signs) → retiring (only verifies) → retired (unpublished). */
  private describe(record: SigningKeyRecord, now: Date, signer = this.currentSigningRecord()?.kid): KeyInfo {
    let state: KeyState;
    if (!this.isPublished(record, now)) state = 'retired';
    else if (record.activatesAt > now) state = 'pending';
    else if (record.kid === signer || (record.homeRegion !== this.opts.region && record.retiresAt === null)) state = 'active';
    else state = 'retiring';
    return {
      kid: record.kid,
      alg: record.alg,
      region: record.homeRegion,
      state,
      createdAt: record.createdAt,
      activatesAt: record.activatesAt,
      retiresAt: record.retiresAt,
    };
  }

  private requireSecrets(): ServerSecrets {
    if (!this.opts.secrets) throw new AppError('bad_config', 'no server secret: set AUTHCTL_SECRET to sign tokens or create keys');
    return this.opts.secrets;
  }

  private async generate(now: Date, activatesAt: Date = now): Promise<SigningKeyRecord> {
    const secrets = this.requireSecrets();
    const alg = this.opts.alg;
    const pair =
      alg === 'EdDSA' ? await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true }) : await generateKeyPair('ES256', { extractable: true });
    const publicJwk = await exportJWK(pair.publicKey);
    // RFC 7638 thumbprint: a kid derived from the key itself cannot collide across regions.
    const kid = await calculateJwkThumbprint(publicJwk);
    const privateJwk = await exportJWK(pair.privateKey);
    return {
      kid,
      alg,
      publicJwk: { ...publicJwk },
      privateJwkEncrypted: secrets.seal(JSON.stringify(privateJwk), kid),
      homeRegion: this.opts.region,
      createdAt: now,
      activatesAt,
      retiresAt: null,
    };
  }
}
