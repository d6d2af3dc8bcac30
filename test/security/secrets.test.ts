import { expect } from 'chai';
import pg from 'pg';
import { ServerSecrets } from '../../src/core/keys/secrets.js';
import { isAppError } from '../../src/platform/errors.js';
import { migrateDatabase, startTestApp, TEST_SECRET, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createAccount, expectProblem, expectTokenResponse, login, refresh, type Account } from '../helpers/http-assert.js';
import { assertNoSecrets, LogCapture } from '../helpers/log-capture.js';
import { runCli } from '../cli/run-cli.js';

interface KeyRow {
  kid: string;
  private_jwk_encrypted: string | null;
}

async function keyRows(url: string): Promise<KeyRow[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<KeyRow>('select kid, private_jwk_encrypted from signing_keys order by created_at')).rows;
  } finally {
    await client.end();
  }
}

/** The private scalar `d` of every sealed key, opened with `secret` (the test may, nobody else). */
function privateParts(rows: KeyRow[], secrets: ServerSecrets): Array<[string, string]> {
  return rows
    .filter((r) => r.private_jwk_encrypted)
    .flatMap((r) => {
      const jwk = JSON.parse(secrets.open(r.private_jwk_encrypted!, r.kid)) as { d: string };
      return [
        [`private key ${r.kid} (d)`, jwk.d],
        [`private key ${r.kid} (d, standard base64)`, Buffer.from(jwk.d, 'base64url').toString('base64')],
        [`private key ${r.kid} (d, hex)`, Buffer.from(jwk.d, 'base64url').toString('hex')],
        [`sealed key ${r.kid}`, r.private_jwk_encrypted!],
      ] as Array<[string, string]>;
    });
}

describe('secrets: the server secret and private keys (ASVS V2.10, V6.4)', function () {
  this.timeout(120_000);

  describe('never printed or logged', function () {
    let db: TestDatabase;

    before(async function () {
      db = await createTestDatabase('sec_secrets_cli');
      await migrateDatabase(db.url);
    });
    after(async () => db?.drop());

    it('`keys rotate` and `keys list` (text and --json, debug logging) print neither the secret nor any private key', async function () {
      const env = { AUTHCTL_LOG_LEVEL: 'debug' };
      const outputs: string[] = [];
      for (const args of [
        ['keys', 'rotate', '--json'],
        ['keys', 'rotate'],
        ['keys', 'list', '--json'],
        ['keys', 'list'],
      ]) {
        const result = await runCli(args, { databaseUrl: db.url, env });
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).to.equal(0);
        outputs.push(result.stdout, result.stderr);
      }
      const listed = JSON.parse((await runCli(['keys', 'list', '--json'], { databaseUrl: db.url })).stdout) as { keys: Array<Record<string, unknown>> };
      expect(listed.keys.length).to.be.at.least(2);
      for (const key of listed.keys) expect(JSON.stringify(key)).to.not.match(/"d"|private|sealed|encrypted/i);
      const rows = await keyRows(db.url);
      const secrets: Array<[string, string]> = [['server secret', TEST_SECRET], ...privateParts(rows, new ServerSecrets(TEST_SECRET))];
      expect(secrets.length).to.be.at.least(9);
      assertNoSecrets(outputs, secrets);
    });

    it('a bad secret is named, never echoed, in the error (exit 78)', async function () {
      const badSecret = 'too-short-but-secret';
      const result = await runCli(['keys', 'list'], { databaseUrl: db.url, env: { AUTHCTL_SECRET: badSecret } });
      expect(result.code).to.equal(78);
      expect(result.stderr).to.include('AUTHCTL_SECRET');
      assertNoSecrets([result.stdout, result.stderr], { 'the bad secret': badSecret });
    });

    it('the server logs key generation and signing at debug level without key material', async function () {
      const capture = new LogCapture();
      const app = await startTestApp('sec_secrets_logs', { logSink: capture, overrides: { log: { level: 'debug' } } });
      try {
        await app.container.keys.rotate();
        const account = await createAccount(app, 'secrets');
        await login(app, account.username, account.password);
        await capture.settle();
        expect(capture.lines.length).to.be.above(3);
        const rows = await keyRows(app.db.url);
        assertNoSecrets(capture.lines, [['server secret', TEST_SECRET], ...privateParts(rows, new ServerSecrets(TEST_SECRET))]);
      } finally {
        await app.close();
      }
    });
  });

  describe('sealed at rest', function () {
    it('every private key in the database is AES-256-GCM sealed: no key material in clear, useless without the secret', async function () {
      const app = await startTestApp('sec_secrets_rest');
      try {
        await app.container.keys.rotate();
        const rows = await keyRows(app.db.url);
        expect(rows.length).to.be.at.least(2);
        for (const [name, value] of privateParts(rows, new ServerSecrets(TEST_SECRET)).filter(([n]) => n.includes('(d'))) {
          for (const row of rows) expect(row.private_jwk_encrypted, name).to.not.include(value);
        }
        for (const row of rows) {
          expect(row.private_jwk_encrypted).to.match(/^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
          expect(row.private_jwk_encrypted).to.not.match(/"d"|"kty"|OKP|Ed25519/);
          let refused: unknown;
          try {
            new ServerSecrets('another-secret-of-at-least-32-characters!').open(row.private_jwk_encrypted!, row.kid);
          } catch (err) {
            refused = err;
          }
          expect(isAppError(refused, 'bad_config'), 'another secret cannot open it').to.equal(true);
        }
      } finally {
        await app.close();
      }
    });
  });

  describe('server secret rotation (current + previous)', function () {
    const S1 = 'secret-one-0123456789-abcdefghijklmnopqrstuvwxyz';
    const S2 = 'secret-two-0123456789-abcdefghijklmnopqrstuvwxyz';
    const S3 = 'secret-three-0123456789-abcdefghijklmnopqrstuvwxy';
    let db: TestDatabase;
    let app: TestApp | undefined;
    let account: Account;
    const tokens: { refreshedUnderS2?: string; neverRefreshed?: string; rotatedOnce?: string } = {};

    const start = async (secret: string, previousSecret?: string) => {
      await app?.close();
      app = await startTestApp('sec_secret_rotation', { db, overrides: { secret, ...(previousSecret ? { previousSecret } : {}) } });
      return app;
    };

    before(async function () {
      db = await createTestDatabase('sec_secret_rotation');
      const first = await start(S1);
      account = await createAccount(first, 'rotation');
      tokens.rotatedOnce = (await login(first, account.username, account.password)).refreshToken;
      tokens.neverRefreshed = (await login(first, account.username, account.password)).refreshToken;
    });
    after(async function () {
      await app?.close();
      await db?.drop();
    });

    it('after one rotation (secret S2, previous S1) a refresh token issued under S1 still refreshes', async function () {
      const second = await start(S2, S1);
      const refreshed = await expectTokenResponse(await refresh(second, tokens.rotatedOnce));
      tokens.refreshedUnderS2 = refreshed.refreshToken;
      // The signing key sealed under S1 still opens (via previous); a new key is sealed under S2,
      // so the next rotation can drop S1 (README "Security": rotate keys after the secret).
      await second.container.keys.rotate();
    });

    it('without the previous secret, the S1 tokens are refused (the previous secret is what keeps them alive)', async function () {
      const alone = await start(S2);
      await expectProblem(await refresh(alone, tokens.neverRefreshed), 401, 'invalid_refresh_token');
    });

    it('after a second rotation (S3, previous S2) tokens of S2 still refresh, a token from two rotations ago is refused', async function () {
      const third = await start(S3, S2);
      await expectTokenResponse(await refresh(third, tokens.refreshedUnderS2));
      await expectProblem(await refresh(third, tokens.neverRefreshed), 401, 'invalid_refresh_token');
      // Login keeps working: the signing key in use was sealed under S2.
      await login(third, account.username, account.password);
    });
  });
});
