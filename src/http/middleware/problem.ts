import type { Context, Middleware } from 'koa';
import { AppError, type ErrorCode } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { isOAuthPath, writeOAuthError } from './oauth-errors.js';

/** Errors raised by Koa itself and by raw-body, mapped onto our catalog. */
function fromHttpError(err: { status?: number; type?: string; expose?: boolean; message?: string }): AppError | undefined {
  const status = err.status;
  if (typeof status !== 'number' || status >= 500) return undefined;
  const byStatus: Partial<Record<number, ErrorCode>> = {
    400: 'invalid_request',
    404: 'not_found',
    405: 'method_not_allowed',
    413: 'payload_too_large',
    415: 'unsupported_media_type',
  };
  const code = byStatus[status];
  if (!code) return undefined;
  const detail =
    code === 'payload_too_large'
      ? 'the request body is too large'
      : code === 'invalid_request'
        ? 'the request could not be read'
        : (err.expose && err.message) || code.replace(/_/g, ' ');
  return new AppError(code, detail, { cause: err });
}

/** The AppError a thrown value stands for (ours, or Koa's and raw-body's mapped), or undefined for a bug. */
function asAppError(err: unknown): AppError | undefined {
  return err instanceof AppError ? err : fromHttpError(err as Record<string, never>);
}

/** Logs a failed request as problemDetails does: a dependency outage as a warning, a bug in full. */
function logFailure(log: Logger, ctx: Context, err: unknown, known: AppError | undefined): void {
  if (known?.code === 'unavailable')
    log.warn('dependency unavailable', { event: 'db.unavailable', requestId: ctx.state.requestId as string, err: known.cause });
  else if (!known) log.error('unhandled error', { event: 'http.error', requestId: ctx.state.requestId as string, method: ctx.method, path: ctx.path, err });
}

/** Writes an RFC 9457 problem for `error`, with the headers its code calls for. */
export function writeProblem(ctx: Context, error: AppError): void {
  ctx.status = error.status;
  ctx.type = 'application/problem+json';
  if (error.code === 'invalid_token') {
    // RFC 6750 §3: tell the client what kind of credential failed.
    ctx.set('WWW-Authenticate', `Bearer realm="authctl", error="invalid_token", error_description="${error.detail.replace(/["\\]/g, '')}"`);
  }
  if (error.retryAfter !== undefined) ctx.set('Retry-After', String(error.retryAfter));
  if (error.extensions?.location) ctx.set('Location', error.extensions.location);
  ctx.body = {
    type: 'about:blank',
    title: error.title,
    status: error.status,
    code: error.code,
    detail: error.detail,
    ...(error.errors ? { errors: error.errors } : {}),
    ...error.extensions,
    requestId: ctx.state.requestId as string,
  };
}

/**
 * Turns every failure into a problem response — or, on `/oauth/*`, into OAuth's error format
 * (RFC 6749 §5.2, oauth-errors.ts), because standard clients parse that. Expected failures
 * (AppError) are rendered as they are; anything else is a bug: logged in full with the request
 * id, answered with a bare `internal_error` that leaks nothing. One middleware for both formats,
 * so no route pays for a second frame.
 */
export function problemDetails(log: Logger): Middleware {
  return async function problemMiddleware(ctx, next) {
    try {
      await next();
      if (ctx.body === undefined) {
        // Nothing matched: the router left a bare status (and, for 405, the Allow header).
        if (ctx.status === 404) throw new AppError('not_found', 'no such resource');
        if (ctx.status === 405 || ctx.status === 501) throw new AppError('method_not_allowed', 'this method is not allowed on this resource');
      }
    } catch (err) {
      const known = asAppError(err);
      logFailure(log, ctx, err, known);
      const error = known ?? new AppError('internal_error', 'an unexpected error occurred; quote the request id when reporting it');
      if (isOAuthPath(ctx.path)) writeOAuthError(ctx, error);
      else writeProblem(ctx, error);
    }
  };
}
