import winston from 'winston';

export type Logger = winston.Logger;

export interface LoggerOptions {
  level: string;
  region: string;
  /** CLI commands log to stderr so that stdout carries only their output (`--json`). */
  stream?: 'stdout' | 'stderr';
}

// Any member whose name looks like a secret is replaced, wherever it sits in the log entry.
const SECRET_KEY = /pass(word)?|secret|token|hash|authorization|cookie|private/i;

function redact(value: unknown, depth = 0): unknown {
  if (value instanceof Error) {
    const code = (value as NodeJS.ErrnoException).code;
    return { name: value.name, message: value.message, ...(code ? { code } : {}), ...(value.stack ? { stack: value.stack } : {}) };
  }
  if (depth > 4 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = SECRET_KEY.test(key) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

const redaction = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level' || key === 'message') continue;
    info[key] = SECRET_KEY.test(key) ? '[redacted]' : redact(info[key]);
  }
  return info;
});

/** Structured JSON lines (one object per line) with the region on every entry. */
export function createLogger(options: LoggerOptions): Logger {
  const silent = options.level === 'silent';
  return winston.createLogger({
    level: silent ? 'error' : options.level,
    silent,
    defaultMeta: { region: options.region },
    format: winston.format.combine(redaction(), winston.format.timestamp(), winston.format.json()),
    transports: [
      new winston.transports.Console({
        stderrLevels: options.stream === 'stderr' ? Object.keys(winston.config.npm.levels) : ['error'],
      }),
    ],
  });
}
