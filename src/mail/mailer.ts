/** One message, ready to go: rendered, addressed, with its Message-ID. */
export interface OutgoingMail {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** `<…@…>`; a retried job reuses its message's id, so a duplicate is recognisable as one. */
  messageId: string;
  headers?: Record<string, string>;
}

export interface SentMail {
  messageId: string;
  /** The server's final reply (e.g. `250 2.0.0 Ok: queued as …`), when there is one. */
  response?: string | undefined;
}

/**
 * Where mail goes: an SMTP server (`SmtpMailer`) or the log (`LogMailer`). Only workers and
 * `authctl mail test` call it; an HTTP request never waits for a mail server.
 */
export interface Mailer {
  readonly transport: 'smtp' | 'log';
  /** Where it sends, for messages (`smtp.example.com:587`; never the credentials). */
  readonly endpoint: string;
  /**
   * Sends one message. Fails with an AppError: `unavailable` (unreachable, timed out, a 4xx
   * reply: worth retrying), `bad_config` (credentials refused, certificate not trusted, sender
   * refused) or `invalid_request` (the recipient or message refused for good).
   */
  send(message: OutgoingMail, options?: { signal?: AbortSignal }): Promise<SentMail>;
  /** Connects, greets, negotiates TLS and authenticates, then hangs up; fails like send(). */
  verify(): Promise<void>;
  /** Closes pooled connections. */
  close(): void;
}

/** `example.com` for `bob@Example.com`: what logs say about a recipient. */
export function recipientDomain(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}
