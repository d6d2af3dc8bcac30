import Koa from 'koa';
import type { Container } from '../container.js';
import { problemDetails } from './middleware/problem.js';
import { accessLog } from './middleware/access-log.js';
import { requestId } from './middleware/request-id.js';
import { authRoutes } from './routes/auth.js';
import { meRoutes } from './routes/me.js';
import { regionRoutes } from './routes/regions.js';
import { systemRoutes } from './routes/system.js';

/** The Koa application of one region's server; `app.callback()` is what tests drive. */
export function createApp(container: Container): Koa {
  const app = new Koa({ proxy: false });
  app.silent = true; // errors are logged by problemDetails, once, with the request id
  app.use(requestId(container.requestContext));
  app.use(accessLog(container.log, container.metrics));
  app.use(async function securityHeaders(ctx, next) {
    ctx.set('X-Content-Type-Options', 'nosniff');
    // Token responses and user data must never sit in a shared cache (RFC 6749 §5.1).
    if (ctx.path.startsWith('/v1/')) ctx.set('Cache-Control', 'no-store');
    await next();
  });
  app.use(problemDetails(container.log));
  for (const router of [authRoutes(container), meRoutes(container), systemRoutes(container), regionRoutes(container)]) {
    app.use(router.routes());
    // Not `throw: true`: @koa/router sets the Allow header (RFC 9110 §15.5.6) only when it does
    // not throw; problemDetails turns the bare 405 into a problem response.
    app.use(router.allowedMethods());
  }
  return app;
}
