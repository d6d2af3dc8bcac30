import Router from '@koa/router';
import type { Container } from '../../container.js';

/** GET /docs: the interactive API reference, its assets served from this server (`http.docs`). */
export function docsRoutes(_c: Container): Router {
  return new Router();
}
