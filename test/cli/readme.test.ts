import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Config } from '@oclif/core';
import { expect } from 'chai';
import { CLI_END, CLI_START, renderCliReference, visibleCommands } from '../../scripts/readme-cli.js';
import { describeRun, repoRoot, runCli } from './run-cli.js';

/** README's CLI section is checked against the commands and their `--help`, so it cannot drift. */
describe("README's CLI section", function () {
  this.timeout(120_000);
  let config: Config;
  let block: string;

  before(async function () {
    config = await Config.load(repoRoot);
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const start = readme.indexOf(CLI_START);
    const end = readme.indexOf(CLI_END);
    expect(start, 'README.md has the generated CLI block').to.be.greaterThan(-1);
    block = readme.slice(start + CLI_START.length, end).trim();
  });

  it('is exactly what the commands generate (run `npm run readme:cli` after changing a command)', function () {
    expect(block).to.equal(renderCliReference(config));
  });

  it("lists every command and every flag that the command's --help shows; every own command has a description and examples", async function () {
    const rows = new Map(
      block
        .split('\n')
        .map((line) => /^\| `authctl ([a-z-]+(?: [a-z][a-z-]*)?)\b([^`]*)`/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1]!.replace(/ (?=[a-z])/, ':'), m[0]]),
    );
    const commands = visibleCommands(config);
    expect(commands.length).to.be.greaterThan(25);
    const queue = [...commands];
    const failures: string[] = [];
    let ownChecked = 0;
    const worker = async () => {
      for (let command = queue.shift(); command; command = queue.shift()) {
        const result = await runCli([...command.id.split(':'), '--help']);
        if (result.code !== 0) {
          failures.push(`${command.id} --help: ${describeRun(result)}`);
          continue;
        }
        const row = rows.get(command.id);
        if (!row) {
          failures.push(`README lists no row for authctl ${command.id.replace(/:/g, ' ')}`);
          continue;
        }
        const flagSection = /^(?:FLAGS|[A-Z ]+FLAGS)\n([\s\S]*?)(?=^\S|$(?![\s\S]))/gm;
        const shown = new Set<string>();
        for (const section of result.stdout.matchAll(flagSection)) {
          for (const m of section[1]!.matchAll(/^\s+(?:-\w, )?--(?:\[no-\])?([a-z][a-z0-9-]*)/gm)) shown.add(m[1]!);
        }
        for (const flag of shown) {
          if (['config', 'json', 'help'].includes(flag)) continue;
          if (!row.includes(`--${flag}`) && !row.includes(`--[no-]${flag}`)) failures.push(`README's row for ${command.id} lacks --${flag}`);
        }
        if (command.pluginName === 'authctl') {
          ownChecked++;
          for (const section of ['USAGE', 'DESCRIPTION', 'EXAMPLES']) {
            if (!new RegExp(`^${section}$`, 'm').test(result.stdout)) failures.push(`${command.id} --help has no ${section}`);
          }
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    expect(failures).to.deep.equal([]);
    expect(ownChecked)
      .to.equal(commands.filter((c) => c.pluginName === 'authctl').length)
      .and.be.greaterThan(25);
  });
});
