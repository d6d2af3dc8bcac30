import { expect } from 'chai';
import { startWorker, type RunningWorker } from '../../src/jobs/worker.js';
import { expectProblem, expectTokenResponse, uniquePassword } from '../helpers/http-assert.js';
import { codeAndLink, FROM, nextMail } from '../email/support.js';
import { TestSmtpServer } from '../mail/support.js';
import { eventually, startRegions, type RegionNode } from './support.js';

describe('regions: e-mail flows started in one region, finished in another', function () {
  this.timeout(90_000);
  let smtp: TestSmtpServer;
  let eu: RegionNode;
  let us: RegionNode;
  const workers: RunningWorker[] = [];

  before(async function () {
    smtp = await TestSmtpServer.start();
    const nodes = await startRegions(['eu', 'us'], () => ({
      identity: { email: 'optional' },
      mail: { transport: 'smtp', smtpUrl: `smtp://127.0.0.1:${smtp.port}`, from: FROM, retryDelaySeconds: 1, retryDelayMaxSeconds: 2 },
    }));
    [eu, us] = [nodes[0]!, nodes[1]!];
    for (const node of nodes) workers.push(await startWorker(node.container, node.container.jobs, { pollingIntervalSeconds: 0.5, stopTimeoutMs: 5_000 }));
  });
  after(async function () {
    for (const w of workers) await w.stop();
    for (const node of [eu, us]) await node?.close();
    await smtp?.close();
  });

  const post = (node: RegionNode, path: string, json: unknown) => node.request(path, { method: 'POST', json });
  const arrived = (node: RegionNode, sql: string, values: unknown[]) =>
    eventually(`a row in ${node.name}`, async () => ((await node.query(sql, values)).length > 0 ? true : undefined));

  it('a sign-up in eu is verified with its code in us, and the verified address reaches eu', async function () {
    const email = `trav.${Date.now()}@example.com`;
    const password = uniquePassword();
    const since = smtp.received.length;
    const res = await post(eu, '/v1/auth/register', { username: `trav${Date.now()}`, email, password });
    expect(res.status).to.equal(201);
    const { code } = codeAndLink(await nextMail(smtp, email, /verification code/, since));
    await arrived(us, `select 1 from email_challenges where lower(email) = lower(?) and purpose = 'verify'`, [email]);
    expect((await post(us, '/v1/auth/email/verify', { email, code })).status).to.equal(204);
    await arrived(eu, `select 1 from users where lower(email) = lower(?) and email_verified_at is not null`, [email]);
    // The challenge is spent in eu too: the same code is refused there.
    await arrived(eu, `select 1 from email_challenges where lower(email) = lower(?) and purpose = 'verify' and ended_at is not null`, [email]);
    await expectProblem(await post(eu, '/v1/auth/email/verify', { email, code }), 400, 'invalid_code');
  });

  it('a reset asked for in eu is finished in us; the sessions eu holds are cut off, and the link is spent everywhere', async function () {
    const email = `reset.${Date.now()}@example.com`;
    const password = uniquePassword();
    expect((await post(eu, '/v1/auth/register', { username: `reset${Date.now()}`, email, password })).status).to.equal(201);
    const session = await expectTokenResponse(await post(eu, '/v1/auth/login', { email, password }));
    const since = smtp.received.length;
    expect((await post(eu, '/v1/auth/password/forgot', { email })).status).to.equal(202);
    const { token } = codeAndLink(await nextMail(smtp, email, /reset your password/, since));
    await arrived(us, `select 1 from email_challenges where lower(email) = lower(?) and purpose = 'reset'`, [email]);
    const newPassword = uniquePassword();
    expect((await post(us, '/v1/auth/password/reset', { token, newPassword })).status).to.equal(204);
    await expectTokenResponse(await post(us, '/v1/auth/login', { email, password: newPassword }));
    // eu learns the new password and the cut-off: its session of before the reset is revoked.
    await eventually('the new password in eu', async () =>
      (await post(eu, '/v1/auth/login', { email, password: newPassword })).status === 200 ? true : undefined,
    );
    await eventually('the old session refused in eu', async () => {
      const r = await post(eu, '/v1/auth/refresh', { refreshToken: session.refreshToken });
      return r.status === 401 ? true : undefined;
    });
    await expectProblem(await post(eu, '/v1/auth/password/reset', { token, newPassword: uniquePassword() }), 400, 'invalid_code');
  });
});
