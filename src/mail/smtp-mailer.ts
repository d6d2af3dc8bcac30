import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createTransport } from 'nodemailer';
import type { SentMessageInfo } from 'nodemailer/lib/mailer';
import type { SMTPPoolOptions } from 'nodemailer/lib/smtp-pool';
import type { SMTPTransportOptions } from 'nodemailer/lib/smtp-transport';
import { AppError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import type { Mailer, OutgoingMail, SentMail } from './mailer.js';

export interface SmtpMailerOptions {
  /** smtp:// (STARTTLS when offered; port 587 by default) or smtps:// (TLS; port 465 by default). */
  url: string;
  from: string;
  replyTo?: string | undefined;
  /** PEM file of the CA (or self-signed certificate) to trust instead of the system's CAs. */
  tlsCaFile?: string | undefined;
  tlsRejectUnauthorized?: boolean;
  /** smtp:// only: fail rather than send in clear text when STARTTLS is not offered. */
  requireTls?: boolean;
  /** Each wait (connect, greeting, TLS upgrade, every reply) gives up after this. */
  timeoutMs: number;
  /** Keep connections open between messages (workers); off for one-shot checks. Default true. */
  pool?: boolean;
  log?: Logger | undefined;
}

type Transporter = ReturnType<typeof createTransport<SentMessageInfo>>;

/** What a failed SMTP exchange may carry; all of it is safe to log (no address, no body). */
export interface SmtpFailure {
  /** nodemailer's code (ECONNECTION, ETIMEDOUT, EAUTH, EENVELOPE, …) or the socket's. */
  code?: string | undefined;
  /** The SMTP reply code, when the server answered. */
  responseCode?: number | undefined;
  /** The command the server refused (`RCPT TO`, `MAIL FROM`, `DATA`, `AUTH PLAIN`, …). */
  command?: string | undefined;
  /** True for a 5xx refusal that a retry would get again. */
  permanent?: boolean | undefined;
}

interface NodemailerError extends Error {
  code?: string;
  originalCode?: string;
  responseCode?: number;
  response?: string;
  command?: string;
  permanent?: boolean;
  timeoutType?: string;
}

const UNTRUSTED_CERTIFICATE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|HOSTNAME|ALTNAME/;

/**
 * The SMTP transport (nodemailer): a small pool of connections kept open between messages,
 * bounded waits everywhere so that a dead or mute server fails an attempt within `timeoutMs`
 * instead of holding a worker, and every failure translated to an AppError that says what to do.
 * Nothing is opened (and no file read) until the first send or verify.
 */
export class SmtpMailer implements Mailer {
  readonly transport = 'smtp' as const;
  readonly endpoint: string;
  private readonly host: string;
  private readonly port: number;
  private readonly secure: boolean;
  private transporter: Transporter | undefined;

  constructor(private readonly opts: SmtpMailerOptions) {
    const url = new URL(opts.url);
    this.secure = url.protocol === 'smtps:';
    this.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = url.port ? Number(url.port) : this.secure ? 465 : 587;
    this.endpoint = `${url.hostname}:${this.port}`;
  }

  async send(message: OutgoingMail, options: { signal?: AbortSignal } = {}): Promise<SentMail> {
    const transporter = this.ensure();
    try {
      const info: SentMessageInfo = await transporter.sendMail({
        from: this.opts.from,
        ...(this.opts.replyTo ? { replyTo: this.opts.replyTo } : {}),
        to: message.to,
        subject: message.subject,
        text: message.text,
        html: message.html,
        messageId: message.messageId,
        ...(message.headers ? { headers: message.headers } : {}),
        disableFileAccess: true,
        disableUrlAccess: true,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return { messageId: info.messageId, response: typeof info.response === 'string' ? info.response : undefined };
    } catch (err) {
      throw this.translate(err);
    }
  }

  async verify(): Promise<void> {
    // A connection of its own (not from the pool): it proves the server answers now.
    const probe = createTransport({ ...this.transportOptions(), pool: false } as SMTPTransportOptions);
    try {
      await probe.verify();
    } catch (err) {
      throw this.translate(err);
    } finally {
      probe.close();
    }
  }

  close(): void {
    this.transporter?.close();
    this.transporter = undefined;
  }

  private ensure(): Transporter {
    if (!this.transporter) {
      const transporter =
        this.opts.pool === false
          ? createTransport({ ...this.transportOptions(), pool: false } as SMTPTransportOptions)
          : createTransport({ ...this.transportOptions(), pool: true });
      // A pooled connection that fails while idle must not crash the process.
      transporter.on('error', (err: Error) =>
        this.opts.log?.warn('SMTP connection error', { event: 'mail.connection_error', err: { name: err.name, code: (err as NodemailerError).code } }),
      );
      this.transporter = transporter;
    }
    return this.transporter;
  }

  private transportOptions(): SMTPPoolOptions {
    const url = new URL(this.opts.url);
    const { timeoutMs } = this.opts;
    let ca: Buffer | undefined;
    if (this.opts.tlsCaFile) {
      const file = resolve(this.opts.tlsCaFile);
      try {
        ca = readFileSync(file);
      } catch (err) {
        throw new AppError('bad_config', `mail.tlsCaFile: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
      }
    }
    return {
      maxConnections: 5,
      maxMessages: 500,
      // A message whose connection drops is failed, not resent by the pool: retries are the
      // queue's job (with the same Message-ID), so a delivery attempt never outlives its job.
      maxRequeues: 0,
      idleTimeout: 30_000,
      host: this.host,
      port: this.port,
      secure: this.secure,
      requireTLS: !this.secure && (this.opts.requireTls ?? false),
      ...(url.username ? { auth: { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } } : {}),
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      dnsTimeout: timeoutMs,
      socketCloseTimeout: Math.min(timeoutMs, 2_000),
      tls: {
        minVersion: 'TLSv1.2',
        rejectUnauthorized: this.opts.tlsRejectUnauthorized ?? true,
        ...(ca ? { ca } : {}),
      },
      logger: false,
      debug: false,
    };
  }

  /** An AppError whose detail says what failed and what to do; the cause keeps nodemailer's error. */
  private translate(err: unknown): AppError {
    if (err instanceof AppError) return err;
    const e = (err ?? {}) as NodemailerError;
    const where = `the SMTP server at ${this.endpoint}`;
    const reply = e.response ? `: ${oneLine(e.response)}` : '';
    const code = e.code ?? '';
    const socketCode = e.originalCode ?? code;
    if (code === 'EAUTH' || code === 'ENOAUTH') {
      return new AppError('bad_config', `${where} refused the login${reply}: check the user name and password in mail.smtpUrl (AUTHCTL_SMTP_URL)`, {
        cause: err,
      });
    }
    if (UNTRUSTED_CERTIFICATE.test(socketCode) || UNTRUSTED_CERTIFICATE.test(e.message ?? '')) {
      return new AppError(
        'bad_config',
        `${where} presented a TLS certificate that is not trusted (${socketCode || 'certificate error'}): ` +
          'set mail.tlsCaFile to its CA certificate (or, in development only, mail.tlsRejectUnauthorized to false)',
        { cause: err },
      );
    }
    if (code === 'ETLS' && /STARTTLS/i.test(e.message ?? '') && this.opts.requireTls) {
      return new AppError('bad_config', `${where} does not offer STARTTLS, and mail.requireTls is set: use smtps:// or a server that offers STARTTLS`, {
        cause: err,
      });
    }
    if (typeof e.responseCode === 'number' && e.responseCode >= 500 && e.permanent !== false) {
      if (/^MAIL\b/i.test(e.command ?? '')) {
        return new AppError('bad_config', `${where} refused the sender mail.from${reply}`, { cause: err });
      }
      const what = /^RCPT\b/i.test(e.command ?? '') ? 'the recipient' : 'the message';
      return new AppError('invalid_request', `${where} refused ${what}${reply}`, { cause: err });
    }
    if (typeof e.responseCode === 'number') {
      return new AppError('unavailable', `${where} deferred the message${reply}; try again later`, { cause: err, retryAfter: 60 });
    }
    return new AppError('unavailable', `${where} cannot be reached: ${describeSocketFailure(e)}`, { cause: err, retryAfter: 30 });
  }
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

function describeSocketFailure(e: NodemailerError): string {
  switch (e.originalCode ?? e.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is it running, on that host and port?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EDNS':
      return 'unknown host name';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'the connection was reset';
    case 'ETIMEDOUT':
      return e.timeoutType === 'GREETING_TIMEOUT' ? 'no greeting in time (is it an SMTP server, and smtp:// vs smtps:// right?)' : 'timed out';
    case 'ETLS':
      return 'the TLS handshake failed (smtp:// vs smtps:// right?)';
    case 'ECONNECTION':
      return 'the connection closed unexpectedly';
    default:
      return e.code ?? 'could not connect';
  }
}

/** The loggable facts of a failed send (never the reply text: it may quote the address). */
export function smtpFailure(err: unknown): SmtpFailure {
  const raw = (err instanceof AppError ? err.cause : err) as NodemailerError | undefined;
  if (!raw || typeof raw !== 'object') return {};
  return {
    ...(raw.originalCode || raw.code ? { code: raw.originalCode ?? raw.code } : {}),
    ...(typeof raw.responseCode === 'number' ? { responseCode: raw.responseCode } : {}),
    ...(raw.command ? { command: String(raw.command).split(/\s/).slice(0, 2).join(' ').replace(/:.*$/, '') } : {}),
    ...(typeof raw.permanent === 'boolean' ? { permanent: raw.permanent } : {}),
  };
}
