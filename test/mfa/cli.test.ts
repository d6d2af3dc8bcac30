import { userInfo } from 'node:os';
import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import type { AppError } from '../../src/platform/errors.js';
import { shutdown } from '../../src/runtime.js';
import { testConfig } from '../helpers/app.js';
import { loginTokens } from '../helpers/assert.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, expectJsonError, runCli, type CliResult } from '../cli/run-cli.js';
import { oathtool } from './support.js';

describe('authctl user mfa list / reset, and user show (spawned as an admin runs them)', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let c: Container;
  const PASSWORD = 'mfa-cli-passphrase-7';
  const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => runCli(args, { databaseUrl: db.url, env });

  before(async () => {
    db = await createTestDatabase('mfa_cli');
    c = buildContainer(testConfig(db.url));
    await c.db.migrateLatest();
    await c.keys.ensureSigningKey();
    await c.revocations.poll();
  });
  after(async () => {
    await shutdown(c);
    await db?.drop();
  });

  it('list shows the factors and recovery codes left (never a secret); reset removes them, ends the codes and revokes the sessions in one go, logged with who ran it', async () => {
    const user = await c.users.register('mona', PASSWORD);
    // Sessions opened before the factor (a login afterwards would ask for it).
    const sessions = [await loginTokens(c.auth, 'mona', PASSWORD, {}), await loginTokens(c.auth, 'mona', PASSWORD, {})];
    const started = await c.mfa.startTotp(user.id);
    const { recoveryCodes } = await c.mfa.confirmTotp(user.id, started.factorId, oathtool(started.secret, c.clock.now()));

    const listedRun = await cli(['user', 'mfa', 'list', 'MONA', '--json']);
    const listed = expectJson<{ user: { id: string }; mfaEnabled: boolean; factors: Array<Record<string, unknown>>; recoveryCodesLeft: number }>(listedRun, 0);
    expect(listed.user.id).to.equal(user.id);
    expect(listed.mfaEnabled).to.equal(true);
    expect(listed.recoveryCodesLeft).to.equal(10);
    expect(listed.factors).to.have.length(1);
    expect(listed.factors[0]).to.include({ id: started.factorId, type: 'totp', status: 'active' });
    for (const secret of [started.secret, started.uri, ...recoveryCodes]) expect(listedRun.stdout + listedRun.stderr).not.to.contain(secret);
    const human = await cli(['user', 'mfa', 'list', 'mona']);
    expect(human.code, describeRun(human)).to.equal(0);
    expect(human.stdout).to.contain(started.factorId).and.to.contain('10 recovery code(s) left');

    expect(expectJson<{ mfaEnabled: boolean }>(await cli(['user', 'show', 'mona', '--json']), 0).mfaEnabled).to.equal(true);

    // Destructive: not without confirmation (no terminal here).
    expectJsonError(await cli(['user', 'mfa', 'reset', 'mona', '--json']), 2, 'invalid_request');
    expect(await c.mfa.activeTypes(user.id)).to.deep.equal(['totp', 'recovery_code']);

    const resetRun = await cli(['user', 'mfa', 'reset', 'mona', '--yes', '--json'], { AUTHCTL_LOG_LEVEL: 'info' });
    expect(expectJson(resetRun, 0)).to.deep.equal({
      user: { id: user.id, username: 'mona', email: null },
      removedFactors: 1,
      endedRecoveryCodes: 10,
      revokedSessions: 2,
    });
    const logged = resetRun.stderr
      .split('\n')
      .filter((line) => line.includes('"mfa.reset"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(logged, resetRun.stderr).to.have.length(1);
    expect(logged[0]).to.include({ userId: user.id, actor: `cli:${userInfo().username}`, removedFactors: 1, revokedSessions: 2 });

    expect(await c.mfa.activeTypes(user.id)).to.deep.equal([]);
    const code = await c.mfa.verify(user.id, { recoveryCode: recoveryCodes[0]! }).catch((err: AppError) => err.code);
    expect(code).to.equal('invalid_code');
    for (const s of sessions) {
      const refreshed = await c.auth.refresh(s.refreshToken).catch((err: AppError) => err.code);
      expect(refreshed).to.equal('invalid_refresh_token');
    }
    const rows = await c.db.writer('mfa_recovery_codes').where({ user_id: user.id }).select('end_reason');
    expect(rows.map((r: { end_reason: string }) => r.end_reason)).to.deep.equal(Array(10).fill('reset'));
    expect(expectJson<{ mfaEnabled: boolean }>(await cli(['user', 'show', 'mona', '--json']), 0).mfaEnabled).to.equal(false);
  });

  it('an unknown user is not_found (exit 3)', async () => {
    expectJsonError(await cli(['user', 'mfa', 'list', 'nobody-here', '--json']), 3, 'not_found');
    expectJsonError(await cli(['user', 'mfa', 'reset', 'nobody-here', '--yes', '--json']), 3, 'not_found');
  });
});
