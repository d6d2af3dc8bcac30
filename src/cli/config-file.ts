import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { readConfigFile, resolveConfigFile } from '../config/load.js';
import { configSchema } from '../config/schema.js';
import { AppError } from '../platform/errors.js';

export type ConfigFileValues = Record<string, unknown>;

export interface PeerEntry {
  name: string;
  url: string;
  secret: string;
}

/** A strong random secret: 48 bytes, base64url (64 characters). */
export function generateSecret(): string {
  return randomBytes(48).toString('base64url');
}

/** The environment variable a peer's shared secret is read from by default: AUTHCTL_PEER_<NAME>_SECRET. */
export function peerSecretEnv(name: string): string {
  return `AUTHCTL_PEER_${name.toUpperCase().replace(/-/g, '_')}_SECRET`;
}

export function envReference(name: string): string {
  return `env:${name}`;
}

/** The config file a config-editing command works on: --config, AUTHCTL_CONFIG, ./config/authctl.json. */
export function locateConfigFile(flag: string | undefined): string {
  const file = resolveConfigFile({ file: flag });
  if (!file) {
    throw new AppError('bad_config', 'no config file: pass --config <file>, set AUTHCTL_CONFIG, or create one with `authctl init`');
  }
  if (!existsSync(file)) throw new AppError('bad_config', `config file ${file} does not exist: create it with \`authctl init --output ${file}\``);
  return file;
}

export { readConfigFile };

/** The peers listed in a config file (as written: secrets may be env references). */
export function peersOf(values: ConfigFileValues): PeerEntry[] {
  const regions = values.regions as { peers?: PeerEntry[] } | undefined;
  return Array.isArray(regions?.peers) ? regions.peers : [];
}

/** Sets `regions.peers`, checking the result against the config schema (secrets as written are not checked). */
export function withPeers(values: ConfigFileValues, peers: PeerEntry[]): ConfigFileValues {
  const check = configSchema.safeParse({ regions: { peers: peers.map((p) => ({ ...p, secret: 'x'.repeat(32) })) } });
  if (!check.success) {
    const problems = check.error.issues.map((issue) => `${issue.path.slice(2).join('.') || 'peers'}: ${issue.message}`);
    throw new AppError('invalid_request', `invalid peer: ${problems.join('; ')}`);
  }
  const regions = { ...((values.regions as Record<string, unknown> | undefined) ?? {}), peers };
  return { ...values, regions };
}

/** Writes the file whole (temporary file, then rename): a crash never leaves half a config. */
export function writeConfigFile(file: string, values: ConfigFileValues): void {
  mkdirSync(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  // Keep an existing file's mode (it may hold inline secrets and be 600); new files are 644.
  const mode = existsSync(file) ? statSync(file).mode & 0o777 : 0o644;
  writeFileSync(temporary, `${JSON.stringify(values, null, 2)}\n`, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, file);
}

/** A path as the admin would type it from here. */
export function displayPath(file: string, cwd = process.cwd()): string {
  const rel = relative(cwd, file);
  return rel && !rel.startsWith('..') ? rel : file;
}
