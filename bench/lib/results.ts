/** Where runs write their JSON: bench/results/<prefix><ISO time>.json. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT } from './env.js';

export const RESULTS_DIR = join(ROOT, 'bench', 'results');

/** `<dir>/<prefix><at>.json`, `at` an ISO time with its colons and dots made dashes. */
export function resultPath(dir: string, prefix: string, at: string): string {
  return join(dir, `${prefix}${at.replace(/[:.]/g, '-')}.json`);
}

/** Writes `data` as indented JSON (creating the folder); returns `file`. */
export function writeJson(file: string, data: unknown): string {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/**
 * The commit, and the files of src/ and commands/ changed on top of it: what was measured. A copy
 * of the build run outside the repository names its commit in AUTHCTL_BENCH_REVISION.
 */
export function revision(): { commit: string; uncommitted: string[] } {
  if (process.env.AUTHCTL_BENCH_REVISION) return { commit: process.env.AUTHCTL_BENCH_REVISION, uncommitted: [] };
  const git = (args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const changed = git(['status', '--porcelain', '--', 'src', 'commands']);
    return { commit: git(['rev-parse', '--short', 'HEAD']), uncommitted: changed ? changed.split('\n').map((l) => l.slice(3)) : [] };
  } catch {
    return { commit: 'unknown', uncommitted: [] };
  }
}
