import { z } from 'zod';

/** `local@domain`: no spaces, quotes or angle brackets; a domain of DNS labels (a single label, e.g. localhost, allowed). */
const ADDRESS = /^[^\s@<>"(),;:\\[\]]{1,64}@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** `Display Name <local@domain>`; the name may be quoted; no line breaks anywhere. */
const NAMED = /^\s*(?:"([^"\r\n]*)"|([^"<>\r\n]*?))\s*<([^<>\s]+)>\s*$/;

/** A bare e-mail address (what a recipient is). */
export function isMailAddress(value: string): boolean {
  return ADDRESS.test(value);
}

/** A bare address or `Name <address>` (what a sender or Reply-To is). */
export function isMailbox(value: string): boolean {
  if (/[\r\n]/.test(value)) return false;
  const named = NAMED.exec(value);
  return named ? isMailAddress(named[3]!) : isMailAddress(value.trim());
}

/** The address part of a mailbox: `no-reply@example.com` for `Example <no-reply@example.com>`. */
export function mailboxAddress(value: string): string {
  return NAMED.exec(value)?.[3] ?? value.trim();
}

/** An http(s) URL with `{token}` in it. */
const linkTemplate = z.string().refine((value) => {
  if (!value.includes('{token}')) return false;
  try {
    const url = new URL(value.replaceAll('{token}', 'x'));
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}, 'must be an http(s) URL with {token} where the token goes, e.g. "https://app.example.com/reset?token={token}"');

const mailbox = z.string().refine(isMailbox, 'must be an address like no-reply@example.com or "Example <no-reply@example.com>"');

/**
 * `mail.*`: outgoing mail (README "Mail"). Off by default. `smtp` sends through `smtpUrl`
 * (smtp:// upgrades with STARTTLS when the server offers it, smtps:// is TLS from the first
 * byte); `log` writes each message's recipient and subject to the log instead (never its body);
 * `off` sends nothing. The URL may hold a password: in a file, write it as "env:NAME".
 */
export const mailSchema = z
  .strictObject({
    transport: z.enum(['smtp', 'log', 'off']).default('off'),
    smtpUrl: z
      .string()
      .refine((value) => {
        try {
          const url = new URL(value);
          return (url.protocol === 'smtp:' || url.protocol === 'smtps:') && url.hostname !== '';
        } catch {
          return false;
        }
      }, 'must be a URL like smtp://user:password@host:587 (STARTTLS when offered) or smtps://user:password@host:465 (TLS)')
      .optional(),
    from: mailbox.optional(),
    replyTo: mailbox.optional(),
    productName: z
      .string()
      .min(1)
      .max(80)
      .refine((value) => !/[\r\n]/.test(value), 'must be one line')
      .default('authctl'),
    // A folder of <kind>.subject, <kind>.txt and <kind>.html files that replace the built-in
    // templates of those kinds (each file on its own; missing ones fall back). Relative to the
    // working directory.
    templatesDir: z.string().min(1).optional(),
    // A PEM file of the CA (or the self-signed certificate) to trust for the SMTP server's TLS,
    // instead of the system's CAs. Relative to the working directory.
    tlsCaFile: z.string().min(1).optional(),
    // false accepts any certificate (development only: anyone on the path can read the mail).
    tlsRejectUnauthorized: z.boolean().default(true),
    // smtp:// only: refuse to send when the server does not offer STARTTLS.
    requireTls: z.boolean().default(false),
    // Each wait for the SMTP server (connecting, its greeting, every reply) gives up after this.
    timeoutMs: z.number().int().min(500).max(120_000).default(10_000),
    // Delivery attempts: 1 + retryLimit, the delay doubling from retryDelaySeconds up to
    // retryDelayMaxSeconds (with the defaults, about an hour in all), then the dead-letter queue.
    retryLimit: z.number().int().min(0).max(50).default(8),
    retryDelaySeconds: z.number().int().min(1).max(3_600).default(15),
    retryDelayMaxSeconds: z.number().int().min(1).max(86_400).default(1_800),
    // An attempt still running after this long is given up and retried (also how long the
    // message of a worker that died mid-send waits before another worker takes it over).
    jobTimeoutSeconds: z.number().int().min(1).max(3_600).default(120),
    // Where the links in messages point. Unset: authctl's own small pages (publicUrl, else
    // tokens.issuer). Set to an app's page to handle them there, with {token} where the token goes:
    // "https://app.example.com/reset?token={token}"; the page then POSTs the token to the API.
    links: z
      .strictObject({
        verifyEmail: linkTemplate.optional(),
        resetPassword: linkTemplate.optional(),
      })
      .prefault({}),
  })
  .superRefine((mail, ctx) => {
    if (mail.transport === 'smtp' && !mail.smtpUrl) {
      ctx.addIssue({
        code: 'custom',
        path: ['smtpUrl'],
        message:
          'required when mail.transport is "smtp": set AUTHCTL_SMTP_URL (or mail.smtpUrl, e.g. "env:AUTHCTL_SMTP_URL") to smtp://user:password@host:587 or smtps://…:465, or set mail.transport to "off"',
      });
    }
    if (mail.transport !== 'off' && !mail.from) {
      ctx.addIssue({
        code: 'custom',
        path: ['from'],
        message:
          `required when mail.transport is "${mail.transport}": ` + 'set AUTHCTL_MAIL_FROM (or mail.from) to the sender, e.g. "Example <no-reply@example.com>"',
      });
    }
    if (mail.retryDelayMaxSeconds < mail.retryDelaySeconds) {
      ctx.addIssue({ code: 'custom', path: ['retryDelayMaxSeconds'], message: 'must be at least mail.retryDelaySeconds' });
    }
  })
  .prefault({});

export type MailConfig = z.output<typeof mailSchema>;
