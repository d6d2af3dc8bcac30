import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { z } from 'zod';
import { AppError } from '../platform/errors.js';
import { checkedConfigSchema, type Config, type ConfigInput } from './schema.js';

/** Environment variables (README.md#configuration) and where each lands in the config, with its type. */
const ENV_MAP: Record<string, { path: string[]; type: 'string' | 'int' | 'bool' | 'list' }> = {
  AUTHCTL_REGION: { path: ['region'], type: 'string' },
  AUTHCTL_PUBLIC_URL: { path: ['publicUrl'], type: 'string' },
  AUTHCTL_HOST: { path: ['http', 'host'], type: 'string' },
  AUTHCTL_PORT: { path: ['http', 'port'], type: 'int' },
  AUTHCTL_PROCESSES: { path: ['http', 'processes'], type: 'int' },
  AUTHCTL_BODY_LIMIT: { path: ['http', 'bodyLimit'], type: 'int' },
  AUTHCTL_METRICS_PORT: { path: ['http', 'metricsPort'], type: 'int' },
  AUTHCTL_BENCH_ROUTES: { path: ['http', 'benchRoutes'], type: 'bool' },
  AUTHCTL_DOCS: { path: ['http', 'docs'], type: 'bool' },
  AUTHCTL_DATABASE_URL: { path: ['database', 'url'], type: 'string' },
  AUTHCTL_DATABASE_READ_URL: { path: ['database', 'readUrl'], type: 'string' },
  AUTHCTL_DATABASE_POOLER: { path: ['database', 'pooler'], type: 'string' },
  AUTHCTL_DATABASE_POOL_MAX: { path: ['database', 'poolMax'], type: 'int' },
  AUTHCTL_CACHE: { path: ['cache', 'driver'], type: 'string' },
  AUTHCTL_REDIS_URL: { path: ['cache', 'redisUrl'], type: 'string' },
  AUTHCTL_REDIS_CLUSTER: { path: ['cache', 'cluster'], type: 'bool' },
  AUTHCTL_CACHE_PREFIX: { path: ['cache', 'keyPrefix'], type: 'string' },
  AUTHCTL_ISSUER: { path: ['tokens', 'issuer'], type: 'string' },
  AUTHCTL_AUDIENCE: { path: ['tokens', 'audience'], type: 'string' },
  AUTHCTL_TOKEN_ALG: { path: ['tokens', 'alg'], type: 'string' },
  AUTHCTL_ACCESS_TTL: { path: ['tokens', 'accessTtl'], type: 'int' },
  AUTHCTL_REFRESH_TTL: { path: ['tokens', 'refreshTtl'], type: 'int' },
  AUTHCTL_REFRESH_GRACE: { path: ['tokens', 'refreshGrace'], type: 'int' },
  AUTHCTL_KEY_ACTIVATION_DELAY: { path: ['keys', 'activationDelay'], type: 'int' },
  AUTHCTL_SECRET: { path: ['secret'], type: 'string' },
  AUTHCTL_PREVIOUS_SECRET: { path: ['previousSecret'], type: 'string' },
  AUTHCTL_HASH_MEMORY_COST: { path: ['hash', 'memoryCost'], type: 'int' },
  AUTHCTL_HASH_TIME_COST: { path: ['hash', 'timeCost'], type: 'int' },
  AUTHCTL_HASH_PARALLELISM: { path: ['hash', 'parallelism'], type: 'int' },
  AUTHCTL_LOG_LEVEL: { path: ['log', 'level'], type: 'string' },
  AUTHCTL_TRUST_PROXY: { path: ['http', 'trustProxy'], type: 'bool' },
  AUTHCTL_PROXY_HOPS: { path: ['http', 'proxyHops'], type: 'int' },
  AUTHCTL_CORS_ORIGINS: { path: ['http', 'corsOrigins'], type: 'list' },
  AUTHCTL_RATE_LIMIT: { path: ['rateLimit', 'enabled'], type: 'bool' },
  AUTHCTL_RATE_LIMIT_MAX_FAILURES: { path: ['rateLimit', 'maxFailures'], type: 'int' },
  AUTHCTL_RATE_LIMIT_IP_FAILURES: { path: ['rateLimit', 'ipFailures'], type: 'int' },
  AUTHCTL_RATE_LIMIT_REGISTER_PER_IP: { path: ['rateLimit', 'registerPerIp'], type: 'int' },
  AUTHCTL_RATE_LIMIT_INTROSPECT_PER_CLIENT: { path: ['rateLimit', 'introspectPerClient'], type: 'int' },
  AUTHCTL_MAIL_TRANSPORT: { path: ['mail', 'transport'], type: 'string' },
  AUTHCTL_SMTP_URL: { path: ['mail', 'smtpUrl'], type: 'string' },
  AUTHCTL_MAIL_FROM: { path: ['mail', 'from'], type: 'string' },
  AUTHCTL_IDENTITY_USERNAME: { path: ['identity', 'username'], type: 'string' },
  AUTHCTL_IDENTITY_EMAIL: { path: ['identity', 'email'], type: 'string' },
  AUTHCTL_REQUIRE_VERIFIED_EMAIL: { path: ['identity', 'requireVerifiedEmail'], type: 'bool' },
  AUTHCTL_OTP_SIGNUP: { path: ['identity', 'otpSignup'], type: 'bool' },
  AUTHCTL_IDENTITY_MFA: { path: ['identity', 'mfa'], type: 'string' },
  AUTHCTL_REAUTH_WINDOW: { path: ['identity', 'reauthWindow'], type: 'int' },
  AUTHCTL_REDIRECT_URLS: { path: ['identity', 'redirectUrls'], type: 'list' },
  AUTHCTL_PROVIDER_TIMEOUT_MS: { path: ['identity', 'providerTimeoutMs'], type: 'int' },
  AUTHCTL_PROVIDER_FLOW_TTL: { path: ['identity', 'providerFlowTtl'], type: 'int' },
  AUTHCTL_PASSKEYS: { path: ['identity', 'webauthn', 'enabled'], type: 'bool' },
  AUTHCTL_WEBAUTHN_RP_ID: { path: ['identity', 'webauthn', 'rpId'], type: 'string' },
  AUTHCTL_WEBAUTHN_RP_NAME: { path: ['identity', 'webauthn', 'rpName'], type: 'string' },
  AUTHCTL_WEBAUTHN_ORIGINS: { path: ['identity', 'webauthn', 'origins'], type: 'list' },
};

/**
 * `identity.providers` is a list, which a path cannot name: these variables add the `google`
 * provider (the preset fills in its issuer and scopes) or fill in the one the file has — the
 * common case of "Sign in with Google" configured from the environment alone.
 */
const GOOGLE_ENV = { AUTHCTL_GOOGLE_CLIENT_ID: 'clientId', AUTHCTL_GOOGLE_CLIENT_SECRET: 'clientSecret' } as const;

export const ENV_VARIABLES = Object.freeze({
  ...Object.fromEntries(Object.entries(ENV_MAP).map(([name, { path }]) => [name, path.join('.')])),
  ...Object.fromEntries(Object.entries(GOOGLE_ENV).map(([name, key]) => [name, `identity.providers[google].${key}`])),
});

export interface LoadConfigOptions {
  /** Config file; when absent, `AUTHCTL_CONFIG`, then `./config/authctl.json` if it exists. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Applied last: values a command sets from its flags (e.g. `serve --port`). */
  overrides?: ConfigInput;
  cwd?: string;
}

type Plain = Record<string, unknown>;

function isPlain(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function merge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const current = out[key];
    out[key] = isPlain(current) && isPlain(value) ? merge(current, value) : value;
  }
  return out;
}

function setPath(target: Plain, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    node = isPlain(next) ? next : (node[key] = {});
  }
  node[path[path.length - 1]!] = value;
}

function deepFreeze<T>(value: T): T {
  if (isPlain(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

function badConfig(detail: string): AppError {
  return new AppError('bad_config', detail);
}

function readFile(file: string): Plain {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new AppError('bad_config', `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // JSON.parse's message quotes the text around the error, which may be a secret: say where only.
    const position = /position (\d+)/.exec((err as Error).message)?.[1];
    const where = position === undefined ? '' : ` (${lineAndColumn(text, Number(position))})`;
    throw new AppError('bad_config', `config file ${file} is not valid JSON${where}`);
  }
  if (!isPlain(parsed)) throw badConfig(`config file ${file} must hold a JSON object`);
  // A "$schema" member lets editors validate the file; it is not configuration.
  delete parsed.$schema;
  return parsed;
}

function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${before[before.length - 1]!.length + 1}`;
}

const ENV_REFERENCE = /^env:([A-Za-z_][A-Za-z0-9_]*)$/;

/**
 * A file value written as "env:NAME" is taken from that environment variable, so a config file can
 * be committed or shared while the server secret, peer secrets and database passwords stay in the
 * environment (or a secret manager that fills it). An unset variable is bad config, named by key.
 */
function resolveEnvReferences(values: Plain, env: NodeJS.ProcessEnv, file: string, path: string[] = []): Plain {
  const resolveValue = (value: unknown, at: string[]): unknown => {
    if (typeof value === 'string') {
      const name = ENV_REFERENCE.exec(value)?.[1];
      if (name === undefined) return value;
      const found = env[name];
      if (found === undefined || found === '') {
        throw badConfig(`${at.join('.')} (in ${file}) refers to environment variable ${name}, which is not set`);
      }
      return found;
    }
    if (Array.isArray(value)) return value.map((item, i) => resolveValue(item, [...at, String(i)]));
    if (isPlain(value)) return resolveEnvReferences(value, env, file, at);
    return value;
  };
  const out: Plain = {};
  for (const [key, value] of Object.entries(values)) out[key] = resolveValue(value, [...path, key]);
  return out;
}

function readEnv(env: NodeJS.ProcessEnv): { values: Plain; sources: Map<string, string> } {
  const values: Plain = {};
  const sources = new Map<string, string>();
  for (const [name, { path, type }] of Object.entries(ENV_MAP)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    let value: unknown = raw;
    if (type === 'int') {
      if (!/^-?\d+$/.test(raw.trim())) throw badConfig(`${name} must be a whole number`);
      value = Number(raw.trim());
    } else if (type === 'bool') {
      if (!/^(true|false|1|0)$/i.test(raw.trim())) throw badConfig(`${name} must be true or false`);
      value = /^(true|1)$/i.test(raw.trim());
    } else if (type === 'list') {
      value = raw
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
    }
    setPath(values, path, value);
    sources.set(path.join('.'), name);
  }
  return { values, sources };
}

/**
 * Applies AUTHCTL_GOOGLE_CLIENT_ID / _SECRET to the merged values: fills in (env beats file) the
 * provider with the id `google`, or adds it. Records the variables as the sources of those keys,
 * so that a bad value names the variable.
 */
function applyGoogleEnv(values: Plain, env: NodeJS.ProcessEnv, sources: Map<string, string>): Plain {
  const given = Object.entries(GOOGLE_ENV).filter(([name]) => env[name] !== undefined && env[name] !== '');
  if (given.length === 0) return values;
  const identity = isPlain(values.identity) ? values.identity : {};
  const providers = Array.isArray(identity.providers) ? [...(identity.providers as unknown[])] : [];
  let index = providers.findIndex((p) => isPlain(p) && p.id === 'google');
  if (index === -1) {
    if (!given.some(([, key]) => key === 'clientId')) {
      throw badConfig('AUTHCTL_GOOGLE_CLIENT_SECRET: needs AUTHCTL_GOOGLE_CLIENT_ID (or a "google" provider in identity.providers)');
    }
    index = providers.push({ id: 'google' }) - 1;
  }
  const google: Plain = { ...(providers[index] as Plain) };
  for (const [name, key] of given) {
    google[key] = env[name]!.trim();
    sources.set(`identity.providers.${index}.${key}`, name);
  }
  providers[index] = google;
  return { ...values, identity: { ...identity, providers } };
}

/** Picks the config file per docs/api.md#configuration: explicit flag, then AUTHCTL_CONFIG, then ./config/authctl.json. */
export function resolveConfigFile(options: LoadConfigOptions): string | undefined {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  if (options.file) return resolve(cwd, options.file);
  if (env.AUTHCTL_CONFIG) return resolve(cwd, env.AUTHCTL_CONFIG);
  const fallback = resolve(cwd, 'config/authctl.json');
  return existsSync(fallback) ? fallback : undefined;
}

function describeIssue(issue: z.core.$ZodIssue, sources: Map<string, string>, file: string | undefined): string {
  const key = issue.path.join('.');
  // A list variable's issue names an element (`http.corsOrigins.1`): name the variable all the same.
  const envName = sources.get(key) ?? [...sources].find(([path]) => key.startsWith(`${path}.`))?.[1];
  const where = envName ?? (file ? `${key} (in ${file})` : key);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (key ? `${key}.${k}` : k)).join(', ');
    return `unknown config key ${keys}${file ? ` in ${file}` : ''}`;
  }
  return `${where || 'config'}: ${issue.message}`;
}

/**
 * Loads the one config object: schema defaults ← config file ← `AUTHCTL_*` environment ←
 * command overrides. The result is deeply frozen. A bad value throws `AppError('bad_config')`
 * (exit 78) whose detail names the environment variable or file key — never its value, which
 * may be a secret.
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const file = resolveConfigFile(options);
  const env = options.env ?? process.env;
  const fromFile = file ? resolveEnvReferences(readFile(file), env, file) : {};
  const { values: fromEnv, sources } = readEnv(env);
  const merged = merge(applyGoogleEnv(merge(fromFile, fromEnv), env, sources), options.overrides ?? {});
  const result = checkedConfigSchema.safeParse(merged);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => describeIssue(issue, sources, file));
    throw badConfig(`invalid configuration: ${problems.join('; ')}`);
  }
  return deepFreeze(result.data);
}

/** The server secret, required by anything that signs, MACs or unwraps keys. */
export function requireSecret(config: Config): string {
  if (!config.secret) {
    throw badConfig('no server secret: set AUTHCTL_SECRET (at least 32 random characters, e.g. `openssl rand -base64 48`)');
  }
  return config.secret;
}

/** A config file's JSON object as written (env references unresolved), for commands that edit it. */
export { readFile as readConfigFile };
