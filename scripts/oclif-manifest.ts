/**
 * Writes oclif.manifest.json (`npm run build` runs it after the compiler): every command's id,
 * summary, flags and arguments, read once here from the built commands.
 *
 * Without a manifest, oclif imports every command module at each start to learn what commands
 * there are — and with them everything they import (the whole server: Koa, pg-boss, the mailer,
 * the OpenID client…) — even for `authctl --version`. With it, a run imports the one command it
 * runs (docs/design-decisions.md, "The CLI loads only the command it runs"). The manifest is
 * generated, never committed: a stale one would hide a new command, so the build removes it first.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Plugin } from '@oclif/core';

/** The repository (this file is dist/scripts/oclif-manifest.js once built). */
const root = fileURLToPath(new URL('../../', import.meta.url));

// What `oclif manifest` does: load the root plugin from its commands, ignoring any manifest, and
// fail on a command that cannot be loaded rather than leave it out.
const plugin = new Plugin({ root, type: 'core', isRoot: true, ignoreManifest: true, errorOnManifestCreate: true, respectNoCacheDefault: true });
await plugin.load();
const file = join(root, 'oclif.manifest.json');
writeFileSync(file, `${JSON.stringify(plugin.manifest, null, 2)}\n`);
console.log(`${file}: ${Object.keys(plugin.manifest.commands).length} commands`);
