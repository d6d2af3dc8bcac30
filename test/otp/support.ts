import { expect } from 'chai';
import { Registry } from 'prom-client';
import { SendLimits } from '../../src/security/send-limits.js';
import type { Received, TestSmtpServer } from '../mail/support.js';
import { nextMail, type EmailRegion } from '../email/support.js';

/** The subject of a sign-in code message (the built-in template). */
export const SIGN_IN_SUBJECT = /your sign-in code/;

/** The 6-digit code of a sign-in message (on a line of its own); the message has no link. */
export function signInCode(mail: Received): string {
  const text = mail.parsed.text ?? '';
  const code = /^\s*(\d{6})\s*$/m.exec(text)?.[1];
  if (!code) throw new Error(`no code in: ${text}`);
  expect(text, 'a sign-in message carries no link').not.to.match(/https?:\/\//);
  return code;
}

/** POST /v1/auth/otp/send, expecting its one answer (202 accepted). */
export async function sendCode(region: EmailRegion, email: string): Promise<void> {
  const res = await region.app.request('/v1/auth/otp/send', { method: 'POST', json: { email } });
  expect(res.status, await res.clone().text()).to.equal(202);
  expect(await res.json()).to.deep.equal({ status: 'accepted' });
}

/** Asks for a code and waits for its message; resolves the code. */
export async function mailedCode(region: EmailRegion, email: string, smtp: TestSmtpServer = region.smtp): Promise<string> {
  const since = smtp.received.length;
  await sendCode(region, email);
  return signInCode(await nextMail(smtp, email, SIGN_IN_SUBJECT, since));
}

/** POST /v1/auth/otp/verify. */
export function verifyCode(region: EmailRegion, email: string, code: string): Promise<Response> {
  return region.app.request('/v1/auth/otp/verify', { method: 'POST', json: { email, code } });
}

/** Any 6-digit code but `code`. */
export function wrongCode(code: string, n = 1): string {
  return String((Number(code) + n) % 1_000_000).padStart(6, '0');
}

/** Sign-in messages to `email` received since `since`. */
export function signInMails(smtp: TestSmtpServer, email: string, since = 0): Received[] {
  return smtp.received.slice(since).filter((m) => m.envelopeTo.includes(email) && SIGN_IN_SUBJECT.test(m.parsed.subject ?? ''));
}

/**
 * Gives back the send an earlier otp/send to `email` took from the send limits (what a request
 * that failed does), so that the next one is sent without waiting out `identity.sendInterval`.
 */
export async function allowAnotherSend(region: EmailRegion, email: string): Promise<void> {
  const c = region.app.container;
  const limits = new SendLimits({
    config: c.config.identity,
    enabled: c.config.rateLimit.enabled,
    store: c.limiterStore,
    log: c.log,
    registry: new Registry(),
  });
  await limits.refund('login', email, undefined);
}
