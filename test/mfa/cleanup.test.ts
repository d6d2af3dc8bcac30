import { expect } from 'chai';
import { v7 as uuidv7 } from 'uuid';
import { buildContainer, type Container } from '../../src/container.js';
import { MFA_RETENTION_SECONDS, runCleanup } from '../../src/jobs/handlers/cleanup.js';
import type { MfaFactorRecord, RecoveryCodeRecord } from '../../src/model/mfa.js';
import { ManualClock } from '../../src/platform/clock.js';
import { shutdown } from '../../src/runtime.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { captureLogger } from '../jobs/setup.js';

const DAY = 86_400_000;

describe('cleanup job: second factors', function () {
  this.timeout(60_000);
  const clock = new ManualClock(Date.parse('2030-01-15T12:00:00Z'));
  let db: TestDatabase;
  let c: Container;

  before(async () => {
    db = await createTestDatabase('mfa_cleanup');
    c = buildContainer(testConfig(db.url), { clock });
    await c.db.migrateLatest();
  });
  after(async () => {
    await shutdown(c);
    await db?.drop();
  });

  it('deletes expired pending factors, factors removed and codes ended over 30 days ago, and uses of expired mfaTokens; keeps everything that still matters', async () => {
    const user = await c.users.register('cleo', 'a long enough passphrase 17');
    const now = clock.now().getTime();
    const at = (ms: number) => new Date(now - ms);
    const factor = (status: 'pending' | 'active', createdAgo: number, removedAgo: number | null): MfaFactorRecord => ({
      id: uuidv7(),
      userId: user.id,
      type: 'totp',
      secretSealed: 'v1.x.y.z.w',
      status,
      homeRegion: 'local',
      createdAt: at(createdAgo),
      confirmedAt: status === 'active' ? at(createdAgo) : null,
      lastUsedStep: null,
      removedAt: removedAgo === null ? null : at(removedAgo),
      version: 1,
    });
    const keep = [factor('pending', 5 * 60_000, null), factor('active', 90 * DAY, null), factor('active', 40 * DAY, 29 * DAY)];
    const drop = [factor('pending', 11 * 60_000, null), factor('active', 90 * DAY, MFA_RETENTION_SECONDS * 1000 + 60_000)];
    for (const f of [...keep, ...drop]) await c.repos.mfaFactors.insert(f);

    const code = (endedAgo: number | null): RecoveryCodeRecord => ({
      id: uuidv7(),
      userId: user.id,
      codeHash: '$argon2id$x',
      homeRegion: 'local',
      createdAt: at(60 * DAY),
      endedAt: endedAgo === null ? null : at(endedAgo),
      endReason: endedAgo === null ? null : 'used',
      version: 1,
    });
    const keepCodes = [code(null), code(29 * DAY)];
    const dropCodes = [code(31 * DAY), code(45 * DAY)];
    await c.db.transaction((trx) => c.repos.mfaRecoveryCodes.insertMany([...keepCodes, ...dropCodes], trx));

    const use = (expiresIn: number) => ({ id: uuidv7(), userId: user.id, homeRegion: 'local', usedAt: at(60_000), expiresAt: new Date(now + expiresIn) });
    const keepUse = use(60_000);
    const dropUse = use(-1_000);
    for (const u of [keepUse, dropUse]) expect(await c.repos.mfaTokenUses.insertOnce(u)).to.equal(true);
    expect(await c.repos.mfaTokenUses.insertOnce(keepUse), 'a use is recorded once').to.equal(false);

    const { log } = captureLogger();
    const result = await runCleanup({
      sessions: c.repos.sessions,
      mfa: { factors: c.repos.mfaFactors, recoveryCodes: c.repos.mfaRecoveryCodes, tokenUses: c.repos.mfaTokenUses },
      clock,
      log,
      horizonSeconds: 930,
      batchSize: 1,
    });
    expect(result.deleted).to.include({ mfaFactors: 2, mfaRecoveryCodes: 2, mfaTokenUses: 1 });
    const ids = async (table: string) => (await c.db.writer(table).select<Array<{ id: string }>>('id')).map((r) => r.id).sort();
    expect(await ids('mfa_factors')).to.deep.equal(keep.map((f) => f.id).sort());
    expect(await ids('mfa_recovery_codes')).to.deep.equal(keepCodes.map((r) => r.id).sort());
    expect(await ids('mfa_token_uses')).to.deep.equal([keepUse.id]);
  });
});
