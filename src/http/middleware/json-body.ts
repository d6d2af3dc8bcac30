import type { Middleware } from 'koa';
import getRawBody from 'raw-body';
import { AppError } from '../../platform/errors.js';
import { findHostileJson } from '../../security/hostile-json.js';

/**
 * Reads a JSON body into `ctx.state.body` (undefined when there is none). Only
 * `application/json` (or `+json`) in UTF-8 is accepted (415 otherwise); a body over `limit`
 * bytes is refused before it is read in full (413); malformed JSON is 400.
 */
export function jsonBody(limit: number): Middleware {
  return async function jsonBodyMiddleware(ctx, next) {
    const declared = ctx.request.length;
    const chunked = ctx.get('transfer-encoding') !== '';
    if (!chunked && (declared === undefined || declared === 0)) {
      ctx.state.body = undefined;
      await next();
      return;
    }
    // We decode no content coding: a compressed body would otherwise reach JSON.parse as bytes.
    const encoding = ctx.get('content-encoding').trim().toLowerCase();
    if (encoding !== '' && encoding !== 'identity') {
      throw new AppError('unsupported_media_type', 'Content-Encoding is not supported: send the body uncompressed');
    }
    if (!ctx.is('application/json', '+json')) {
      throw new AppError('unsupported_media_type', 'the request body must be JSON (Content-Type: application/json)');
    }
    const charset = ctx.request.charset;
    if (charset && charset.toLowerCase() !== 'utf-8') {
      throw new AppError('unsupported_media_type', 'the request body must be UTF-8 JSON');
    }
    if (declared !== undefined && declared > limit) {
      throw new AppError('payload_too_large', `the request body is larger than ${limit} bytes`);
    }
    let text: string;
    try {
      text = await getRawBody(ctx.req, { limit, length: declared, encoding: 'utf-8' });
    } catch (err) {
      if ((err as { type?: string }).type === 'entity.too.large') {
        throw new AppError('payload_too_large', `the request body is larger than ${limit} bytes`, { cause: err });
      }
      throw new AppError('invalid_request', 'the request body could not be read', { cause: err });
    }
    try {
      ctx.state.body = JSON.parse(text) as unknown;
    } catch (err) {
      throw new AppError('invalid_request', 'the request body is not valid JSON', { cause: err, errors: [{ path: '', message: 'malformed JSON' }] });
    }
    const hostile = findHostileJson(ctx.state.body);
    if (hostile) throw new AppError('invalid_request', `${hostile.path || 'body'}: ${hostile.message}`, { errors: [hostile] });
    await next();
  };
}
