import { createHmac, timingSafeEqual } from 'node:crypto';

/** Requests older or newer than this are refused, so a captured request cannot be replayed later. */
export const SIGNATURE_WINDOW_MS = 5 * 60_000;

export const HEADER_REGION = 'x-authctl-region';
export const HEADER_TIMESTAMP = 'x-authctl-timestamp';
export const HEADER_SIGNATURE = 'x-authctl-signature';

function mac(secret: string, origin: string, timestamp: string, body: Buffer | string): Buffer {
  return createHmac('sha256', secret).update(`authctl-replication-v1\n${origin}\n${timestamp}\n`).update(body).digest();
}

/**
 * Headers that authenticate a replication request from `origin`: HMAC-SHA256 under the secret
 * shared with that peer, over the origin, a millisecond timestamp and the exact body bytes.
 *
 * @example
 *   const headers = signRequest(peer.secret, 'eu', body, Date.now());
 */
export function signRequest(secret: string, origin: string, body: Buffer | string, nowMs: number): Record<string, string> {
  const timestamp = String(nowMs);
  return {
    [HEADER_REGION]: origin,
    [HEADER_TIMESTAMP]: timestamp,
    [HEADER_SIGNATURE]: `v1=${mac(secret, origin, timestamp, body).toString('base64url')}`,
  };
}

export type SignatureCheck = 'ok' | 'missing' | 'stale' | 'forged';

/** Checks a request's signature in constant time; `stale` outside the 5-minute window. */
export function verifyRequest(
  secret: string,
  origin: string,
  timestamp: string | undefined,
  signature: string | undefined,
  body: Buffer,
  nowMs: number,
): SignatureCheck {
  if (!timestamp || !signature || !/^\d{1,16}$/.test(timestamp) || !signature.startsWith('v1=')) return 'missing';
  const presented = Buffer.from(signature.slice(3), 'base64url');
  const expected = mac(secret, origin, timestamp, body);
  const authentic = presented.length === expected.length && timingSafeEqual(presented, expected);
  if (!authentic) return 'forged';
  return Math.abs(nowMs - Number(timestamp)) > SIGNATURE_WINDOW_MS ? 'stale' : 'ok';
}
