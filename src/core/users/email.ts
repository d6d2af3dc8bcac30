import { domainToASCII } from 'node:url';
import { isMailAddress } from '../../config/mail.js';
import { invalidRequest } from '../../platform/errors.js';

/** The longest address accepted (RFC 5321 §4.5.3.1.3 path limit, less the angle brackets). */
export const EMAIL_MAX_LENGTH = 254;

// Control characters (C0, DEL, C1), every kind of space and line break, and the format characters
// that hide in copied text (zero-width, bidi): none belongs in an address, and a CR or LF would
// let a value break out of a mail header.
const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Z}\s]/u;

function refuse(message: string, path: string): never {
  throw invalidRequest([{ path, message }], message);
}

/**
 * The stored form of an e-mail address (docs/api.md#e-mail-addresses): trimmed; exactly one `@`;
 * no control, space or format characters; the domain lower-cased and IDNA-encoded (`bücher.de`
 * → `xn--bcher-kva.de`); at most 254 characters in all and 64 before the `@`. The local part
 * keeps its case (`Bob@Example.COM` → `Bob@example.com`): mail servers may treat it as
 * case-sensitive, so the address mail goes to is the one typed. Uniqueness compares the
 * lower-cased form ({@link emailKey}). Throws `invalid_request` naming `path` otherwise.
 */
export function normalizeEmail(raw: string, path = 'email'): string {
  const trimmed = raw.trim();
  if (trimmed.length === 0) refuse('email must not be empty', path);
  if (FORBIDDEN.test(trimmed)) refuse('email must not contain spaces or control characters', path);
  const at = trimmed.indexOf('@');
  if (at <= 0 || at !== trimmed.lastIndexOf('@') || at === trimmed.length - 1)
    refuse('email must be one local part, one "@" and a domain, like bob@example.com', path);
  const local = trimmed.slice(0, at);
  const domain = domainToASCII(trimmed.slice(at + 1).toLowerCase());
  if (!domain || domain.endsWith('.')) refuse('email has no valid domain after the "@"', path);
  const address = `${local}@${domain}`;
  if (address.length > EMAIL_MAX_LENGTH) refuse(`email must be at most ${EMAIL_MAX_LENGTH} characters`, path);
  if ([...local].length > 64) refuse('email must have at most 64 characters before the "@"', path);
  if (!isMailAddress(address)) refuse('email may not contain quotes, brackets, commas, semicolons, colons or backslashes', path);
  return address;
}

/** The form uniqueness and look-ups compare: the whole address lower-cased (as `lower(email)` in SQL). */
export function emailKey(address: string): string {
  return address.toLowerCase();
}

/** `b***@example.com`: an address to show in a notice to someone else (the old address of a change). */
export function maskEmail(address: string): string {
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  return `${[...local][0] ?? ''}***${address.slice(at)}`;
}
