import type { Context, Middleware } from 'koa';
import type { Logger } from '../../platform/logger.js';
import type { Metrics } from '../../platform/metrics.js';

/**
 * One log line (`http.request`) and one histogram observation per request, labelled by the
 * route template (`/v1/sessions/:id`, never the raw path, to keep label cardinality bounded).
 * Runs outside the problem-details middleware, so it sees the final status.
 */
export function accessLog(log: Logger, metrics: Metrics): Middleware {
  const logRequest = (ctx: Context, label: string, seconds: number) => {
    const principal = ctx.state.principal as { userId?: string; sessionId?: string } | undefined;
    log.info(`${ctx.method} ${label} ${ctx.status}`, {
      event: 'http.request',
      method: ctx.method,
      route: label,
      status: ctx.status,
      durationMs: Math.round(seconds * 100_000) / 100,
      ...(principal?.userId ? { userId: principal.userId, sessionId: principal.sessionId } : {}),
    });
  };
  return async function accessLogMiddleware(ctx, next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const route = (ctx as { _matchedRoute?: string | RegExp })._matchedRoute;
      const label = typeof route === 'string' ? route : 'unmatched';
      metrics.httpDuration.observe({ method: ctx.method, route: label, status: String(ctx.status) }, seconds);
      // Checked here, not left to winston: building the entry costs on every request.
      if (log.isInfoEnabled()) logRequest(ctx, label, seconds);
    }
  };
}
