import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { cliEnv, describeRun, expectNoStackTrace, packageVersion, repoRoot, runCli, type CliResult } from './run-cli.js';

/** bin/check-node.js: plain JS outside the TypeScript build, so it is loaded from the repository. */
interface CheckNode {
  EXIT_NODE_TOO_OLD: number;
  FAKE_VERSION_ENV: string;
  requiredNodeRange(): string | null;
  minimumVersion(range: string | null): [number, number, number] | null;
  nodeVersionProblem(version: string, range: string | null): string | null;
}

/** The machine's own Node.js (Debian's, older than authctl needs), when there is one. */
const SYSTEM_NODE = '/usr/bin/node';

const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string }; scripts: Record<string, string> };
const range = packageJson.engines.node;

/** `node bin/check-node.js` with `node`, as `npm run dev` and `npm test` run it first. */
function runCheckScript(node: string, env: Record<string, string | undefined> = {}): CliResult {
  const result = spawnSync(node, ['bin/check-node.js'], { cwd: repoRoot, env: cliEnv({ env }), encoding: 'utf8', timeout: 30_000 });
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/** The refusal: exit 1, nothing on stdout, and on stderr one line saying what is needed, what was found and how to get it. */
function expectRefusal(result: CliResult, foundVersion: string): void {
  const why = describeRun(result);
  expect(result.signal, why).to.equal(null);
  expect(result.code, why).to.equal(1);
  expect(result.stdout, why).to.equal('');
  expect(result.stderr, why).to.match(/^[^\n]+\n$/);
  expect(result.stderr, why).to.include(`Node.js ${range}`);
  expect(result.stderr, why).to.include('Node 24 LTS recommended');
  expect(result.stderr, why).to.include(`found Node.js v${foundVersion}`);
  expect(result.stderr, why).to.include('nvm install 24');
  expect(result.stderr, why).not.to.match(/Segmentation fault|Warning:|SyntaxError/);
  expectNoStackTrace(result.stderr);
}

describe('Node.js version check (bin/check-node.js, before the CLI loads anything)', function () {
  let check: CheckNode;

  before(async function () {
    check = (await import(pathToFileURL(join(repoRoot, 'bin/check-node.js')).href)) as CheckNode;
  });

  describe('the check itself', function () {
    it("reads package.json's engines.node, a >= range it understands", function () {
      expect(check.requiredNodeRange()).to.equal(range);
      expect(check.minimumVersion(range), `engines.node "${range}" must stay of the form >=X.Y[.Z]`).to.deep.equal([22, 12, 0]);
    });

    it('refuses 20.19.0 and 22.11.0 with one line: what is needed, what was found, how to get Node 24', function () {
      for (const version of ['20.19.0', '22.11.0']) {
        const problem = check.nodeVersionProblem(version, range);
        expect(problem, version).to.be.a('string');
        expect(problem).not.to.include('\n');
        expect(problem).to.include('Node.js >=22.12 (Node 24 LTS recommended)');
        expect(problem).to.include(`found Node.js v${version}`);
        expect(problem).to.include('nvm install 24');
        expect(problem).to.include('https://nodejs.org/en/download');
      }
    });

    it('accepts 22.12.0 and 24.1.0 (and the Node running this test)', function () {
      for (const version of ['22.12.0', '24.1.0', 'v24.1.0', process.versions.node]) {
        expect(check.nodeVersionProblem(version, range), version).to.equal(null);
      }
    });

    it('compares versions by number, not as text', function () {
      expect(check.nodeVersionProblem('22.9.0', '>=22.12')).to.be.a('string');
      expect(check.nodeVersionProblem('9.0.0', '>=22.12')).to.be.a('string');
      expect(check.nodeVersionProblem('100.0.0', '>=22.12')).to.equal(null);
      expect(check.nodeVersionProblem('22.12.0', '>=22.12.1')).to.be.a('string');
      expect(check.nodeVersionProblem('23.0.0', '>=22.12.1')).to.equal(null);
    });
  });

  describe('end to end (spawned)', function () {
    it('bin/run.js on a faked old Node exits 1 with the one-line message instead of starting the CLI', async function () {
      const result = await runCli(['--version'], { env: { [check.FAKE_VERSION_ENV]: '20.19.0' } });
      expectRefusal(result, '20.19.0');
      expect(result.stdout).not.to.include(packageVersion);
    });

    it(`bin/run.js on the machine's real old Node (${SYSTEM_NODE}) exits 1 with the one-line message, no crash`, async function () {
      if (!existsSync(SYSTEM_NODE)) this.skip();
      const version = spawnSync(SYSTEM_NODE, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
      if (check.nodeVersionProblem(version, range) === null) this.skip(); // not older than authctl needs
      expectRefusal(await runCli(['--version'], { node: SYSTEM_NODE }), version);
      // `npm run dev` and `npm test` run the check first, so they refuse the same way before tsc or mocha.
      expectRefusal(runCheckScript(SYSTEM_NODE), version);
    });

    it('npm run dev and npm test start with the check', function () {
      expect(packageJson.scripts.dev).to.match(/^node bin\/check-node\.js && /);
      expect(packageJson.scripts.test).to.match(/^node bin\/check-node\.js && /);
    });

    it('`node bin/check-node.js` is silent and exits 0 on this Node, and refuses a faked old one', function () {
      const ok = runCheckScript(process.execPath);
      expect(ok.code, describeRun(ok)).to.equal(0);
      expect(ok.stdout + ok.stderr).to.equal('');
      expectRefusal(runCheckScript(process.execPath, { [check.FAKE_VERSION_ENV]: '22.11.0' }), '22.11.0');
    });

    it('a normal run still works: bin/run.js --version exits 0 on this Node', async function () {
      const result = await runCli(['--version']);
      expect(result.code, describeRun(result)).to.equal(0);
      expect(result.stdout).to.include(`authctl/${packageVersion}`);
      expect(result.stdout).to.include(`node-v${process.versions.node}`);
    });
  });
});
