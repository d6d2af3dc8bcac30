import { Writable } from 'node:stream';
import { expect } from 'chai';
import { createLogger, type Logger } from '../../src/platform/logger.js';
import { RequestContextStore, type RequestContext } from '../../src/platform/request-context.js';

/** One parsed log line (the members every line carries, plus whatever the event adds). */
export interface LogLine {
  timestamp: string;
  level: string;
  message: string;
  region: string;
  event?: string;
  requestId?: string;
  userId?: string;
  sessionId?: string;
  [member: string]: unknown;
}

/**
 * A request context that reads another store, named after the logger was built. The container
 * creates its own RequestContextStore and does not wire it into a logger passed in from outside,
 * so a test logger follows `container.requestContext` through this once the container exists.
 */
class FollowingContext extends RequestContextStore {
  target: RequestContextStore | undefined;

  override getStore(): RequestContext | undefined {
    return this.target ? this.target.getStore() : super.getStore();
  }
}

/**
 * A Writable that keeps every line written to it: the sink of a real `createLogger` (JSON lines,
 * the same formats and redaction as production), for tests that read or grep the logs.
 *
 *   const capture = new LogCapture();
 *   const app = await startTestApp('x', { log: capture.logger({ region: 'local' }) });
 *   capture.follow(app.container.requestContext);
 */
export class LogCapture extends Writable {
  /** Complete lines, in the order written (without the line break). */
  readonly lines: string[] = [];
  private partial = '';
  private readonly context = new FollowingContext();

  constructor() {
    super({ decodeStrings: false });
  }

  override _write(chunk: unknown, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    const text = this.partial + (typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : JSON.stringify(chunk));
    const parts = text.split(/\r?\n/);
    this.partial = parts.pop() ?? '';
    for (const line of parts) if (line !== '') this.lines.push(line);
    done();
  }

  /** A production logger (JSON, redaction, request ids) writing here. */
  logger(options: { level?: string; region?: string } = {}): Logger {
    return createLogger({ level: options.level ?? 'debug', region: options.region ?? 'local', sink: this, context: this.context, pretty: false });
  }

  /** From now on, lines written inside a request of this store carry its request id. */
  follow(store: RequestContextStore): void {
    this.context.target = store;
  }

  /** Everything written so far, including an unterminated last line. */
  get text(): string {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].join('\n');
  }

  /** Every line parsed as JSON; fails (naming the line) if one is not a JSON object. */
  entries(): LogLine[] {
    return this.lines.map((line, i) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (err) {
        expect.fail(`log line ${i} is not JSON (${(err as Error).message}): ${line}`);
      }
      expect(parsed, `log line ${i} is a JSON object: ${line}`).to.be.an('object').and.not.be.an('array');
      return parsed as LogLine;
    });
  }

  events(name: string): LogLine[] {
    return this.entries().filter((e) => e.event === name);
  }

  /** Lets winston's piped streams deliver what was logged so far. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  clear(): void {
    this.lines.length = 0;
    this.partial = '';
  }
}

/** The spellings under which `value` could sit in a log line: as is and JSON-escaped. */
function spellings(value: string): string[] {
  const escaped = JSON.stringify(value).slice(1, -1);
  const ascii = escaped.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return [...new Set([value, escaped, ascii])];
}

/**
 * Fails when any secret occurs in any line (raw or JSON-escaped), listing every leak with its
 * name and line number. Secrets shorter than 6 characters are refused: they would match by chance.
 */
export function assertNoSecrets(lines: string[] | string, secrets: Record<string, string> | Array<[name: string, value: string]>): void {
  const all = typeof lines === 'string' ? lines.split('\n') : lines;
  const named = Array.isArray(secrets) ? secrets : Object.entries(secrets);
  const leaks: string[] = [];
  for (const [name, value] of named) {
    expect(value.length, `secret "${name}" is long enough to grep for`).to.be.at.least(6);
    const forms = spellings(value);
    all.forEach((line, i) => {
      if (forms.some((form) => line.includes(form))) leaks.push(`${name} in line ${i}: ${line.length > 300 ? `${line.slice(0, 300)}…` : line}`);
    });
  }
  expect(leaks, `secrets written to the logs:\n${leaks.join('\n')}`).to.deep.equal([]);
}

/** A refresh token and its MAC (the part that makes it a credential). */
export function refreshTokenSecrets(name: string, token: string): Array<[string, string]> {
  const mac = token.slice(-22);
  return [
    [name, token],
    [`${name} (MAC)`, mac],
  ];
}

/** An access token and its signature. */
export function accessTokenSecrets(name: string, token: string): Array<[string, string]> {
  const signature = token.split('.')[2] ?? '';
  return [[name, token], ...(signature.length >= 6 ? ([[`${name} (signature)`, signature]] as Array<[string, string]>) : [])];
}
