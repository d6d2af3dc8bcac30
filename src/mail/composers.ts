import type { Knex } from 'knex';
import { z } from 'zod';
import { isMailAddress } from '../config/mail.js';
import { AppError } from '../platform/errors.js';
import type { TemplateContract } from './templates.js';

/**
 * What a mail job carries besides its kind and recipient: references only (ids, a locale, a
 * flag) — never a code, token, link or body. A job row is readable by anyone with access to the
 * database (and its backups); the secret parts of a message are derived again when it is sent.
 */
export type MailRefs = Record<string, string | number | boolean | null>;

/** A message to send later, as the flows ask for it. */
export interface MailRequest<D extends MailRefs = MailRefs> {
  /** A registered kind (`test`, and the kinds later flows register). */
  kind: string;
  /** The recipient's address (`bob@example.com`; no display name). */
  to: string;
  /** The kind's references, checked against its composer's `data` schema. */
  data: D;
}

/** The payload of a `mail` job, exactly what the job row holds. */
export interface MailJobData {
  kind: string;
  to: string;
  data: MailRefs;
}

/** What a composer may use at send time. */
export interface ComposeContext {
  /** The job's id (stable across retries), or null for a direct send (`authctl mail test`). */
  jobId: string | null;
  region: string;
  productName: string;
  /** The injected clock's time. */
  now: Date;
}

/**
 * Builds one kind of message at send time, from the references its job carries.
 *
 * This is the extension point of mail. A flow that sends mail (address verification, password
 * reset, e-mail code login, …) adds:
 *
 * 1. a composer of its own kind, registered in the container
 *    (`composers.register(myComposer)`), usually built with the services it needs (e.g. the
 *    server secrets and the token repository);
 * 2. the kind's built-in templates in `builtin-templates.ts` (`subject`, `text`, `html`);
 * 3. a call to `MailQueue.enqueue(trx, { kind, to, data })` inside the transaction that creates
 *    what the message is about (e.g. the token row), so the message exists if and only if that
 *    commits.
 *
 * Rules:
 * - `data` holds references only (`{ userId, tokenId }`), never the code or link itself; the
 *   schema is strict, so a member it does not list is refused at enqueue, and `MailComposers`
 *   also refuses members named like secrets (`code`, `token`, `link`, `url`, …) and URL values.
 * - `compose()` re-derives the secret parts (e.g. the code as a MAC of the token id under the
 *   server secret) and returns the template values. It may run more than once for one job (a
 *   retry, or a worker that died after the server took the message): it must return the same
 *   values every time, so that a duplicate is an identical copy, not a second, different code.
 * - Returning `null` sends nothing and completes the job (e.g. the token was used or expired
 *   meanwhile).
 * - Throwing fails the attempt: the job is retried, then dead-lettered.
 * - Values listed in `sensitive` (codes, links) may not appear in the subject: subjects are
 *   logged (`mail.transport: "log"`, the dev terminal), bodies never are.
 */
export interface MailComposer<D extends MailRefs = MailRefs> {
  /** Lowercase letters, digits and "-", e.g. `verify-email`. A metric label: keep the set small. */
  readonly kind: string;
  /** One line for docs and errors, e.g. "address verification". */
  readonly description: string;
  /** The references of this kind's jobs (a strict object schema of primitives). */
  readonly data: z.ZodType<D>;
  /** Every template value `compose()` returns (`productName` is always added). */
  readonly placeholders: readonly string[];
  /** The placeholders that carry a code or link. */
  readonly sensitive?: readonly string[];
  compose(request: MailRequest<D>, context: ComposeContext): Promise<Readonly<Record<string, string>> | null>;
}

/**
 * Enqueues mail inside a transaction: the interface the flows are given (implemented by
 * `MailOutbox` over the job queue).
 */
export interface MailQueue {
  /** False when `mail.transport` is "off": flows then offer nothing that needs mail. */
  readonly enabled: boolean;
  /**
   * Checks the request (known kind, valid recipient, references only) and writes its job on
   * `trx`'s connection; resolves the job id. Refused with `invalid_request` when the request is
   * malformed, `bad_config` when mail is off.
   */
  enqueue(trx: Knex.Transaction, request: MailRequest): Promise<string>;
}

const KIND = /^[a-z][a-z0-9-]{0,39}$/;
/** Words that, in a member name, mean a secret or content would sit in a job row. */
const SECRET_WORDS = new Set([
  'code',
  'otp',
  'pin',
  'token',
  'secret',
  'password',
  'passwd',
  'pass',
  'key',
  'hash',
  'mac',
  'link',
  'url',
  'uri',
  'href',
  'body',
  'html',
  'text',
]);

/** `resetToken`, `verify_url`, `codeHash`: refused; `tokenId`, `userId`, `context`: references. */
export function isSecretMemberName(name: string): boolean {
  const words = (name.match(/[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+/g) ?? []).map((w) => w.toLowerCase());
  return words.at(-1) !== 'id' && words.some((w) => SECRET_WORDS.has(w));
}
const URL_VALUE = /^[a-z][a-z0-9+.-]*:\/\/|^www\./i;
const MAX_VALUE_LENGTH = 200;

/** The registry of composers by kind. */
export class MailComposers {
  private readonly byKind = new Map<string, MailComposer>();

  /** Adds a composer; a kind can be registered once. Returns the registry, for chaining. */
  register<D extends MailRefs>(composer: MailComposer<D>): this {
    if (!KIND.test(composer.kind)) throw new Error(`mail kind ${JSON.stringify(composer.kind)}: lowercase letters, digits and "-", starting with a letter`);
    if (this.byKind.has(composer.kind)) throw new Error(`mail kind ${composer.kind} is registered twice`);
    for (const name of composer.sensitive ?? []) {
      if (!composer.placeholders.includes(name)) throw new Error(`mail kind ${composer.kind}: sensitive placeholder ${name} is not one of its placeholders`);
    }
    this.byKind.set(composer.kind, composer);
    return this;
  }

  get(kind: string): MailComposer | undefined {
    return this.byKind.get(kind);
  }

  kinds(): string[] {
    return [...this.byKind.keys()];
  }

  /** What the templates of each kind may use. */
  contracts(): TemplateContract[] {
    return [...this.byKind.values()].map((c) => ({ kind: c.kind, placeholders: c.placeholders, sensitive: c.sensitive ?? [] }));
  }

  /**
   * A request as its job will hold it, or `invalid_request` naming what is wrong: an unknown
   * kind, a recipient that is not an address, data that is not references (nested, too long, a
   * secret-like member or a URL) or does not match the kind's schema.
   */
  check(request: MailRequest): MailJobData {
    const composer = this.byKind.get(request.kind);
    if (!composer) throw new AppError('invalid_request', `no mail of kind ${JSON.stringify(request.kind)} (known: ${this.kinds().join(', ')})`);
    const to = typeof request.to === 'string' ? request.to.trim() : '';
    if (!isMailAddress(to))
      throw new AppError('invalid_request', 'the recipient must be an e-mail address such as bob@example.com', {
        errors: [{ path: 'to', message: 'not an e-mail address' }],
      });
    const data: unknown = request.data ?? {};
    if (typeof data !== 'object' || data === null || Array.isArray(data))
      throw new AppError('invalid_request', `mail of kind ${request.kind}: data must be an object of references`);
    for (const [key, value] of Object.entries(data)) {
      const problem = isSecretMemberName(key)
        ? 'looks like a secret: a job row holds references only (e.g. tokenId), the composer derives codes and links at send time'
        : value !== null && !['string', 'number', 'boolean'].includes(typeof value)
          ? 'must be a string, number, boolean or null'
          : typeof value === 'number' && !Number.isFinite(value)
            ? 'must be a finite number'
            : typeof value === 'string' && value.length > MAX_VALUE_LENGTH
              ? `must be at most ${MAX_VALUE_LENGTH} characters: a reference, not content`
              : typeof value === 'string' && URL_VALUE.test(value)
                ? 'is a URL: links are built at send time, never stored in a job'
                : undefined;
      if (problem)
        throw new AppError('invalid_request', `mail of kind ${request.kind}: data.${key} ${problem}`, { errors: [{ path: `data.${key}`, message: problem }] });
    }
    const parsed = composer.data.safeParse(data);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const path = ['data', ...issue.path.map(String)].join('.');
      throw new AppError('invalid_request', `mail of kind ${request.kind}: ${path}: ${issue.message}`, {
        errors: parsed.error.issues.map((i) => ({ path: ['data', ...i.path.map(String)].join('.'), message: i.message })),
      });
    }
    return { kind: request.kind, to, data: parsed.data };
  }
}

/**
 * `test`: what `authctl mail test` sends. No secrets; its one reference is when it was asked for
 * (so every attempt of one job composes the same message).
 */
export const testComposer: MailComposer<{ requestedAt?: string | undefined }> = {
  kind: 'test',
  description: 'a test message (authctl mail test)',
  data: z.strictObject({ requestedAt: z.iso.datetime().optional() }),
  placeholders: ['region', 'requestedAt'],
  compose: async (request, context) => Promise.resolve({ region: context.region, requestedAt: request.data.requestedAt ?? context.now.toISOString() }),
};
