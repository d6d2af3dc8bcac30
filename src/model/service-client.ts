/** What a service client may do: call `/oauth/introspect` (RFC 7662), `/oauth/revoke` (RFC 7009). */
export type ClientScope = 'introspect' | 'revoke';
export const CLIENT_SCOPES: readonly ClientScope[] = ['introspect', 'revoke'];

/**
 * A service client as stored and replicated (migration 0008-service-clients). `secretHash` is
 * SHA-256 of the secret (src/core/clients/client-secret.ts), never the secret itself.
 */
export interface ServiceClientRecord {
  id: string;
  name: string;
  scopes: ClientScope[];
  secretHash: string;
  homeRegion: string;
  createdAt: Date;
  updatedAt: Date;
  secretRotatedAt: Date;
  version: number;
}
