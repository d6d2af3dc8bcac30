/**
 * Service clients (README "Service clients"): the credentials a back-end service presents to
 * `POST /oauth/introspect` and `POST /oauth/revoke` (RFC 7662, RFC 7009). The secret is shown once,
 * at creation or rotation, and stored hashed; clients replicate to every peer region.
 */
import { z } from 'zod';
import { CLIENT_SCOPES, type ClientScope } from '../../model/service-client.js';

/** What a client may do. */
export { CLIENT_SCOPES, type ClientScope };

/** A client as admins see it (never its secret or hash). */
export interface ServiceClientView {
  /** `client_id` in OAuth terms. */
  id: string;
  name: string;
  scopes: ClientScope[];
  homeRegion: string;
  createdAt: string;
  secretRotatedAt: string;
}

/** The answer of create and rotate-secret: the secret, in clear, this once. */
export interface IssuedClientSecret {
  client: ServiceClientView;
  secret: string;
}

export const clientScopeSchema = z.enum(CLIENT_SCOPES as [ClientScope, ...ClientScope[]]);

/** {@link ServiceClientView} as a response body. */
export const serviceClientViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  scopes: z.array(clientScopeSchema),
  homeRegion: z.string(),
  createdAt: z.string(),
  secretRotatedAt: z.string(),
});

/** {@link IssuedClientSecret} as a response body. */
export const issuedClientSecretSchema = z.object({ client: serviceClientViewSchema, secret: z.string() });

/**
 * What `create` accepts: a name people recognise (1–100 characters, no control characters; not
 * unique) and one or more scopes, each at most once.
 */
export const createClientSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1, 'the name must not be empty')
    .max(100, 'the name must be at most 100 characters')
    .regex(/^[^\p{Cc}\p{Cf}]*$/u, 'the name must not contain control characters'),
  scopes: z.array(clientScopeSchema).min(1, 'a client needs at least one scope'),
});

export interface ClientService {
  create(name: string, scopes: ClientScope[]): Promise<IssuedClientSecret>;
  list(): Promise<ServiceClientView[]>;
  /** Throws not_found for an unknown id. */
  get(id: string): Promise<ServiceClientView>;
  /** A new secret; the old one stops working at once here, and in peers when the change replicates. */
  rotateSecret(id: string): Promise<IssuedClientSecret>;
  delete(id: string): Promise<void>;
  /**
   * The client whose id and secret these are, or undefined. Costs the same whether the id is
   * unknown, the secret wrong or right (no timing oracle), and reads no database on the hot path.
   */
  authenticate(clientId: string, secret: string): Promise<ServiceClientView | undefined>;
}
