import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Config, Help } from '@oclif/core';
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
        // Topics nest (`user mfa list`): every leading lowercase word is part of the id.
        .map((line) => /^\| `authctl ([a-z-]+(?: [a-z][a-z-]*)*)\b([^`]*)`/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1]!.replace(/ (?=[a-z])/g, ':'), m[0]]),
    );
    const commands = visibleCommands(config);
    expect(commands.length).to.be.greaterThan(25);
    const failures: string[] = [];
    let ownChecked = 0;
    for (const command of commands) {
      const id = command.id;
      // oclif's own help renderer, in-process: what `authctl <command> --help` prints (the test
      // below holds the two equal), without spawning a CLI per command.
      const result = { stdout: await helpText(id) };
      const row = rows.get(id);
      if (!row) {
        failures.push(`README lists no row for authctl ${id.replace(/:/g, ' ')}`);
        continue;
      }
      const flagSection = /^(?:FLAGS|[A-Z ]+FLAGS)\n([\s\S]*?)(?=^\S|$(?![\s\S]))/gm;
      const shown = new Set<string>();
      for (const section of result.stdout.matchAll(flagSection)) {
        for (const m of section[1]!.matchAll(/^\s+(?:-\w, )?--(?:\[no-\])?([a-z][a-z0-9-]*)/gm)) shown.add(m[1]!);
      }
      for (const flag of shown) {
        if (['config', 'json', 'help'].includes(flag)) continue;
        if (!row.includes(`--${flag}`) && !row.includes(`--[no-]${flag}`)) failures.push(`README's row for ${id} lacks --${flag}`);
      }
      if (command.pluginName === 'authctl') {
        ownChecked++;
        for (const section of ['USAGE', 'DESCRIPTION', 'EXAMPLES']) {
          if (!new RegExp(`^${section}$`, 'm').test(result.stdout)) failures.push(`${id} --help has no ${section}`);
        }
      }
    }
    expect(failures).to.deep.equal([]);
    expect(ownChecked)
      .to.equal(commands.filter((c) => c.pluginName === 'authctl').length)
      .and.be.greaterThan(25);
  });

  it('renders help in-process exactly as the spawned CLI prints it for --help', async function () {
    for (const id of ['user:create', 'serve', 'migrate']) {
      const spawned = await runCli([...id.split(':'), '--help']);
      expect(spawned.code, describeRun(spawned)).to.equal(0);
      expect((await helpText(id)).trim()).to.equal(spawned.stdout.trim());
    }
  });
});

/**
 * The text oclif's help class prints for `authctl <id> --help`, captured instead of written. Each
 * call loads its own Config: the help class rewrites the ids of the commands it lists.
 */
async function helpText(id: string): Promise<string> {
  const lines: string[] = [];
  class Capture extends Help {
    protected override log(...args: string[]): void {
      lines.push(args.join(' '));
    }
  }
  // showHelp, like `--help` does: a command that is also a topic lists its subcommands too.
  await new Capture(await Config.load(repoRoot)).showHelp(id.split(':'));
  return lines.join('\n');
}
