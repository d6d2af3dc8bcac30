import { z } from 'zod';

/**
 * One user as `authctl user export` writes it and `authctl user import --format ndjson` reads it
 * (one JSON object per line; the CSV format has the same fields as columns, identities as JSON).
 * The export of a region re-imports into another losslessly: this is how a region is seeded or
 * restored (README "Moving users in and out"). Never second factors or recovery codes: an
 * imported user enrols again.
 */
export const portableIdentitySchema = z.strictObject({
  provider: z.string().min(1).max(32),
  subject: z.string().min(1).max(255),
  email: z.string().max(320).nullable().optional(),
  emailVerified: z.boolean().optional(),
});

export const portableUserSchema = z.strictObject({
  /** Kept when it is a UUID (a rerun finds the same user); otherwise one is derived from it. */
  id: z.string().min(1).max(255).optional(),
  username: z.string().max(256).nullable().optional(),
  email: z.string().max(320).nullable().optional(),
  emailVerified: z.boolean().optional(),
  /** When the address was verified (ISO 8601); `emailVerified: true` without it means "at import". */
  emailVerifiedAt: z.iso.datetime({ offset: true }).nullable().optional(),
  /** A hash string of src/core/users/hash-formats.ts (argon2id as a standard PHC string); null: no password. */
  passwordHash: z.string().max(1024).nullable().optional(),
  disabled: z.boolean().optional(),
  createdAt: z.iso.datetime({ offset: true }).optional(),
  /** The user's home region: kept by an import (a seeded region knows whose users they are); absent, the importing region. */
  homeRegion: z.string().max(32).optional(),
  identities: z.array(portableIdentitySchema).max(100).optional(),
});

export type PortableUser = z.infer<typeof portableUserSchema>;
export type PortableIdentity = z.infer<typeof portableIdentitySchema>;
