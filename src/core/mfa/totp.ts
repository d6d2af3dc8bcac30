import { Secret, TOTP } from 'otpauth';

/**
 * RFC 6238 as authenticator apps implement it: HMAC-SHA-1, 6 digits, 30-second steps (the
 * parameters every app supports; the otpauth:// URI says so explicitly). The arithmetic is the
 * `otpauth` library's, never ours.
 */
const PERIOD = 30;
const DIGITS = 6;
const ALGORITHM = 'SHA1';
/** Steps of clock drift accepted either side of now (RFC 6238 §5.2 recommends at most one). */
const WINDOW = 1;
/** 160 bits: the HMAC-SHA-1 key length RFC 4226 §4 recommends. */
const SECRET_BYTES = 20;

/** A new random secret, base32 (what the URI carries and an app accepts typed in). */
export function newTotpSecret(): string {
  return new Secret({ size: SECRET_BYTES }).base32;
}

/** The `otpauth://totp/…` URI of a secret: issuer (the product) and label (the account) as apps show them. */
export function totpUri(secret: string, issuer: string, label: string): string {
  return totpOf(secret, issuer, label).toString();
}

/**
 * The time step a code belongs to, within ±{@link WINDOW} steps of `now`; undefined when the code
 * is none of them. Which steps were used before is the caller's to check.
 */
export function totpStep(secret: string, code: string, now: Date): number | undefined {
  if (!/^\d{6}$/.test(code)) return undefined;
  const totp = totpOf(secret, '', '');
  const timestamp = now.getTime();
  const delta = totp.validate({ token: code, timestamp, window: WINDOW });
  return delta === null ? undefined : totp.counter({ timestamp }) + delta;
}

function totpOf(secret: string, issuer: string, label: string): TOTP {
  return new TOTP({ issuer, label, secret: Secret.fromBase32(secret), algorithm: ALGORITHM, digits: DIGITS, period: PERIOD });
}
