import { pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto';
import argon2 from 'argon2';
import bcrypt from '@node-rs/bcrypt';
import { pbkdf2Phc, type HashFormat } from '../../src/core/users/hash-formats.js';
import { standardPhc } from '../../src/core/users/password-hasher.js';
import type { TestApp } from '../helpers/app.js';

/** PHC base64: the standard alphabet without padding. */
export const phcB64 = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');

/**
 * A Keycloak realm export's password credential, as Keycloak writes it (`credentials[]` of a user:
 * `secretData` and `credentialData` are JSON in strings; the default pbkdf2-sha256 provider,
 * 27,500 iterations, a 16-byte salt and a 512-bit derived key).
 */
export function keycloakCredential(password: string): { type: string; secretData: string; credentialData: string } {
  const salt = randomBytes(16);
  const value = pbkdf2Sync(password, salt, 27_500, 64, 'sha256');
  return {
    type: 'password',
    secretData: JSON.stringify({ value: value.toString('base64'), salt: salt.toString('base64'), additionalParameters: {} }),
    credentialData: JSON.stringify({ hashIterations: 27_500, algorithm: 'pbkdf2-sha256', additionalParameters: {} }),
  };
}

/** The stored string a Keycloak credential is converted to (what `authctl user import --format keycloak` stores). */
export function fromKeycloak(credential: { secretData: string; credentialData: string }): string {
  const secret = JSON.parse(credential.secretData) as { value: string; salt: string };
  const data = JSON.parse(credential.credentialData) as { hashIterations: number; algorithm: string };
  if (data.algorithm !== 'pbkdf2-sha256') throw new Error(`unexpected algorithm ${data.algorithm}`);
  return pbkdf2Phc('sha256', data.hashIterations, secret.salt, secret.value);
}

/** Django's PBKDF2PasswordHasher.encode: base64 of pbkdf2_hmac('sha256', password, salt's UTF-8, iterations), 32 bytes. */
export function djangoHash(password: string, iterations = 10_000, salt = randomBytes(9).toString('hex')): string {
  const digest = pbkdf2Sync(Buffer.from(password, 'utf8'), Buffer.from(salt, 'utf8'), iterations, 32, 'sha256');
  return `pbkdf2_sha256$${iterations}$${salt}$${digest.toString('base64')}`;
}

export interface Fixture {
  /** What the fixture is (test titles). */
  name: string;
  format: HashFormat;
  hash: string;
}

/**
 * One stored hash of `password` per format and spelling authctl verifies, each made by the real
 * algorithm: argon2 by the argon2 package (its own m,p,t order and the standard one), bcrypt by
 * @node-rs/bcrypt, scrypt and PBKDF2 by node:crypto, Django's by Django's own construction.
 */
export async function fixtures(password: string): Promise<Fixture[]> {
  const salt = randomBytes(16);
  const argon = async (type: 0 | 1 | 2) => argon2.hash(password, { type, memoryCost: 19_456, timeCost: 2, parallelism: 1 });
  const argon2i = await argon(argon2.argon2i);
  const argon2d = await argon(argon2.argon2d);
  return [
    { name: 'argon2i, m,p,t order', format: 'argon2i', hash: argon2i },
    { name: 'argon2i, standard order', format: 'argon2i', hash: standardPhc(await argon(argon2.argon2i)) },
    { name: 'argon2d, m,p,t order', format: 'argon2d', hash: argon2d },
    { name: 'argon2d, standard order', format: 'argon2d', hash: standardPhc(await argon(argon2.argon2d)) },
    {
      name: 'argon2id with other parameters',
      format: 'argon2id',
      hash: standardPhc(await argon2.hash(password, { type: argon2.argon2id, memoryCost: 8192, timeCost: 3, parallelism: 1 })),
    },
    { name: 'bcrypt $2a$', format: 'bcrypt', hash: await bcrypt.hash(password, { cost: 10, version: '2a' }) },
    { name: 'bcrypt $2b$', format: 'bcrypt', hash: await bcrypt.hash(password, { cost: 10, version: '2b' }) },
    { name: 'bcrypt $2y$', format: 'bcrypt', hash: await bcrypt.hash(password, { cost: 10, version: '2y' }) },
    {
      name: 'scrypt (PHC)',
      format: 'scrypt',
      hash: `$scrypt$ln=14,r=8,p=1$${phcB64(salt)}$${phcB64(scryptSync(password, salt, 32, { N: 2 ** 14, r: 8, p: 1 }))}`,
    },
    {
      name: 'pbkdf2-sha256 (PHC)',
      format: 'pbkdf2-sha256',
      hash: `$pbkdf2-sha256$i=30000$${phcB64(salt)}$${phcB64(pbkdf2Sync(password, salt, 30_000, 32, 'sha256'))}`,
    },
    {
      name: 'pbkdf2-sha512 (PHC)',
      format: 'pbkdf2-sha512',
      hash: `$pbkdf2-sha512$i=25000$${phcB64(salt)}$${phcB64(pbkdf2Sync(password, salt, 25_000, 64, 'sha512'))}`,
    },
    { name: 'Keycloak pbkdf2-sha256 credential', format: 'pbkdf2-sha256', hash: fromKeycloak(keycloakCredential(password)) },
    { name: 'Django pbkdf2_sha256', format: 'django-pbkdf2-sha256', hash: djangoHash(password) },
  ];
}

/** Puts `hash` in place of the user's stored hash, as an import would have stored it. */
export async function storeHash(app: TestApp, username: string, hash: string): Promise<void> {
  const updated = await app.container.db.writer('users').where({ username }).update({ password_hash: hash });
  if (updated !== 1) throw new Error(`no user ${username}`);
}

export async function storedHash(app: TestApp, username: string): Promise<string | null> {
  const row = await app.container.db.writer('users').where({ username }).first<{ password_hash: string | null }>('password_hash');
  return row.password_hash;
}
