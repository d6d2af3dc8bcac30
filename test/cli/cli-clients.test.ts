import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import type { IssuedClientSecret, ServiceClientView } from '../../src/core/clients/client-service.js';
import { shutdown } from '../../src/runtime.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, runCli, type CliOptions, type CliResult } from './run-cli.js';
import { hasPty, PtyCli } from './terminal.js';

const occurrences = (text: string, part: string) => text.split(part).length - 1;

/** `authctl client …` spawned as an admin runs it, over a real database. */
describe('authctl client (spawned as a user runs it)', function () {
  this.timeout(90_000);
  let db: TestDatabase;
  let container: Container;
  // Debug logging: every line a command logs is on stderr, where a secret must never be.
  const cli = (args: string[], options: CliOptions = {}): Promise<CliResult> =>
    runCli(args, { databaseUrl: db.url, ...options, env: { AUTHCTL_LOG_LEVEL: 'debug', ...options.env } });

  before(async function () {
    db = await createTestDatabase('cli_clients');
    container = buildContainer(testConfig(db.url));
    await container.db.migrateLatest();
  });

  after(async function () {
    await shutdown(container);
    await db?.drop();
  });

  it('client create prints the id and the secret exactly once, says it will not be shown again, and the secret works', async function () {
    const run = await cli(['client', 'create', 'billing api']);
    expect(run.code, describeRun(run)).to.equal(0);
    const id = /client_id:\s+(svc_[0-9a-f]{32})/.exec(run.stdout)?.[1];
    const secret = /client_secret:\s+(cs_[A-Za-z0-9_-]{43})/.exec(run.stdout)?.[1];
    expect(id, run.stdout).to.be.a('string');
    expect(secret, run.stdout).to.be.a('string');
    expect(occurrences(run.stdout + run.stderr, secret!)).to.equal(1);
    expect(occurrences(run.stderr, secret!.slice(3))).to.equal(0);
    expect(run.stdout).to.match(/shown once and cannot be shown again/);
    expect(run.stdout).to.include('scopes: introspect.');
    // The log line of the creation is there, without the secret.
    expect(run.stderr).to.include('client.created');
    await container.clients.load();
    expect(await container.clients.authenticate(id!, secret!)).to.deep.include({ id, name: 'billing api', scopes: ['introspect'] });
  });

  it('client create --json: the client and the secret once; --scope twice gives both scopes', async function () {
    const run = await cli(['client', 'create', 'gateway', '--scope', 'introspect', '--scope', 'revoke', '--json']);
    const out = expectJson<IssuedClientSecret>(run, 0);
    expect(out.client.scopes).to.deep.equal(['introspect', 'revoke']);
    expect(out.secret).to.match(/^cs_/);
    expect(occurrences(run.stdout + run.stderr, out.secret)).to.equal(1);
    expect(Object.keys(out).sort()).to.deep.equal(['client', 'secret']);
  });

  it('client list and list --json show clients but never a secret or a hash', async function () {
    const issued = await container.clients.create('listed', ['revoke']);
    const [row] = await container.db.writer('service_clients').where({ id: issued.client.id }).select<Array<{ secret_hash: string }>>('secret_hash');
    for (const args of [
      ['client', 'list'],
      ['client', 'list', '--json'],
    ]) {
      const run = await cli(args);
      expect(run.code, describeRun(run)).to.equal(0);
      expect(run.stdout).to.include(issued.client.id);
      for (const part of [issued.secret, issued.secret.slice(3), row!.secret_hash]) expect(run.stdout + run.stderr).not.to.include(part);
      expect(run.stdout + run.stderr).not.to.match(/cs_[A-Za-z0-9_-]{20}/);
    }
    const out = expectJson<{ clients: ServiceClientView[] }>(await cli(['client', 'list', '--json']), 0);
    const listed = out.clients.find((c) => c.id === issued.client.id);
    expect(listed).to.deep.equal(issued.client);
    for (const c of out.clients) expect(Object.keys(c).sort()).to.deep.equal(['createdAt', 'homeRegion', 'id', 'name', 'scopes', 'secretRotatedAt']);
  });

  it('client rotate-secret prints the new secret once; the old one is refused, the new one works', async function () {
    const issued = await container.clients.create('rotated', ['introspect']);
    const run = await cli(['client', 'rotate-secret', issued.client.id, '--json']);
    const out = expectJson<IssuedClientSecret>(run, 0);
    expect(out.client.id).to.equal(issued.client.id);
    expect(out.secret).to.not.equal(issued.secret);
    expect(occurrences(run.stdout + run.stderr, out.secret)).to.equal(1);
    await container.clients.load();
    expect(await container.clients.authenticate(issued.client.id, issued.secret)).to.equal(undefined);
    expect(await container.clients.authenticate(issued.client.id, out.secret)).to.not.equal(undefined);

    const human = await cli(['client', 'rotate-secret', issued.client.id]);
    expect(human.code, describeRun(human)).to.equal(0);
    expect(human.stdout).to.match(/client_secret:\s+cs_/);
    expect(human.stdout).to.match(/cannot be shown again/);
  });

  it('client delete without a terminal needs --yes (exit 2, nothing deleted); with --yes (or --force) it deletes', async function () {
    const issued = await container.clients.create('doomed', ['introspect']);
    const refused = await cli(['client', 'delete', issued.client.id]);
    expect(refused.code, describeRun(refused)).to.equal(2);
    expect(refused.stderr).to.match(/pass --yes/);
    expect(await container.clients.get(issued.client.id)).to.deep.equal(issued.client);

    const out = expectJson<ServiceClientView & { deleted: boolean }>(await cli(['client', 'delete', issued.client.id, '--yes', '--json']), 0);
    expect(out).to.deep.equal({ ...issued.client, deleted: true });
    expect((await container.clients.list()).map((c) => c.id)).not.to.include(issued.client.id);

    const other = await container.clients.create('forced', ['introspect']);
    const forced = await cli(['client', 'delete', other.client.id, '--force']);
    expect(forced.code, describeRun(forced)).to.equal(0);
    expect(forced.stdout).to.include(`Deleted client forced (${other.client.id})`);
  });

  it('an unknown id is not_found (exit 3), a bad scope or name exit 2, each with a clear message and no stack trace', async function () {
    const unknown = `svc_${'0'.repeat(32)}`;
    for (const verb of ['rotate-secret', 'delete']) {
      const err = expectJsonError(await cli(['client', verb, unknown, '--yes', '--json'].filter((a) => verb === 'delete' || a !== '--yes')), 3, 'not_found');
      expect(err.message).to.include(unknown);
    }
    const human = await cli(['client', 'rotate-secret', 'nonsense']);
    expect(human.code, describeRun(human)).to.equal(3);
    expect(human.stderr).to.match(/no such client: nonsense \(see `authctl client list`\)/);
    expectNoStackTrace(human.stderr);

    const scope = await cli(['client', 'create', 'x', '--scope', 'admin']);
    expect(scope.code, describeRun(scope)).to.equal(2);
    expect(scope.stderr).to.include('unknown scope "admin": a scope is one of introspect, revoke');
    expectNoStackTrace(scope.stderr);
    expectJsonError(await cli(['client', 'create', 'x', '--scope', 'admin', '--json']), 2, 'invalid_request');
    const name = expectJsonError(await cli(['client', 'create', '   ', '--json']), 2, 'invalid_request');
    expect(name.message).to.match(/name must not be empty/);
    expect((await container.clients.list()).map((c) => c.name)).not.to.include('x');
  });

  it('client delete at a terminal asks first: "n" keeps the client (exit 2), "y" deletes it', async function () {
    if (!hasPty) this.skip();
    const issued = await container.clients.create('asked', ['introspect']);
    const no = new PtyCli(['client', 'delete', issued.client.id], { databaseUrl: db.url });
    try {
      await no.answer(/Delete client asked \(svc_[0-9a-f]{32}\)\? \(y\/N\)/, 'n');
      expect(await no.exited, no.screen).to.equal(2);
    } finally {
      no.kill();
    }
    expect((await container.clients.get(issued.client.id)).id).to.equal(issued.client.id);
    const yes = new PtyCli(['client', 'delete', issued.client.id], { databaseUrl: db.url });
    try {
      await yes.answer(/Delete client asked/, 'y');
      expect(await yes.exited, yes.screen).to.equal(0);
    } finally {
      yes.kill();
    }
    expect((await container.clients.list()).map((c) => c.id)).not.to.include(issued.client.id);
  });
});
