import type { Writable } from 'node:stream';
import winston from 'winston';
import type { RequestContextStore } from './request-context.js';

export type Logger = winston.Logger;

export interface LoggerOptions {
  level: string;
  region: string;
  /** CLI commands log to stderr so that stdout carries only their output (`--json`). */
  stream?: 'stdout' | 'stderr';
  /** Write JSON lines here instead (tests capture logs this way). */
  sink?: Writable;
  /** Adds the current request's id to every line written while serving it. */
  context?: RequestContextStore;
  /** Human-readable coloured lines; default: when the stream is a TTY and NODE_ENV is not production. */
  pretty?: boolean;
}

// Any member whose name looks like a secret is replaced, wherever it sits in the log entry. A
// passkey is not a password: `passkeyId` names a public record (its key stays on the device).
const SECRET_KEY = /pass(?!key)(word)?|secret|token|hash|authorization|cookie|private|credential/i;
// Values that look like our secrets are masked even under an innocent key: JWTs, refresh tokens,
// password hashes of every format authctl stores (src/core/users/hash-formats.ts: argon2, bcrypt,
// scrypt, PBKDF2, Django's), service-client secrets (`cs_` + 43 base64url), and the sealed tokens
// (`mfa_` mfaTokens, `st_` provider-flow states, `oc_` one-time codes, `pk_` passkey challenges —
// and those as a WebAuthn response echoes them, base64url of the same text: `cGtf…`). Defence in depth: no code
// path should ever log one.
const SECRET_VALUE = new RegExp(
  [
    String.raw`eyJ[\w-]+\.[\w-]+\.[\w-]*`,
    String.raw`rt_[a-z][a-z0-9-]*_[0-9a-f-]{36}_\d+_[\w-]{22}`,
    String.raw`\$(argon2(id|i|d)|2[aby]|scrypt|pbkdf2-sha(256|512))\$[^\s"]+`,
    String.raw`\bpbkdf2_sha256\$[^\s"]+`,
    String.raw`\bcs_[\w-]{43}\b`,
    String.raw`\b(mfa|st|oc|pk)_[\w-]{40,}`,
    String.raw`\bcGtf[\w-]{40,}`,
  ].join('|'),
  'g',
);

function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.replace(SECRET_VALUE, '[redacted]');
  if (value instanceof Error) {
    const code = (value as NodeJS.ErrnoException).code;
    return { name: value.name, message: redact(value.message), ...(code ? { code } : {}), ...(value.stack ? { stack: redact(value.stack) } : {}) };
  }
  if (typeof value !== 'object' || value === null) return value;
  // Deeper than anything we log on purpose: drop it rather than pass it unexamined.
  if (depth > 4) return '[truncated]';
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = SECRET_KEY.test(key) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

const redaction = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level') continue;
    info[key] = key !== 'message' && SECRET_KEY.test(key) ? '[redacted]' : redact(info[key]);
  }
  return info;
});

const withRequestId = (context: RequestContextStore | undefined) =>
  winston.format((info) => {
    const store = context?.getStore();
    if (store && info.requestId === undefined) info.requestId = store.requestId;
    return info;
  })();

const human = winston.format.printf((info) => {
  const { timestamp, level, message, event, region: _region, ...rest } = info;
  const fields = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${String(timestamp)} ${level} ${typeof event === 'string' ? `[${event}] ` : ''}${String(message)}${fields ? ` ${fields}` : ''}`;
});

/**
 * Structured logs: one JSON object per line with `timestamp, level, message, event, region` and,
 * where known, `requestId, userId, sessionId, durationMs`. Every entry passes a redaction step.
 */
export function createLogger(options: LoggerOptions): Logger {
  const silent = options.level === 'silent';
  const target = options.stream ?? 'stdout';
  const pretty = options.pretty ?? (!options.sink && Boolean(process[target].isTTY) && process.env.NODE_ENV !== 'production');
  // winston formats an entry before its transports filter by level: drop disabled levels first,
  // or every debug/info line on the request path is redacted, stamped and serialised for nothing.
  const enabled = winston.format((info) => (logger.isLevelEnabled(info.level) ? info : false));
  const base = [enabled(), withRequestId(options.context), redaction(), winston.format.timestamp()];
  const format = pretty ? winston.format.combine(...base, winston.format.colorize(), human) : winston.format.combine(...base, winston.format.json());
  const transport = options.sink
    ? new winston.transports.Stream({ stream: options.sink })
    : new winston.transports.Console({
        stderrLevels: target === 'stderr' ? Object.keys(winston.config.npm.levels) : ['error'],
      });
  const logger = winston.createLogger({
    level: silent ? 'error' : options.level,
    silent,
    defaultMeta: { region: options.region },
    format,
    transports: [transport],
  });
  return logger;
}
