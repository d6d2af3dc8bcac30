import { createHmac, createPublicKey, KeyObject, sign, webcrypto } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';

/** Signs the JWS signing input (`header.payload`) and returns the raw signature. */
export type Signer = (input: Uint8Array) => Promise<Uint8Array> | Uint8Array;

const b64json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * Builds a compact JWS from any header and payload, however wrong: no library in the way, so
 * tests can forge what a conforming signer would refuse to produce (unknown `crit`, `alg:none`, …).
 */
export async function forgeJwt(header: Record<string, unknown>, payload: Record<string, unknown>, signer?: Signer): Promise<string> {
  const input = `${b64json(header)}.${b64json(payload)}`;
  const signature = signer ? Buffer.from(await signer(Buffer.from(input))).toString('base64url') : '';
  return `${input}.${signature}`;
}

export function hmacSigner(key: string | Uint8Array, bits: 256 | 384 | 512 = 256): Signer {
  return (input) => createHmac(`sha${bits}`, key).update(input).digest();
}

/** A WebCrypto private key (Ed25519 or P-256) as a Signer. */
export function cryptoKeySigner(key: unknown, alg: 'EdDSA' | 'ES256'): Signer {
  if (key instanceof KeyObject) {
    return (input) => Promise.resolve(new Uint8Array(alg === 'EdDSA' ? sign(null, input, key) : sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' })));
  }
  const params = alg === 'EdDSA' ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' };
  return async (input) => new Uint8Array(await webcrypto.subtle.sign(params, key as webcrypto.CryptoKey, input));
}

export function decodePart(token: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[index]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Replaces the payload of a signed token, keeping its header and signature. */
export function swapPayload(token: string, payload: Record<string, unknown>): string {
  const [header, , signature] = token.split('.');
  return `${header}.${b64json(payload)}.${signature}`;
}

/**
 * The byte strings an HMAC-with-public-key attacker would try as the secret: the raw key, the
 * JWK `x` text, the JWK JSON (as published and minimal), and the SPKI PEM / DER exports.
 */
export function publicKeyAsSecrets(jwk: JWK): Array<[string, Uint8Array | string]> {
  const minimal = { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  const keyObject = createPublicKey({ key: minimal, format: 'jwk' });
  const pem = keyObject.export({ type: 'spki', format: 'pem' }) as string;
  return [
    ['raw public key bytes', Buffer.from(jwk.x!, 'base64url')],
    ['the JWK "x" text', jwk.x!],
    ['the published JWK JSON', JSON.stringify(jwk)],
    ['the minimal JWK JSON', JSON.stringify(minimal)],
    ['the SPKI PEM', pem],
    ['the SPKI PEM without trailing newline', pem.trimEnd()],
    ['the SPKI DER', keyObject.export({ type: 'spki', format: 'der' })],
  ];
}

/** A local HTTP server that records every request: the target of `jku`/`x5u` headers. */
export interface Honeypot {
  url: string;
  hits: Array<{ method: string; url: string }>;
  close(): Promise<void>;
}

export async function startHoneypot(body: unknown): Promise<Honeypot> {
  const hits: Honeypot['hits'] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    hits.push({ method: req.method ?? '', url: req.url ?? '' });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
