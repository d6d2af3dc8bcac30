import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { freePort } from '../helpers/redis-server.js';

export { freePort };

/** One message the test server took, parsed with mailparser, with the session it came in. */
export interface Received {
  parsed: ParsedMail;
  raw: string;
  envelopeTo: string[];
  envelopeFrom: string;
  /** True when the message came over TLS (STARTTLS or smtps). */
  secure: boolean;
  user: string | undefined;
}

export interface TestSmtpOptions {
  /** Listen on this port (default: a free one). */
  port?: number;
  /** PEM key and certificate: STARTTLS offered (or, with `secure`, TLS from the first byte). */
  tls?: { key: string; cert: string };
  secure?: boolean;
  /** Require this login (only accepted over TLS, as smtp-server does). */
  auth?: { user: string; pass: string };
  /**
   * Decides each message after it was received (and recorded): return an SMTP error to refuse it
   * (`Object.assign(new Error('try later'), { responseCode: 451 })`), or a promise to hold the reply.
   */
  onMessage?: (received: Received) => Promise<Error | undefined> | Error | undefined;
  /** Refuse the recipient at RCPT TO with 550. */
  rejectRecipient?: (address: string) => boolean;
}

/** A real SMTP server (smtp-server) on a loopback port, keeping what it receives. */
export class TestSmtpServer {
  readonly received: Received[] = [];
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly server: SMTPServer,
    readonly port: number,
    private readonly options: TestSmtpOptions,
  ) {}

  static async start(options: TestSmtpOptions = {}): Promise<TestSmtpServer> {
    const port = options.port ?? (await freePort());
    const holder: { self?: TestSmtpServer } = {};
    const config: SMTPServerOptions = {
      secure: options.secure ?? false,
      ...(options.tls ? { key: options.tls.key, cert: options.tls.cert } : {}),
      disabledCommands: [...(options.tls ? [] : ['STARTTLS']), ...(options.auth ? [] : ['AUTH'])],
      authOptional: !options.auth,
      logger: false,
      banner: 'authctl test SMTP server',
      closeTimeout: 200,
      size: 10 * 1024 * 1024,
      onAuth(auth, _session, callback) {
        if (options.auth && auth.username === options.auth.user && auth.password === options.auth.pass) callback(null, { user: auth.username });
        else callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
      },
      onRcptTo(address, _session, callback) {
        if (options.rejectRecipient?.(address.address)) callback(Object.assign(new Error('Mailbox unavailable'), { responseCode: 550 }));
        else callback();
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          void holder.self!.record(raw, session).then(
            (error) => callback(error ?? null),
            (err: unknown) => callback(err as Error),
          );
        });
      },
    };
    const server = new SMTPServer(config);
    server.on('error', () => undefined);
    const self = new TestSmtpServer(server, port, options);
    holder.self = self;
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return self;
  }

  /** smtp://127.0.0.1:<port> (smtps:// when `secure`), with the login when there is one. */
  get url(): string {
    const scheme = this.options.secure ? 'smtps' : 'smtp';
    const auth = this.options.auth ? `${encodeURIComponent(this.options.auth.user)}:${encodeURIComponent(this.options.auth.pass)}@` : '';
    return `${scheme}://${auth}127.0.0.1:${this.port}`;
  }

  private async record(raw: string, session: SMTPServerSession): Promise<Error | undefined> {
    const received: Received = {
      parsed: await simpleParser(raw),
      raw,
      envelopeTo: session.envelope.rcptTo.map((r) => r.address),
      envelopeFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      secure: session.secure,
      user: session.user as string | undefined,
    };
    this.received.push(received);
    for (const wake of this.waiters.splice(0)) wake();
    return this.options.onMessage?.(received);
  }

  /** Resolves once `count` messages have arrived; fails after `timeoutMs`. */
  async waitFor(count: number, timeoutMs = 20_000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${count} message(s); got ${this.received.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** An SMTP error reply for `onMessage`. */
export function smtpError(responseCode: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode });
}

export interface TestCertificate {
  key: string;
  cert: string;
  /** The certificate as a file (to trust it: mail.tlsCaFile). */
  certFile: string;
  remove(): void;
}

/**
 * A throw-away self-signed certificate for 127.0.0.1 and localhost, made now with openssl (never
 * committed): P-256, valid for a day.
 */
export function selfSignedCertificate(): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'authctl-mail-tls-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=authctl test SMTP',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return {
    key: readFileSync(keyFile, 'utf8'),
    cert: readFileSync(certFile, 'utf8'),
    certFile,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
