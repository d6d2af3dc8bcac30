/**
 * Preloaded into a child the benches measure (`node --import …/max-rss.js bin/run.js …`): writes
 * the process's peak resident set size in bytes (`getrusage`'s ru_maxrss) to the file named by
 * AUTHCTL_BENCH_MAX_RSS_FILE when it exits, however it exits. Polling /proc from outside would miss
 * the last moments; this is the kernel's own high-water mark, read at the very end.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.AUTHCTL_BENCH_MAX_RSS_FILE;
if (file) process.on('exit', () => writeFileSync(file, String(process.resourceUsage().maxRSS * 1024)));
