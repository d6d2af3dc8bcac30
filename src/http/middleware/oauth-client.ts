import type { Context, Middleware } from 'koa';
import type { ClientScope, ClientService, ServiceClientView } from '../../core/clients/client-service.js';
import { AppError } from '../../platform/errors.js';
import type { ClientRateLimit } from './oauth-rate-limit.js';

/** How a client presented its credentials (RFC 8414 `*_endpoint_auth_methods_supported`). */
export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

export interface ClientCredentials {
  clientId: string;
  secret: string;
  method: ClientAuthMethod;
}

// RFC 7617 token68 of Basic: base64 with its padding. Far longer than any id:secret pair is refused unread.
const BASIC = /^basic +([A-Za-z0-9+/]{1,1024}={0,2})$/i;

function invalidClient(detail: string): AppError {
  return new AppError('invalid_client', detail);
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before they go into Basic (`+` is a space). */
function formDecode(part: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    throw invalidClient('the client credentials in the Authorization header are not form-urlencoded');
  }
}

/**
 * The client credentials of a request, from HTTP Basic (`client_secret_basic`) or the form's
 * `client_id` and `client_secret` (`client_secret_post`); `undefined` when it has none (a
 * `client_id` alone authenticates nothing). Two methods at once are `invalid_request` (RFC 6749
 * §2.3); an Authorization header of another scheme, or a Basic one that does not decode, is
 * `invalid_client`.
 */
export function clientCredentials(ctx: Context, form: Map<string, string>): ClientCredentials | undefined {
  const header = ctx.get('authorization');
  const postedSecret = form.get('client_secret');
  const postedId = form.get('client_id');
  if (header !== '') {
    if (postedSecret !== undefined)
      throw new AppError('invalid_request', 'send the client credentials once: in the Authorization header or in the form, not both');
    const match = BASIC.exec(header);
    if (!match) throw invalidClient('client authentication must use HTTP Basic (client_secret_basic) or the form (client_secret_post)');
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 1) throw invalidClient('the Basic credentials must be client_id:client_secret');
    const clientId = formDecode(decoded.slice(0, colon));
    // A client_id in the form too is tolerated when it names the same client (some libraries send both).
    if (postedId !== undefined && postedId !== clientId)
      throw new AppError('invalid_request', 'the client_id of the form differs from the Authorization header');
    return { clientId, secret: formDecode(decoded.slice(colon + 1)), method: 'client_secret_basic' };
  }
  if (postedSecret === undefined) return undefined;
  if (postedId === undefined || postedId === '') throw invalidClient('client_secret needs its client_id');
  return { clientId: postedId, secret: postedSecret, method: 'client_secret_post' };
}

export interface OAuthClientOptions {
  clients: Pick<ClientService, 'authenticate'>;
  /** The scope the endpoint requires of a client. */
  scope: ClientScope;
  /** Whether a request without credentials is refused (`invalid_client`) or passes on with no client. */
  required: boolean;
  /** Applied to each authenticated client (introspection). */
  rateLimit?: ClientRateLimit;
}

/**
 * Authenticates the calling service client into `ctx.state.client` (reads `ctx.state.form`: after
 * oauthForm). Wrong, unknown or malformed credentials are `401 invalid_client` — the same answer
 * and, by ClientService, the same time whichever part was wrong; a client without the scope is
 * `403 unauthorized_client`. Neither the secret nor the header is ever logged or echoed.
 */
export function oauthClient(options: OAuthClientOptions): Middleware {
  return async function oauthClientMiddleware(ctx, next) {
    const credentials = clientCredentials(ctx, ctx.state.form as Map<string, string>);
    if (!credentials) {
      if (options.required) throw invalidClient('client authentication is required');
      await next();
      return;
    }
    const client: ServiceClientView | undefined = await options.clients.authenticate(credentials.clientId, credentials.secret);
    if (!client) throw invalidClient('client authentication failed');
    if (!client.scopes.includes(options.scope)) throw new AppError('unauthorized_client', `this client lacks the scope "${options.scope}"`);
    options.rateLimit?.take(client.id);
    ctx.state.client = client;
    await next();
  };
}
