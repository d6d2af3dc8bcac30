/** A signing key of the region's key ring; the private half is sealed under the server secret. */
export interface SigningKeyRecord {
  kid: string;
  alg: string;
  publicJwk: Record<string, unknown>;
  privateJwkEncrypted: string | null;
  homeRegion: string;
  createdAt: Date;
  activatesAt: Date;
  retiresAt: Date | null;
}
