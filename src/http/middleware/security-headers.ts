import cors from '@koa/cors';
import type { Middleware } from 'koa';

/**
 * Response headers of the OWASP REST Security cheat sheet for a JSON API: no MIME sniffing, no
 * framing, no referrer, no active content; and `Cache-Control: no-store` on every `/v1` response,
 * so tokens and user data never sit in a shared or browser cache (RFC 6749 §5.1). Koa sends no
 * `X-Powered-By`; tests check it stays that way.
 */
export function securityHeaders(): Middleware {
  return async function securityHeadersMiddleware(ctx, next) {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    if (ctx.path.startsWith('/v1/')) ctx.set('Cache-Control', 'no-store');
    await next();
  };
}

/**
 * CORS for the configured browser origins only (`http.corsOrigins`). Any other origin gets no
 * CORS headers at all, so the browser blocks it; no wildcard, and no credentials (the API takes
 * Bearer tokens, never cookies).
 */
export function corsAllowList(origins: readonly string[]): Middleware {
  // Origins compare by their serialization (scheme://host[:port]), whatever the config spelled.
  const allowed = new Set(origins.map((origin) => new URL(origin).origin));
  return cors({
    origin: (ctx) => {
      const origin = ctx.get('origin');
      return allowed.has(origin) ? origin : '';
    },
    // PATCH: renaming a passkey (PATCH /v1/me/passkeys/:id) from the app's page.
    allowMethods: ['GET', 'POST', 'PATCH', 'DELETE'],
    allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
    exposeHeaders: ['X-Request-Id', 'Retry-After', 'WWW-Authenticate'],
    maxAge: 600,
  });
}
