import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import jsQRModule from 'jsqr';
import { PNG } from 'pngjs';
import type { TestApp } from '../helpers/app.js';

// jsqr is CommonJS whose types declare an ES default export: at run time the default import is
// the module object, with the function as its `default`.
const jsQR = jsQRModule.default;

/** What `POST /v1/me/mfa/totp` answers. */
export interface Enrolment {
  factorId: string;
  secret: string;
  uri: string;
  qrCode: string;
}

/**
 * The TOTP code of `secret` at `at`, computed by Debian's oathtool (an implementation independent
 * of the library authctl uses). `stepOffset` moves by whole 30-second steps.
 */
export function oathtool(secret: string, at: Date, stepOffset = 0): string {
  const unix = Math.floor(at.getTime() / 1000) + stepOffset * 30;
  try {
    return execFileSync('oathtool', ['--totp', '-b', secret, '-N', `@${unix}`], { encoding: 'utf8' }).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error("the MFA tests need Debian's oathtool: apt-get install oathtool", { cause: err });
    throw err;
  }
}

/** The text a QR code in a PNG data URL holds, decoded by jsQR. */
export function decodeQr(dataUrl: string): string {
  const prefix = 'data:image/png;base64,';
  expect(dataUrl.startsWith(prefix), 'a PNG data URL').to.equal(true);
  const png = PNG.sync.read(Buffer.from(dataUrl.slice(prefix.length), 'base64'));
  const found = jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.length), png.width, png.height);
  if (!found) throw new Error('no QR code found in the image');
  return found.data;
}

export async function startEnrolment(app: TestApp, token: string): Promise<Enrolment> {
  const res = await app.request('/v1/me/mfa/totp', { method: 'POST', token });
  const text = await res.text();
  expect(res.status, text).to.equal(201);
  return JSON.parse(text) as Enrolment;
}

/** Enrols a TOTP factor with a first code at `at`: the factor and its ten recovery codes. */
export async function enrol(app: TestApp, token: string, at: Date): Promise<Enrolment & { recoveryCodes: string[] }> {
  const enrolment = await startEnrolment(app, token);
  const res = await app.request('/v1/me/mfa/totp/confirm', {
    method: 'POST',
    token,
    json: { factorId: enrolment.factorId, code: oathtool(enrolment.secret, at) },
  });
  const text = await res.text();
  expect(res.status, text).to.equal(200);
  return { ...enrolment, ...(JSON.parse(text) as { recoveryCodes: string[] }) };
}
