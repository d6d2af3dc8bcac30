#!/usr/bin/env node
// The `authctl` CLI (built commands in dist/commands).
//
// The Node.js version is checked before anything else loads: static imports are evaluated before
// this body runs, so the only ones are the dependency-free check and Node's own modules, and
// oclif comes in by a dynamic import afterwards (an old Node would otherwise crash inside it). No
// top-level await, `?.` or `??` here either, so that Nodes too old to parse them still reach the
// check's message.
import { spawn } from 'child_process';
import process from 'process';
import { fileURLToPath } from 'url';
import { exitIfUnsupportedNode } from './check-node.js';

exitIfUnsupportedNode();

// `user import` and `user export` stream millions of rows through short-lived objects; V8 sizes
// the young generation of a machine with much memory at up to 3 × 64 MB, which is most of such a
// command's peak RSS. They run in a child Node with a 16 MB semi-space instead (283 → 201 MB for
// an export of 1,000,000 users, no slower; README "Import and export"), unless the caller chose a
// size. Node reads the flag only at start, hence the second process.
const SEMI_SPACE = '--max-semi-space-size';
const args = process.argv.slice(2);
const bulk = args[0] === 'user' && (args[1] === 'import' || args[1] === 'export');
const chosen = process.execArgv.concat((process.env.NODE_OPTIONS || '').split(/\s+/)).some((a) => a.indexOf(SEMI_SPACE) === 0);

if (bulk && !chosen) {
  const child = spawn(process.execPath, process.execArgv.concat([`${SEMI_SPACE}=16`, fileURLToPath(import.meta.url)], args), { stdio: 'inherit' });
  // Ctrl-C reaches the child with the rest of the terminal's process group; a signal sent to this
  // process alone (a supervisor's TERM) is passed on. Either way the child decides how to stop.
  process.on('SIGINT', () => {});
  for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code === null ? 1 : code);
  });
} else {
  import('@oclif/core').then(({ execute }) => execute({ dir: import.meta.url }));
}
