import type { Middleware } from 'koa';
import { AppError } from '../../platform/errors.js';
import { readBodyText } from './form-body.js';

/**
 * The body of an OAuth endpoint: `application/x-www-form-urlencoded` in UTF-8 (RFC 7662 §2.1,
 * RFC 7009 §2.1), read into `ctx.state.form` as a map of its parameters. Anything else — JSON
 * included — is `invalid_request` (RFC 6749 has no 415), as is a parameter given twice (RFC 6749
 * §3.1: parameters "MUST NOT be included more than once"); a body over `limit` bytes is refused
 * before it is read in full (413). No body at all is an empty form.
 */
export function oauthForm(limit: number): Middleware {
  return async function oauthFormMiddleware(ctx, next) {
    const declared = ctx.request.length;
    const chunked = ctx.get('transfer-encoding') !== '';
    if (!chunked && (declared === undefined || declared === 0)) {
      ctx.state.form = new Map<string, string>();
      await next();
      return;
    }
    const encoding = ctx.get('content-encoding').trim().toLowerCase();
    if (encoding !== '' && encoding !== 'identity') throw new AppError('invalid_request', 'Content-Encoding is not supported: send the form uncompressed');
    if (!ctx.is('application/x-www-form-urlencoded')) {
      throw new AppError('invalid_request', 'the body must be a form (Content-Type: application/x-www-form-urlencoded)');
    }
    const charset = ctx.request.charset;
    if (charset && charset.toLowerCase() !== 'utf-8') throw new AppError('invalid_request', 'the form must be UTF-8');
    const text = await readBodyText(ctx, limit);
    // A Map: parameter names are data, never object keys (`__proto__`, `constructor`).
    const form = new Map<string, string>();
    for (const [name, value] of new URLSearchParams(text)) {
      if (form.has(name)) throw new AppError('invalid_request', `the parameter ${printable(name)} is given more than once`);
      form.set(name, value);
    }
    ctx.state.form = form;
    await next();
  };
}

/** A parameter name as it may appear in an error_description (bounded, printable). */
function printable(name: string): string {
  const plain = name.replace(/[^\x21\x23-\x5b\x5d-\x7e]/g, '?');
  return plain.length > 40 ? `${plain.slice(0, 40)}…` : plain;
}

/** The form as a plain object, for a zod schema (null prototype: `__proto__` is just a name). */
export function formFields(form: Map<string, string>): Record<string, string> {
  const fields = Object.create(null) as Record<string, string>;
  for (const [name, value] of form) fields[name] = value;
  return fields;
}
