/**
 * Service clients (README "Service clients"): the credentials a back-end service presents to
 * `POST /oauth/introspect` and `POST /oauth/revoke` (RFC 7662, RFC 7009). The secret is shown once,
 * at creation or rotation, and stored hashed; clients replicate to every peer region.
 */

/** What a client may do. */
export type ClientScope = 'introspect' | 'revoke';
export const CLIENT_SCOPES: readonly ClientScope[] = ['introspect', 'revoke'];

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
