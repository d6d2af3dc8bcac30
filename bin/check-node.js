// Refuses a Node.js older than package.json's engines.node with one line on stderr, before the
// CLI loads anything (bin/run.js imports only this). `node bin/check-node.js` runs the same check,
// as the first step of `npm run dev` and `npm test`.
//
// Deliberately plain: no dependencies, no syntax newer than what Node 12 parses (no `?.`, no `??`,
// no top-level await), no `node:` import prefix, so an old Node gets this message and not a crash.
import { readFileSync, realpathSync } from 'fs';
import process from 'process';
import { URL, fileURLToPath } from 'url';

/** Exit code for "this Node.js is too old" (oclif's default error code, as in package.json). */
export const EXIT_NODE_TOO_OLD = 1;

/**
 * Test-only: a version to check in addition to the running one, so a test can make the check
 * refuse on a current Node. It can only make the check stricter, never let an old Node through.
 */
export const FAKE_VERSION_ENV = 'AUTHCTL_TEST_NODE_VERSION';

/** package.json's engines.node (e.g. ">=22.12"), or null if it cannot be read. */
export function requiredNodeRange() {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    return pkg && pkg.engines && typeof pkg.engines.node === 'string' ? pkg.engines.node : null;
  } catch {
    return null;
  }
}

/** "22.12" → [22, 12, 0]; "v20.19.0" → [20, 19, 0]; anything else → null. */
function parseVersion(text) {
  const m = /^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(String(text));
  return m ? [Number(m[1]), Number(m[2] || 0), Number(m[3] || 0)] : null;
}

/** The lowest version a ">=X.Y[.Z]" range allows, or null for any other form of range. */
export function minimumVersion(range) {
  const m = /^\s*>=\s*(v?\d+(?:\.\d+){0,2})\s*$/.exec(String(range));
  return m ? parseVersion(m[1]) : null;
}

/**
 * Why Node.js `version` (e.g. "20.19.0") cannot run authctl, as one line, or null if it can.
 * A range this check does not understand is not enforced (a test keeps package.json's parseable).
 */
export function nodeVersionProblem(version, range) {
  const min = minimumVersion(range);
  const found = parseVersion(version);
  if (!min || !found) return null;
  for (let i = 0; i < 3; i++) {
    if (found[i] > min[i]) return null;
    if (found[i] < min[i]) {
      const shown = String(version).replace(/^v?/, 'v') + (process.execPath ? ` (${process.execPath})` : '');
      const howTo = 'Install Node 24, e.g. `nvm install 24`, from https://nodejs.org/en/download, or with your package manager.';
      return `authctl needs Node.js ${String(range).trim()} (Node 24 LTS recommended), but found Node.js ${shown}. ${howTo}`;
    }
  }
  return null;
}

/** Prints the problem and exits if the running Node.js (or the test's fake version) is too old. */
export function exitIfUnsupportedNode() {
  const range = requiredNodeRange();
  const fake = process.env[FAKE_VERSION_ENV];
  const problem = nodeVersionProblem(process.versions.node, range) || (fake ? nodeVersionProblem(fake, range) : null);
  if (problem) {
    process.stderr.write(problem + '\n');
    process.exit(EXIT_NODE_TOO_OLD);
  }
}

/** Whether this file is the script Node was started with (through a symlink too), not an import. */
function isMain() {
  try {
    return realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

// Run directly (`node bin/check-node.js`): check, and exit 0 quietly when this Node is fine.
if (isMain()) exitIfUnsupportedNode();
