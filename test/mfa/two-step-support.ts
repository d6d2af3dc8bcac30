import { expect } from 'chai';
import { decodeJwt } from 'jose';
import type { Clock } from '../../src/platform/clock.js';
import type { TestApp } from '../helpers/app.js';
import type { TokenResponse } from '../helpers/http-assert.js';
import { oathtool } from './support.js';

/** The RFC 6238 code of `secret` at `at`, by Debian's oathtool (not the library authctl uses). */
export const totpAt = (secret: string, at: Date): string => oathtool(secret, at);

/** The first step's answer when a second factor must follow. */
export interface MfaChallenge {
  mfaRequired: true;
  mfaToken: string;
  expiresIn: number;
  factors: string[];
  enrolmentRequired: boolean;
}

export async function expectChallenge(res: Response): Promise<MfaChallenge> {
  const text = await res.text();
  expect(res.status, text).to.equal(200);
  expect(res.headers.get('cache-control')).to.equal('no-store');
  const body = JSON.parse(text) as MfaChallenge;
  expect(Object.keys(body).sort()).to.deep.equal(['enrolmentRequired', 'expiresIn', 'factors', 'mfaRequired', 'mfaToken']);
  expect(body.mfaRequired).to.equal(true);
  expect(body.mfaToken).to.match(/^mfa_[A-Za-z0-9_-]+$/);
  return body;
}

/** A TOTP factor enrolled through the HTTP routes: its secret and recovery codes. */
export interface Enrolled {
  secret: string;
  recoveryCodes: string[];
}

/**
 * Starts and confirms a TOTP factor with `Authorization: Bearer <token>` (an access token, or an
 * enrolment mfaToken), the first code by oathtool at the clock's time; the confirmation's body too.
 */
export async function enrolTotp(app: Pick<TestApp, 'request'>, token: string, clock: Clock): Promise<Enrolled & { confirmed: Record<string, unknown> }> {
  const started = await app.request('/v1/me/mfa/totp', { method: 'POST', token });
  const startText = await started.text();
  expect(started.status, startText).to.equal(201);
  const { factorId, secret } = JSON.parse(startText) as { factorId: string; secret: string };
  const confirmed = await app.request('/v1/me/mfa/totp/confirm', { method: 'POST', token, json: { factorId, code: totpAt(secret, clock.now()) } });
  const confirmText = await confirmed.text();
  expect(confirmed.status, confirmText).to.equal(200);
  const body = JSON.parse(confirmText) as { recoveryCodes: string[] } & Record<string, unknown>;
  return { secret, recoveryCodes: body.recoveryCodes, confirmed: body };
}

/** The authentication claims of an access token. */
export function authClaims(tokens: Pick<TokenResponse, 'accessToken'>): { auth_time: number; amr: string[]; acr: string } {
  const claims = decodeJwt(tokens.accessToken);
  return { auth_time: claims.auth_time as number, amr: claims.amr as string[], acr: claims.acr as string };
}
