import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { confirm } from '@inquirer/prompts';
import { loadConfig } from '../config/load.js';
import { buildContainer } from '../container.js';
import { AppError } from '../platform/errors.js';
import { displayPath, writeConfigFile, type ConfigFileValues } from './config-file.js';
import type { ConnectionChecks } from './connections.js';
import {
  askInitAnswers,
  buildConfigFile,
  checkPasskeyOrigin,
  checkRedirectUrl,
  checkRpId,
  checkValue,
  defaultMailFrom,
  FIELDS,
  INIT_DEFAULTS,
  passkeySettings,
  type InitAnswers,
  type PromptIo,
} from './init-wizard.js';
import { migrate, shutdown } from '../runtime.js';

export interface InitOptions {
  /** Ask with prompts (a terminal); otherwise everything comes from `given` (`--yes`). */
  interactive: boolean;
  given: Partial<InitAnswers>;
  /** Default: config/<region>.json under `cwd`. */
  output?: string | undefined;
  /** Also write the secrets as `export` lines to this file (mode 600). */
  secretsFile?: string | undefined;
  force: boolean;
  /** Run migrations; undefined: ask (interactive) or no. */
  migrate?: boolean | undefined;
  /** Try the database, Redis and SMTP before writing (non-interactive; the wizard always does). */
  check: boolean;
  checks: ConnectionChecks;
  cwd?: string;
  /** Environment the written config is loaded with to migrate (secrets added). */
  env?: NodeJS.ProcessEnv;
}

export interface InitResult {
  file: string;
  region: string;
  config: ConfigFileValues;
  /** Environment variables the config refers to, with the values generated here (shown once;
   * empty when they went to `secretsFile`). */
  secrets: Record<string, string>;
  /** Every environment variable the config refers to for a secret. */
  secretNames: string[];
  /** Variables whose value the admin entered (not repeated in `secrets`). */
  entered: string[];
  secretsFile: string | null;
  migrated: boolean;
}

/** Flag values, checked as the wizard checks its answers; a bad one is a usage error naming the flag. */
function answersFromFlags(given: Partial<InitAnswers>): InitAnswers {
  const answers: InitAnswers = {
    region: given.region ?? INIT_DEFAULTS.region,
    publicUrl: given.publicUrl ?? INIT_DEFAULTS.publicUrl,
    databaseUrl: given.databaseUrl ?? INIT_DEFAULTS.databaseUrl,
    redisUrl: given.redisUrl ?? '',
    accessTtl: given.accessTtl ?? INIT_DEFAULTS.accessTtl,
    refreshTtl: given.refreshTtl ?? INIT_DEFAULTS.refreshTtl,
    peers: given.peers ?? [],
    ...(given.smtpUrl ? { smtpUrl: given.smtpUrl, mailFrom: given.mailFrom ?? defaultMailFrom(given.publicUrl ?? INIT_DEFAULTS.publicUrl) } : {}),
    ...(given.google ? { google: given.google, redirectUrls: given.redirectUrls ?? [] } : {}),
    ...(given.passkeys ? { passkeys: given.passkeys } : {}),
  };
  if (given.mailFrom && !given.smtpUrl) throw new AppError('invalid_request', '--mail-from: needs --smtp-url (without it, mail stays off)');
  if (given.redirectUrls?.length && !given.google) throw new AppError('invalid_request', '--redirect-url: needs a provider (--google-client-id)');
  if (given.google && !given.redirectUrls?.length) {
    throw new AppError('invalid_request', '--google-client-id: needs --redirect-url (where sign-in may send the browser back to your app)');
  }
  for (const url of answers.redirectUrls ?? []) {
    const ok = checkRedirectUrl(url);
    if (ok !== true) throw new AppError('invalid_request', `--redirect-url ${url}: ${ok}`);
  }
  if (answers.passkeys) checkPasskeyFlags(passkeySettings(answers.publicUrl, answers.passkeys));
  const checksByFlag: Array<[string, (v: unknown) => Record<string, unknown>, unknown]> = [
    ['--region', FIELDS.region, answers.region],
    ['--public-url', FIELDS.publicUrl, answers.publicUrl],
    ['--database-url', FIELDS.databaseUrl, answers.databaseUrl],
    ['--redis-url', FIELDS.redisUrl, answers.redisUrl || undefined],
    ['--access-ttl', FIELDS.accessTtl, answers.accessTtl],
    ['--refresh-ttl', FIELDS.refreshTtl, answers.refreshTtl],
    ...(answers.smtpUrl
      ? ([
          ['--smtp-url', FIELDS.smtpUrl, answers.smtpUrl],
          ['--mail-from', FIELDS.mailFrom, answers.mailFrom],
        ] as Array<[string, (v: unknown) => Record<string, unknown>, unknown]>)
      : []),
    ...(answers.google
      ? ([['--google-client-id', FIELDS.googleClientId, answers.google.clientId]] as Array<[string, (v: unknown) => Record<string, unknown>, unknown]>)
      : []),
    ...answers.peers.map((p): [string, (v: unknown) => Record<string, unknown>, unknown] => ['--peer', FIELDS.peer, { ...p, secret: 'x'.repeat(32) }]),
  ];
  for (const [flag, field, value] of checksByFlag) {
    const ok = checkValue(field, value);
    if (ok !== true) throw new AppError('invalid_request', `${flag}: ${ok}`);
  }
  if (answers.peers.some((p) => p.name === answers.region)) throw new AppError('invalid_request', '--peer: a peer must be another region');
  return answers;
}

/** --webauthn-rp-id, --webauthn-rp-name and --webauthn-origin (given or defaulted), checked as the wizard checks them. */
function checkPasskeyFlags(settings: ReturnType<typeof passkeySettings>): void {
  const rpId = checkRpId(settings.rpId);
  if (rpId !== true) throw new AppError('invalid_request', `--webauthn-rp-id ${settings.rpId}: ${rpId}`);
  const rpName = settings.rpName === undefined ? true : checkValue(FIELDS.webauthnRpName, settings.rpName);
  if (rpName !== true) throw new AppError('invalid_request', `--webauthn-rp-name: ${rpName}`);
  for (const origin of settings.origins) {
    const ok = checkPasskeyOrigin(origin, settings.rpId);
    if (ok !== true) throw new AppError('invalid_request', `--webauthn-origin ${origin}: ${ok}`);
  }
}

/** Tries both connections (creating a missing database, as the wizard offers to); unavailable when one fails. */
async function checkConnections(answers: InitAnswers, checks: ConnectionChecks): Promise<void> {
  let database = await checks.database(answers.databaseUrl);
  if (!database.ok && database.missingDatabase) {
    await checks.createDatabase(answers.databaseUrl);
    database = await checks.database(answers.databaseUrl);
  }
  if (!database.ok)
    throw new AppError('unavailable', `cannot use the PostgreSQL at --database-url: ${database.reason} (or pass --no-check to write the file anyway)`);
  if (answers.redisUrl) {
    const redis = await checks.redis(answers.redisUrl);
    if (!redis.ok) throw new AppError('unavailable', `cannot reach the Redis at --redis-url: ${redis.reason} (or pass --no-check to write the file anyway)`);
  }
  if (answers.smtpUrl) {
    const smtp = await checks.smtp(answers.smtpUrl);
    if (!smtp.ok) throw new AppError('unavailable', `cannot use the SMTP server at --smtp-url: ${smtp.reason} (or pass --no-check to write the file anyway)`);
  }
}

function refuseOverwrite(file: string, force: boolean): void {
  if (!force && existsSync(file)) {
    throw new AppError('conflict', `${displayPath(file)} already exists: pass --force to overwrite it, or --output to write elsewhere`);
  }
}

/** Quotes a value for a POSIX shell `export` line. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * `authctl init`: the answers (prompts or flags), the config file written with its secrets as
 * env references, optionally an secrets file, optionally the migrations run against the new config.
 */
export async function runInit(options: InitOptions, io: PromptIo = {}): Promise<InitResult> {
  const cwd = options.cwd ?? process.cwd();
  const outputFor = (region: string) => resolve(cwd, options.output ?? `config/${region}.json`);
  if (options.output) refuseOverwrite(outputFor(''), options.force);

  const answers = options.interactive
    ? await askInitAnswers(options.given, options.checks, io, (region) => refuseOverwrite(outputFor(region), options.force))
    : answersFromFlags(options.given);
  if (!options.interactive && options.check) await checkConnections(answers, options.checks);

  const file = outputFor(answers.region);
  refuseOverwrite(file, options.force);
  const secretsFile = options.secretsFile ? resolve(cwd, options.secretsFile) : null;
  if (secretsFile) refuseOverwrite(secretsFile, options.force);

  const { values, secrets, entered } = buildConfigFile(answers);
  writeConfigFile(file, values);
  if (secretsFile) {
    const lines = Object.entries(secrets).map(([name, value]) => `export ${name}=${shellQuote(value)}`);
    // A new file, then rename: an overwritten file (--force) must not keep a wider mode than 600.
    const temporary = `${secretsFile}.${process.pid}.tmp`;
    writeFileSync(temporary, `# Secrets for ${displayPath(file, cwd)} (written by authctl init). Keep this file private.\n${lines.join('\n')}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
    renameSync(temporary, secretsFile);
  }

  const runMigrations = options.migrate ?? (options.interactive ? await confirm({ message: 'Run the database migrations now?', default: true }, io) : false);
  if (runMigrations) {
    // Exactly the file just written: AUTHCTL_* variables of the shell (another region's, say) must
    // not redirect the migration to a database the admin did not name here.
    const env = Object.fromEntries(Object.entries(options.env ?? process.env).filter(([name]) => !name.startsWith('AUTHCTL_')));
    const config = loadConfig({ file, env: { ...env, ...secrets }, cwd, overrides: { log: { level: 'warn' } } });
    const container = buildContainer(config, { logStream: 'stderr' });
    try {
      await migrate(container);
    } finally {
      await shutdown(container);
    }
  }
  const shown = Object.fromEntries(Object.entries(secrets).filter(([name]) => !entered.includes(name)));
  // Secrets written to --secrets-file are not printed as well, not even with --json.
  return {
    file,
    region: answers.region,
    config: values,
    secrets: secretsFile ? {} : shown,
    secretNames: Object.keys(secrets),
    entered,
    secretsFile,
    migrated: runMigrations,
  };
}
