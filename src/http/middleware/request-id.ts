import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { RequestContextStore } from '../../platform/request-context.js';

// Echo a client's id only when it is short and plain, so it is safe to log and to reflect.
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Every response carries `X-Request-Id`: the client's, when sane, else a fresh UUID. The id is
 * also entered into the request context, so every log line written while serving it names it.
 */
export function requestId(context: RequestContextStore): Middleware {
  return async function requestIdMiddleware(ctx, next) {
    const incoming = ctx.get('x-request-id');
    const id = SANE_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = id;
    ctx.set('X-Request-Id', id);
    await context.run({ requestId: id }, next);
  };
}
