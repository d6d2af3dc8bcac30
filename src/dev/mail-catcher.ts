/**
 * The SMTP catcher of `authctl dev`: an SMTP server on a loopback port that accepts every message
 * (no login, no TLS), parses it and keeps the last ones in memory, so every mail flow works in
 * development with no mail server and nothing leaves the machine. Never used outside `dev`.
 */
import type { AddressInfo } from 'node:net';
import { simpleParser, type AddressObject } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface CaughtMail {
  /** 1, 2, 3, … in arrival order. */
  id: number;
  receivedAt: string;
  from: string;
  to: string[];
  subject: string;
  messageId: string | null;
  /** The `X-Authctl-Kind` header: which composer made it. */
  kind: string | null;
  text: string;
  html: string | null;
  /** What looks like a one-time code in the text (6–8 digits, or the word after "code"). */
  codes: string[];
  /** Every http(s) link in the text. */
  links: string[];
}

export interface MailCatcher {
  readonly port: number;
  /** What the dev region sends to: smtp://127.0.0.1:<port>. */
  readonly smtpUrl: string;
  /** Newest first. */
  list(): CaughtMail[];
  get(id: number): CaughtMail | undefined;
  close(): Promise<void>;
}

export interface MailCatcherOptions {
  /** Default: a free port. */
  port?: number;
  /** How many messages to keep (default 200; older ones are dropped). */
  keep?: number;
  onMessage?: (mail: CaughtMail) => void;
  onError?: (err: Error) => void;
}

const LINK = /\bhttps?:\/\/[^\s<>"'()]+/g;
const DIGITS = /(?<![\d.:/-])\d{6,8}(?![\d.:/-])/g;
const AFTER_CODE = /\bcode\b(?:\s+is)?\s*[:=]?\s*([A-Za-z0-9][A-Za-z0-9-]{3,15})\b/gi;

/** Links in `text`, without trailing punctuation, each once. */
export function findLinks(text: string): string[] {
  return [...new Set([...text.matchAll(LINK)].map((m) => m[0].replace(/[.,;:!?]+$/, '')))];
}

/** One-time codes in `text`: runs of 6–8 digits, and what follows the word "code". */
export function findCodes(text: string): string[] {
  const withoutLinks = text.replace(LINK, ' ');
  const found = [
    ...[...withoutLinks.matchAll(AFTER_CODE)].map((m) => m[1]!).filter((c) => /\d/.test(c)),
    ...[...withoutLinks.matchAll(DIGITS)].map((m) => m[0]),
  ];
  return [...new Set(found)];
}

function addresses(value: AddressObject | AddressObject[] | undefined): string[] {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value];
  return list.flatMap((a) => a.value.map((v) => v.address ?? '')).filter((a) => a !== '');
}

export async function startMailCatcher(options: MailCatcherOptions = {}): Promise<MailCatcher> {
  const keep = options.keep ?? 200;
  const caught: CaughtMail[] = [];
  let next = 1;
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    banner: 'authctl dev mail catcher: nothing is delivered',
    size: 10 * 1024 * 1024,
    closeTimeout: 1_000,
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((parsed) => {
          const text = parsed.text ?? '';
          const kind = parsed.headers.get('x-authctl-kind');
          const envelopeTo = session.envelope.rcptTo.map((r) => r.address);
          const mail: CaughtMail = {
            id: next++,
            receivedAt: new Date().toISOString(),
            from: addresses(parsed.from).join(', ') || (session.envelope.mailFrom ? session.envelope.mailFrom.address : ''),
            to: envelopeTo.length ? envelopeTo : addresses(parsed.to),
            subject: parsed.subject ?? '',
            messageId: parsed.messageId ?? null,
            kind: typeof kind === 'string' ? kind : null,
            text,
            html: typeof parsed.html === 'string' ? parsed.html : null,
            codes: findCodes(text),
            links: findLinks(text),
          };
          caught.unshift(mail);
          caught.splice(keep);
          options.onMessage?.(mail);
          callback();
        })
        .catch((err: unknown) => callback(err as Error));
    },
  });
  server.on('error', (err: Error) => options.onError?.(err));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    smtpUrl: `smtp://127.0.0.1:${port}`,
    list: () => [...caught],
    get: (id) => caught.find((m) => m.id === id),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
