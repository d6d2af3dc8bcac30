import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import type { AppError } from '../../src/platform/errors.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { hasPty, PtyCli } from './terminal.js';
import { shutdown } from '../../src/runtime.js';

/** Commands run on a pseudo-terminal: prompts, confirmation and colour as an admin sees them. */
describe('authctl at a terminal (pseudo-terminal)', function () {
  this.timeout(90_000);
  let db: TestDatabase;
  let container: Container;
  let dir: string;
  const running: PtyCli[] = [];
  const pty = (args: string[], env: Record<string, string | undefined> = {}) => {
    const cli = new PtyCli(args, { databaseUrl: db.url, env });
    running.push(cli);
    return cli;
  };

  before(async function () {
    if (!hasPty) this.skip();
    db = await createTestDatabase('cli_tty');
    container = buildContainer(testConfig(db.url));
    await container.db.migrateLatest();
    await container.users.register('victor', 'victor-tty-passphrase-1');
    dir = mkdtempSync(join(tmpdir(), 'authctl-tty-'));
  });

  afterEach(function () {
    for (const cli of running.splice(0)) cli.kill();
  });

  after(async function () {
    await shutdown(container);
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('user delete asks first: "n" keeps the user (exit 2), "y" deletes them', async function () {
    const no = pty(['user', 'delete', 'victor']);
    await no.answer(/Delete user victor \([0-9a-f-]+\)\? \(y\/N\)/, 'n');
    expect(await no.exited, no.screen).to.equal(2);
    expect(no.screen).to.match(/not deleted/);
    expect((await container.users.find('victor')).username).to.equal('victor');

    const yes = pty(['user', 'delete', 'victor']);
    await yes.answer(/Delete user victor/, 'y');
    expect(await yes.exited, yes.screen).to.equal(0);
    expect(yes.screen).to.match(/Deleted user victor/);
    let caught: unknown;
    await container.users.find('victor').catch((err: unknown) => (caught = err));
    expect((caught as AppError).code).to.equal('not_found');
  });

  it('tables are coloured on a terminal (and plain with NO_COLOR)', async function () {
    await container.users.register('wendy', 'wendy-tty-passphrase-2');
    const coloured = pty(['user', 'list']);
    expect(await coloured.exited, coloured.screen).to.equal(0);
    expect(coloured.screen).to.match(/USERNAME\s+ID\s+STATUS/);
    expect(coloured.rawScreen).to.contain('\u001b[1mUSERNAME');
    expect(coloured.rawScreen).to.contain('\u001b[32mactive');

    const plain = pty(['user', 'list'], { NO_COLOR: '1' });
    expect(await plain.exited, plain.screen).to.equal(0);
    expect(plain.rawScreen).not.to.contain('\u001b[');
  });

  it('authctl init: the whole wizard, a refused database asked again, then the file', async function () {
    const output = join(dir, 'tty.json');
    const init = pty(['init', '--output', output], { AUTHCTL_SECRET: undefined });
    await init.answer(/Region name/, 'tty-region');
    await init.answer(/Public URL/, '');
    await init.answer(/PostgreSQL URL/, 'postgres://postgres@127.0.0.1:1/authctl');
    await init.waitFor(/connection refused/);
    await init.answer(/PostgreSQL URL/, db.url);
    await init.waitFor(/connected \(PostgreSQL/);
    await init.answer(/Redis URL/, '-');
    await init.answer(/SMTP URL for outgoing mail/, '');
    await init.answer(/Enable "Sign in with Google"/, '');
    await init.answer(/Turn on passkeys\?/, '');
    await init.answer(/Access token lifetime/, '');
    await init.answer(/Session \(refresh token\) lifetime/, '');
    await init.answer(/Add a peer region/, 'n');
    await init.answer(/Run the database migrations now\?/, 'n');
    expect(await init.exited, init.screen).to.equal(0);

    expect(existsSync(output)).to.equal(true);
    const written = JSON.parse(readFileSync(output, 'utf8')) as Record<string, unknown>;
    expect(written).to.deep.include({ region: 'tty-region', publicUrl: 'http://127.0.0.1:8080', secret: 'env:AUTHCTL_SECRET' });
    expect(written).not.to.have.property('cache');
    const secret = /export AUTHCTL_SECRET='([^']+)'/.exec(init.screen)?.[1];
    expect(secret).to.match(/^[A-Za-z0-9_-]{64}$/);
    expect(init.screen.split(secret!).length - 1).to.equal(1);
    expect(init.screen).to.contain('authctl migrate');
  });
});
