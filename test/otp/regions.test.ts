import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { startWorker, type RunningWorker } from '../../src/jobs/worker.js';
import { expectProblem, expectTokenResponse, uniquePassword } from '../helpers/http-assert.js';
import { FROM, nextMail, tag } from '../email/support.js';
import { TestSmtpServer } from '../mail/support.js';
import { eventually, startRegions, type RegionNode } from '../regions/support.js';
import { SIGN_IN_SUBJECT, signInCode } from './support.js';

describe('regions: a sign-in code mailed by one region is used in another', function () {
  this.timeout(90_000);
  let smtp: TestSmtpServer;
  let eu: RegionNode;
  let us: RegionNode;
  const workers: RunningWorker[] = [];

  before(async function () {
    smtp = await TestSmtpServer.start();
    const nodes = await startRegions(['oeu', 'ous'], () => ({
      identity: { email: 'optional', username: 'optional', otpSignup: true },
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
  async function codeFrom(node: RegionNode, email: string): Promise<string> {
    const since = smtp.received.length;
    expect((await post(node, '/v1/auth/otp/send', { email })).status).to.equal(202);
    return signInCode(await nextMail(smtp, email, SIGN_IN_SUBJECT, since));
  }

  it('a user of eu asks eu for a code and signs in with it in us; the code is then spent in eu too', async function () {
    const email = `trav${tag()}@example.com`;
    expect((await post(eu, '/v1/auth/register', { email, password: uniquePassword() })).status).to.equal(201);
    const code = await codeFrom(eu, email);
    await arrived(us, `select 1 from email_challenges where lower(email) = lower(?) and purpose = 'login'`, [email]);
    const session = await expectTokenResponse(await post(us, '/v1/auth/otp/verify', { email, code }));
    expect(decodeJwt(session.accessToken)).to.deep.include({ amr: ['otp'], email_verified: true });
    await arrived(eu, `select 1 from email_challenges where lower(email) = lower(?) and purpose = 'login' and end_reason = 'used'`, [email]);
    await expectProblem(await post(eu, '/v1/auth/otp/verify', { email, code }), 400, 'invalid_code');
    // The address it proved is verified in eu as well.
    await arrived(eu, `select 1 from users where lower(email) = lower(?) and email_verified_at is not null`, [email]);
  });

  it('a sign-up code (no account yet) sent by eu creates the account in us; the password-less account replicates to eu', async function () {
    const email = `fresh${tag()}@example.com`;
    const code = await codeFrom(eu, email);
    await arrived(us, `select 1 from email_challenges where lower(email) = lower(?) and purpose = 'login' and user_id is null`, [email]);
    const session = await expectTokenResponse(await post(us, '/v1/auth/otp/verify', { email, code }));
    expect(session.user).to.include({ email, username: null, emailVerified: true, homeRegion: 'ous' });
    await arrived(eu, `select 1 from users where id = ? and password_hash is null and email_verified_at is not null`, [session.user.id]);
    await expectProblem(await post(eu, '/v1/auth/login', { email, password: uniquePassword() }), 401, 'invalid_credentials');
    await expectProblem(await post(eu, '/v1/auth/otp/verify', { email, code }), 400, 'invalid_code');
    // The next code (from us: eu's send limit counts its first one) signs in to that same account in eu.
    const next = await codeFrom(us, email);
    await arrived(eu, `select 1 from email_challenges where lower(email) = lower(?) and purpose = 'login' and user_id = ?`, [email, session.user.id]);
    const again = await expectTokenResponse(await post(eu, '/v1/auth/otp/verify', { email, code: next }));
    expect(again.user.id).to.equal(session.user.id);
  });
});
