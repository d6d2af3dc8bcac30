import { AsyncLocalStorage } from 'node:async_hooks';

/** What every log line written while serving a request carries. */
export interface RequestContext {
  requestId: string;
}

/**
 * Carries the request id through everything a request awaits (services, repositories, the
 * cache), so log lines written far from the HTTP layer still name their request. One per
 * container; the HTTP middleware enters it, the logger reads it.
 */
export class RequestContextStore extends AsyncLocalStorage<RequestContext> {}
