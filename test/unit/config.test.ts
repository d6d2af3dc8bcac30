import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig, requireSecret } from '../../src/config/load.js';
import { AppError } from '../../src/platform/errors.js';

const SECRET = 'a-perfectly-fine-secret-0123456789-abcdefgh';

/** Runs `fn`, expects it to throw an AppError and returns it. */
function catchAppError(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(AppError);
    return err as AppError;
  }
  expect.fail('expected an AppError to be thrown');
}

describe('config: loadConfig', function () {
  let dir: string;
  // A cwd without config/authctl.json, so no fallback file is picked up by accident.
  let emptyCwd: string;

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'authctl-config-'));
    emptyCwd = join(dir, 'empty');
    mkdirSync(emptyCwd);
  });

  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  function writeJson(name: string, value: unknown): string {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(value));
    return file;
  }

  it('applies the documented defaults', function () {
    const config = loadConfig({ env: {}, cwd: emptyCwd });
    expect(config.http.port).to.equal(8080);
    expect(config.tokens.accessTtl).to.equal(900);
    expect(config.tokens.refreshTtl).to.equal(1_209_600);
    expect(config.tokens.refreshGrace).to.equal(10);
    expect(config.tokens.alg).to.equal('EdDSA');
    expect(config.region).to.equal('local');
    expect(config.secret).to.equal(undefined);
  });

  it('layers defaults ← file ← env ← overrides', function () {
    const file = writeJson('authctl.json', {
      region: 'eu-west',
      http: { port: 9000, host: '0.0.0.0' },
      tokens: { accessTtl: 600, refreshGrace: 5, audience: 'from-file' },
    });
    const config = loadConfig({
      env: { AUTHCTL_PORT: '9100', AUTHCTL_ACCESS_TTL: '700', AUTHCTL_AUDIENCE: 'from-env' },
      file,
      cwd: emptyCwd,
      overrides: { http: { port: 9200 } },
    });
    // Override beats env beats file.
    expect(config.http.port).to.equal(9200);
    // Env beats file.
    expect(config.tokens.accessTtl).to.equal(700);
    expect(config.tokens.audience).to.equal('from-env');
    // File beats defaults, and is kept where nothing above it speaks.
    expect(config.region).to.equal('eu-west');
    expect(config.http.host).to.equal('0.0.0.0');
    expect(config.tokens.refreshGrace).to.equal(5);
    // Defaults fill the rest, even inside a section the file partly sets.
    expect(config.tokens.refreshTtl).to.equal(1_209_600);
    expect(config.http.bodyLimit).to.equal(16_384);
  });

  it('env beats file for a value the overrides do not set', function () {
    const file = writeJson('authctl.json', { http: { port: 9000 } });
    const config = loadConfig({ env: { AUTHCTL_PORT: '9100' }, file, cwd: emptyCwd });
    expect(config.http.port).to.equal(9100);
  });

  it('rejects AUTHCTL_PORT=abc with bad_config (exit 78) naming the variable', function () {
    const err = catchAppError(() => loadConfig({ env: { AUTHCTL_PORT: 'abc' }, cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    expect(err.exitCode).to.equal(78);
    expect(err.detail).to.include('AUTHCTL_PORT');
  });

  it('rejects an out-of-range AUTHCTL_PORT naming the variable', function () {
    const err = catchAppError(() => loadConfig({ env: { AUTHCTL_PORT: '70000' }, cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    expect(err.detail).to.include('AUTHCTL_PORT');
  });

  it('rejects a too-short AUTHCTL_SECRET naming the variable but never echoing the value', function () {
    const shortSecret = 'tooshort-Zq9xW';
    const err = catchAppError(() => loadConfig({ env: { AUTHCTL_SECRET: shortSecret }, cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    expect(err.exitCode).to.equal(78);
    expect(err.detail).to.include('AUTHCTL_SECRET');
    expect(err.detail).not.to.include(shortSecret);
    expect(err.message).not.to.include(shortSecret);
  });

  it('rejects a bad value in a file naming the key and the file', function () {
    const file = writeJson('bad-port.json', { http: { port: 'eighty' } });
    const err = catchAppError(() => loadConfig({ env: {}, file, cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    expect(err.detail).to.include('http.port');
    expect(err.detail).to.include(file);
  });

  it('takes "env:NAME" file values from the environment, including peer secrets', function () {
    const peerSecret = 'peer-secret-0123456789-0123456789-abcdef';
    const file = writeJson('refs.json', {
      secret: 'env:MY_SECRET',
      regions: { peers: [{ name: 'us-east', url: 'https://us.example.com', secret: 'env:PEER_US' }] },
    });
    const config = loadConfig({ env: { MY_SECRET: SECRET, PEER_US: peerSecret }, file, cwd: emptyCwd });
    expect(config.secret).to.equal(SECRET);
    expect(config.regions.peers[0]!.secret).to.equal(peerSecret);
    expect(config.regions.proxyTimeoutMs).to.equal(1_500);
  });

  it('rejects an "env:NAME" reference to an unset variable, naming key and variable', function () {
    const file = writeJson('missing-ref.json', { regions: { peers: [{ name: 'us', url: 'https://us.example.com', secret: 'env:NOPE' }] } });
    const err = catchAppError(() => loadConfig({ env: {}, file, cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    expect(err.detail).to.include('regions.peers.0.secret');
    expect(err.detail).to.include('NOPE');
  });

  it('rejects duplicate peer names', function () {
    const peer = { name: 'us', url: 'https://us.example.com', secret: SECRET };
    const file = writeJson('dup-peers.json', { regions: { peers: [peer, peer] } });
    const err = catchAppError(() => loadConfig({ env: {}, file, cwd: emptyCwd }));
    expect(err.detail).to.include('unique');
  });

  it('rejects an unknown key in a file, naming it', function () {
    const file = writeJson('unknown.json', { region: 'eu', htp: { port: 1 } });
    const err = catchAppError(() => loadConfig({ env: {}, file, cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    expect(err.detail).to.include('htp');
    expect(err.detail).to.include(file);
  });

  it('rejects an unknown nested key in a file, naming its full path', function () {
    const file = writeJson('unknown-nested.json', { http: { prot: 1 } });
    const err = catchAppError(() => loadConfig({ env: {}, file, cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    expect(err.detail).to.include('http.prot');
  });

  it('rejects a file that is not valid JSON, naming the file', function () {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ "region": "eu", }');
    const err = catchAppError(() => loadConfig({ env: {}, file, cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    expect(err.exitCode).to.equal(78);
    expect(err.detail).to.include(file);
  });

  it('does not echo file content (possibly a secret) when the JSON is invalid', function () {
    const file = join(dir, 'unquoted-secret.json');
    // A realistic slip: the secret pasted without quotes.
    writeFileSync(file, `{ "secret": ${SECRET} }`);
    const err = catchAppError(() => loadConfig({ env: {}, file, cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    // Not even a fragment of the secret may reach the detail shown to operators and logs.
    expect(err.detail).not.to.include(SECRET.slice(0, 8));
  });

  it('rejects a file holding a JSON array', function () {
    const file = writeJson('array.json', [1, 2]);
    const err = catchAppError(() => loadConfig({ env: {}, file, cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    expect(err.detail).to.include(file);
  });

  it('rejects a missing explicit file with bad_config', function () {
    const err = catchAppError(() => loadConfig({ env: {}, file: join(dir, 'nope.json'), cwd: emptyCwd }));
    expect(err.code).to.equal('bad_config');
    expect(err.detail).to.include('nope.json');
  });

  it('returns a deeply frozen object', function () {
    const config = loadConfig({ env: {}, cwd: emptyCwd });
    expect(Object.isFrozen(config)).to.equal(true);
    expect(Object.isFrozen(config.http)).to.equal(true);
    expect(Object.isFrozen(config.tokens)).to.equal(true);
    // ESM modules are strict: writing to a frozen object throws.
    expect(() => {
      (config as { region: string }).region = 'changed';
    }).to.throw(TypeError);
    expect(() => {
      config.http.port = 1;
    }).to.throw(TypeError);
    expect(() => {
      config.tokens.accessTtl = 1;
    }).to.throw(TypeError);
    expect(config.region).to.equal('local');
    expect(config.http.port).to.equal(8080);
    expect(config.tokens.accessTtl).to.equal(900);
  });

  it('picks the file named by AUTHCTL_CONFIG (relative to cwd)', function () {
    writeJson('from-env-var.json', { region: 'ap-south' });
    const config = loadConfig({ env: { AUTHCTL_CONFIG: 'from-env-var.json' }, cwd: dir });
    expect(config.region).to.equal('ap-south');
  });

  it('an explicit file beats AUTHCTL_CONFIG', function () {
    writeJson('a.json', { region: 'from-a' });
    writeJson('b.json', { region: 'from-b' });
    const config = loadConfig({ env: { AUTHCTL_CONFIG: 'a.json' }, file: 'b.json', cwd: dir });
    expect(config.region).to.equal('from-b');
  });

  it('falls back to ./config/authctl.json when present', function () {
    mkdirSync(join(dir, 'config'));
    writeJson('config/authctl.json', { region: 'fallback' });
    expect(loadConfig({ env: {}, cwd: dir }).region).to.equal('fallback');
    expect(loadConfig({ env: {}, cwd: emptyCwd }).region).to.equal('local');
  });

  it('requireSecret throws bad_config without a secret and returns it otherwise', function () {
    const without = loadConfig({ env: {}, cwd: emptyCwd });
    const err = catchAppError(() => requireSecret(without));
    expect(err.code).to.equal('bad_config');
    expect(err.exitCode).to.equal(78);
    expect(err.detail).to.include('AUTHCTL_SECRET');

    const withSecret = loadConfig({ env: { AUTHCTL_SECRET: SECRET }, cwd: emptyCwd });
    expect(requireSecret(withSecret)).to.equal(SECRET);
  });
});
