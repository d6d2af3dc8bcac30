import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Config, type Command } from '@oclif/core';

/** Flags every command has, documented once above the table. */
const GLOBAL_FLAGS = new Set(['config', 'json', 'help']);
export const CLI_START = '<!-- cli-reference:start (generated from the commands: npm run readme:cli) -->';
export const CLI_END = '<!-- cli-reference:end -->';

type Flag = Command.Loadable['flags'][string];

function flagUsage(name: string, flag: Flag): string {
  let usage: string;
  if (flag.type === 'boolean') usage = flag.allowNo ? `--[no-]${name}` : `--${name}`;
  else usage = `--${name} <${(typeof flag.helpValue === 'string' ? flag.helpValue : undefined) ?? 'value'}>`;
  if (flag.type === 'option' && flag.multiple) usage += '…';
  return flag.required ? usage : `[${usage}]`;
}

/** `authctl user list [--limit <value>] …`: the command, its arguments and its own flags. */
export function commandUsage(command: Command.Loadable, bin = 'authctl'): string {
  const args = Object.entries(command.args).map(([name, arg]) => (arg.required ? `<${name}>` : `[${name}]`));
  const flags = Object.entries(command.flags)
    .filter(([name, flag]) => !GLOBAL_FLAGS.has(name) && !flag.hidden)
    .map(([name, flag]) => flagUsage(name, flag));
  return [bin, ...command.id.split(':'), ...args, ...flags].join(' ');
}

/** The visible commands, in id order. */
export function visibleCommands(config: Config): Command.Loadable[] {
  return config.commands.filter((c) => !c.hidden).sort((a, b) => a.id.localeCompare(b.id));
}

/** README's CLI table: one row per command, with every argument and flag, and its summary. */
export function renderCliReference(config: Config): string {
  const escape = (text: string) => text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
  const rows = visibleCommands(config).map(
    (c) => `| \`${escape(commandUsage(c, config.bin))}\` | ${escape(c.summary ?? c.description?.split('\n')[0] ?? '')} |`,
  );
  return ['| command | does |', '|---|---|', ...rows].join('\n');
}

/** Replaces the generated block of `readme` (between the markers) with `reference`. */
export function withCliReference(readme: string, reference: string): string {
  const start = readme.indexOf(CLI_START);
  const end = readme.indexOf(CLI_END);
  if (start === -1 || end < start) throw new Error(`README.md lacks the markers ${CLI_START} … ${CLI_END}`);
  return `${readme.slice(0, start + CLI_START.length)}\n${reference}\n${readme.slice(end)}`;
}

/** `npm run readme:cli`: rewrites README's CLI table from the built commands. */
async function main(): Promise<void> {
  // This file runs as dist/scripts/readme-cli.js: the repository is two folders up.
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const config = await Config.load(root);
  const file = join(root, 'README.md');
  writeFileSync(file, withCliReference(readFileSync(file, 'utf8'), renderCliReference(config)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
