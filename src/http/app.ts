import type Router from '@koa/router';
import Koa from 'koa';
import type { Container } from '../container.js';
import { problemDetails } from './middleware/problem.js';
import { accessLog } from './middleware/access-log.js';
import { requestId } from './middleware/request-id.js';
import { corsAllowList, securityHeaders } from './middleware/security-headers.js';
import { authRoutes } from './routes/auth.js';
import { discoveryRoutes } from './routes/discovery.js';
import { docsRoutes } from './routes/docs.js';
import { oauthRoutes } from './routes/oauth.js';
import { emailRoutes } from './routes/email.js';
import { meRoutes } from './routes/me.js';
import { mfaRoutes } from './routes/mfa.js';
import { otpRoutes } from './routes/otp.js';
import { oidcRoutes } from './routes/oidc.js';
import { identityRoutes } from './routes/identities.js';
import { passkeyRoutes } from './routes/passkeys.js';
import { regionRoutes } from './routes/regions.js';
import { systemRoutes } from './routes/system.js';
import { twoStepRoutes } from './routes/two-step.js';

/** The Koa application of one region's server; `app.callback()` is what tests drive. */
export function createApp(container: Container): Koa {
  // X-Forwarded-For only when configured, and then only the entries our own proxies appended.
  const app = new Koa({ proxy: container.config.http.trustProxy, maxIpsCount: container.config.http.proxyHops });
  app.silent = true; // errors are logged by problemDetails, once, with the request id (problems; OAuth errors on /oauth/*)
  app.use(requestId(container.requestContext));
  app.use(accessLog(container.log, container.metrics));
  app.use(securityHeaders());
  app.use(problemDetails(container.log));
  if (container.config.http.corsOrigins.length > 0) app.use(corsAllowList(container.config.http.corsOrigins));
  for (const router of routers(container)) {
    app.use(router.routes());
    // Not `throw: true`: @koa/router sets the Allow header (RFC 9110 §15.5.6) only when it does
    // not throw; problemDetails turns the bare 405 into a problem response.
    app.use(router.allowedMethods());
  }
  return app;
}

/** Every router of the app, in order: what `createApp` mounts and what the OpenAPI document must cover. */
export function routers(container: Container): Router[] {
  return [
    authRoutes(container),
    twoStepRoutes(container),
    emailRoutes(container),
    otpRoutes(container),
    oidcRoutes(container),
    meRoutes(container),
    mfaRoutes(container),
    identityRoutes(container),
    passkeyRoutes(container),
    systemRoutes(container),
    regionRoutes(container),
    discoveryRoutes(container),
    oauthRoutes(container),
    docsRoutes(container),
  ];
}
