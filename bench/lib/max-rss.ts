/**
 * Preloaded into a child the benches measure (`node --import …/max-rss.js bin/run.js …`): writes
 * the process's peak resident set size in bytes (`getrusage`'s ru_maxrss) to the file named by
 * AUTHCTL_BENCH_MAX_RSS_FILE when it exits, however it exits. Polling /proc from outside would miss
 * the last moments; this is the kernel's own high-water mark, read at the very end.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.env.AUTHCTL_BENCH_MAX_RSS_FILE;
// A command that runs in a child Node (bin/run.js: `user import` and `user export`) has the hook in
// both processes; the child exits first, and the parent adds its own peak to the child's: the
// figure is the pair's, as both were resident at once.
if (file) process.on('exit', () => writeFileSync(file, String(childPeak(file) + process.resourceUsage().maxRSS * 1024)));

function childPeak(path: string): number {
  try {
    return Number(readFileSync(path, 'utf8')) || 0;
  } catch {
    return 0;
  }
}
