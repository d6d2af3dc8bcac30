import { createPrivateKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Logger } from '../../platform/logger.js';
import type { Db } from '../../store/pg/db.js';
import type { SigningKeyRecord } from '../../model/signing-key.js';
import type { SigningKeysRepo } from '../../store/pg/signing-keys-repo.js';
import { AppError } from '../../platform/errors.js';
import type { Clock } from '../../platform/clock.js';
import type { ServerSecrets } from './secrets.js';

export type SigningAlg = 'EdDSA' | 'ES256';
export type KeyState = 'pending' | 'active' | 'retiring' | 'retired';

export interface KeyInfo {
  kid: string;
  alg: string;
  region: string;
  state: KeyState;
  createdAt: Date;
  activatesAt: Date;
  retiresAt: Date | null;
}

interface LoadedKey {
  record: SigningKeyRecord;
  publicKey: CryptoKey | Uint8Array;
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
      const publicKey = existing ? existing.publicKey : await importJWK(record.publicJwk as JWK, record.alg);
      next.set(record.kid, { record, publicKey });
    }
    this.keys = next;
    this.loadedAt = Date.now();
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
    let key = this.privateKeys.get(record.kid);
    if (!key) {
      const secrets = this.requireSecrets();
      key = createPrivateKey({ key: JSON.parse(secrets.open(record.privateJwkEncrypted, record.kid)) as JsonWebKey, format: 'jwk' });
      this.privateKeys.set(record.kid, key);
    }
    return { kid: record.kid, alg: record.alg as SigningAlg, key };
  }

  /** The public key for a published kid, or undefined. Never fetched from anywhere a token names. */
  publicKey(kid: string): { alg: string; key: CryptoKey | Uint8Array } | undefined {
    const loaded = this.keys.get(kid);
    if (!loaded || !this.isPublished(loaded.record, this.opts.clock.now())) return undefined;
    return { alg: loaded.record.alg, key: loaded.publicKey };
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
    return record.retiresAt === null || record.retiresAt > now;
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
