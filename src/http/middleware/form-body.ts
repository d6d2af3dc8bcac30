import type { Context, Middleware } from 'koa';
import getRawBody from 'raw-body';
import { AppError } from '../../platform/errors.js';
import { jsonBody } from './json-body.js';

/**
 * The request body as UTF-8 text, at most `limit` bytes: a declared length over it is refused
 * before anything is read (413), as is a chunked body once it passes the limit.
 */
export async function readBodyText(ctx: Context, limit: number): Promise<string> {
  const declared = ctx.request.length;
  if (declared !== undefined && declared > limit) throw new AppError('payload_too_large', `the request body is larger than ${limit} bytes`);
  try {
    return await getRawBody(ctx.req, { limit, length: declared, encoding: 'utf-8' });
  } catch (err) {
    if ((err as { type?: string }).type === 'entity.too.large')
      throw new AppError('payload_too_large', `the request body is larger than ${limit} bytes`, { cause: err });
    throw new AppError('invalid_request', 'the request body could not be read', { cause: err });
  }
}

/**
 * A JSON body, or — for the routes authctl's own pages post to — an HTML form
 * (`application/x-www-form-urlencoded`), read into `ctx.state.body` as an object of its fields
 * (the first value of each) with `ctx.state.form = true`, so the route answers with a page.
 */
export function jsonOrFormBody(limit: number): Middleware {
  const json = jsonBody(limit);
  return async function jsonOrFormBodyMiddleware(ctx, next) {
    if (!ctx.is('application/x-www-form-urlencoded')) {
      await json(ctx, next);
      return;
    }
    const text = await readBodyText(ctx, limit);
    const fields: Record<string, string> = {};
    for (const [name, value] of new URLSearchParams(text)) if (!(name in fields) && name !== '__proto__') fields[name] = value;
    ctx.state.body = fields;
    ctx.state.form = true;
    await next();
  };
}
