import { pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto';
import { hash as bcryptHash } from '@node-rs/bcrypt';
import argon2 from 'argon2';
import { SUPABASE_COLUMNS } from '../../src/admin/import/foreign-sources.js';
import type { PortableUser } from '../../src/admin/portable-user.js';

/**
 * Import fixtures made by the real algorithms, in each source's documented export shape
 * (README "### Import"): bcrypt through @node-rs/bcrypt, PBKDF2 and scrypt through node:crypto,
 * argon2 through the argon2 package. Low costs: the tests check formats, not strength.
 */

const b64 = (bytes: Buffer) => bytes.toString('base64');
const unpadded = (bytes: Buffer) => b64(bytes).replace(/=+$/, '');

export const bcrypt = (password: string): Promise<string> => bcryptHash(password, 4);

export async function argon2id(password: string): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id, memoryCost: 1024, timeCost: 1, parallelism: 1 });
}

export function scryptPhc(password: string): string {
  const salt = randomBytes(16);
  const digest = scryptSync(password, salt, 32, { N: 1024, r: 8, p: 1 });
  return `$scrypt$ln=10,r=8,p=1$${unpadded(salt)}$${unpadded(digest)}`;
}

export function pbkdf2PhcOf(password: string, digest: 'sha256' | 'sha512' = 'sha256', iterations = 1000): string {
  const salt = randomBytes(16);
  const key = pbkdf2Sync(password, salt, iterations, digest === 'sha256' ? 32 : 64, digest);
  return `$pbkdf2-${digest}$i=${iterations}$${unpadded(salt)}$${unpadded(key)}`;
}

export function djangoPbkdf2(password: string, iterations = 1000): string {
  const salt = randomBytes(9).toString('hex');
  return `pbkdf2_sha256$${iterations}$${salt}$${b64(pbkdf2Sync(password, salt, iterations, 32, 'sha256'))}`;
}

/** Recomputes a `$pbkdf2-<digest>$i=…$salt$digest` string for `password`: true when it matches (the conversion kept every part). */
export function pbkdf2PhcMatches(phc: string, password: string): boolean {
  const [, name, params, salt, digest] = phc.split('$') as [string, string, string, string, string];
  const algorithm = name.replace('pbkdf2-', '');
  const expected = Buffer.from(digest, 'base64');
  const key = pbkdf2Sync(password, Buffer.from(salt, 'base64'), Number(params.slice(2)), expected.length, algorithm);
  return key.equals(expected);
}

export const ndjson = (records: unknown[]): string => records.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** The CSV of `--format csv`: a header of the given columns, identities as a JSON cell, quotes doubled. */
export function portableCsv(columns: string[], users: PortableUser[]): string {
  const cell = (v: unknown) => {
    if (v === undefined || v === null) return '';
    const text = typeof v === 'string' ? v : typeof v === 'boolean' ? String(v) : JSON.stringify(v);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [columns.join(','), ...users.map((u) => columns.map((c) => cell((u as Record<string, unknown>)[c])).join(','))].join('\n') + '\n';
}

/* Keycloak: `kc.sh export` realm JSON (RealmRepresentation), credentials as Keycloak 12+ writes them. */

export interface KeycloakUser {
  id: string;
  username: string;
  email?: string;
  emailVerified?: boolean;
  enabled?: boolean;
  createdTimestamp?: number;
  credentials?: unknown[];
  federatedIdentities?: Array<{ identityProvider: string; userId: string; userName: string }>;
  serviceAccountClientLink?: string;
  requiredActions?: string[];
  realmRoles?: string[];
}

export function keycloakPbkdf2Credential(password: string, algorithm: 'pbkdf2-sha256' | 'pbkdf2-sha512' | 'pbkdf2' = 'pbkdf2-sha256', iterations = 27_500) {
  const salt = randomBytes(16);
  const digest = algorithm === 'pbkdf2-sha512' ? 'sha512' : algorithm === 'pbkdf2' ? 'sha1' : 'sha256';
  // Keycloak's derived key sizes: 512 bits (pbkdf2, pbkdf2-sha256), 1024 bits (pbkdf2-sha512) — hence the long values.
  const value = pbkdf2Sync(password, salt, iterations, algorithm === 'pbkdf2-sha512' ? 128 : 64, digest);
  return {
    id: '6f0b8c60-4d1c-4d7e-9d36-2f8f1e2b7a11',
    type: 'password',
    userLabel: 'My password',
    createdDate: 1_700_000_000_000,
    secretData: JSON.stringify({ value: b64(value), salt: b64(salt), additionalParameters: {} }),
    credentialData: JSON.stringify({ hashIterations: iterations, algorithm, additionalParameters: {} }),
  };
}

/** An argon2 credential as Keycloak 24+ writes it (Argon2PasswordHashProvider): raw digest, parameters as lists of strings. */
export async function keycloakArgon2Credential(password: string) {
  const salt = randomBytes(16);
  const raw = await argon2.hash(password, { type: argon2.argon2id, salt, memoryCost: 7168, timeCost: 5, parallelism: 1, hashLength: 32, raw: true });
  return {
    type: 'password',
    createdDate: 1_700_000_000_000,
    secretData: JSON.stringify({ value: b64(raw), salt: b64(salt), additionalParameters: {} }),
    credentialData: JSON.stringify({
      hashIterations: 5,
      algorithm: 'argon2',
      additionalParameters: { hashLength: ['32'], memory: ['7168'], type: ['id'], version: ['1.3'], parallelism: ['1'] },
    }),
  };
}

export const keycloakOtpCredential = () => ({
  type: 'otp',
  secretData: JSON.stringify({ value: 'JBSWY3DPEHPK3PXP' }),
  credentialData: JSON.stringify({ subType: 'totp', digits: 6, period: 30, algorithm: 'HmacSHA1' }),
});

/** A realm export: the realm's settings (clients, roles) before `users`, as `kc.sh export --file` writes them. */
export function keycloakRealm(users: KeycloakUser[], realm = 'acme'): string {
  return JSON.stringify(
    {
      id: realm,
      realm,
      enabled: true,
      roles: { realm: [{ id: 'r1', name: 'offline_access', composite: false }], client: {} },
      clients: [{ clientId: 'account', redirectUris: ['/realms/acme/account/*'], attributes: { 'pkce.code.challenge.method': 'S256' } }],
      users,
      identityProviders: [{ alias: 'google', providerId: 'google', enabled: true }],
      keycloakVersion: '26.0.0',
    },
    null,
    2,
  );
}

/* Supabase: the CSV of the query in README "### Import" (psql \copy … with csv header). */

export const SUPABASE_HEADER: readonly string[] = SUPABASE_COLUMNS;

export interface SupabaseRow {
  id: string;
  email: string | null;
  encrypted_password: string;
  email_confirmed_at?: string;
  created_at: string;
  banned_until?: string;
  deleted_at?: string;
  raw_app_meta_data: Record<string, unknown>;
  identities: unknown[];
}

export function supabaseCsv(rows: SupabaseRow[]): string {
  const cell = (v: unknown) => {
    if (v === undefined || v === null) return '';
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return (
    [SUPABASE_HEADER.join(','), ...rows.map((r) => SUPABASE_HEADER.map((c) => cell((r as unknown as Record<string, unknown>)[c])).join(','))].join('\n') + '\n'
  );
}

/* Auth0: a users-exports job's NDJSON, and the password-hash export of Auth0 support. */

export function auth0ExportLine(user: {
  oid: string;
  email: string;
  email_verified?: boolean;
  username?: string;
  created_at?: string;
  blocked?: boolean;
  social?: { provider: string; user_id: string };
}) {
  const identities = user.social
    ? [{ provider: user.social.provider, user_id: user.social.user_id, connection: user.social.provider, isSocial: true }]
    : [{ provider: 'auth0', user_id: user.oid, connection: 'Username-Password-Authentication', isSocial: false }];
  return {
    user_id: user.social ? `${user.social.provider}|${user.social.user_id}` : `auth0|${user.oid}`,
    email: user.email,
    email_verified: user.email_verified ?? false,
    ...(user.username ? { username: user.username } : {}),
    created_at: user.created_at ?? '2021-03-04T05:06:07.890Z',
    ...(user.blocked !== undefined ? { blocked: user.blocked } : {}),
    identities,
    name: user.email,
  };
}

export function auth0PasswordLine(oid: string, email: string, passwordHash: string) {
  return {
    _id: { $oid: oid },
    email_verified: true,
    email,
    passwordHash,
    password_set_date: { $date: '2021-03-04T05:06:07.890Z' },
    tenant: 'acme',
    connection: 'Username-Password-Authentication',
    _tmp_is_unique: true,
    identifiers: [{ type: 'email', value: email, verified: true }],
  };
}
