import { z } from 'zod';
import type { MailComposer } from '../../mail/composers.js';
import type { EmailChallenge } from '../../model/user.js';
import type { EmailChallengesRepo } from '../../store/pg/email-challenges-repo.js';
import type { UsersRepo } from '../../store/pg/users-repo.js';
import { maskEmail } from '../users/email.js';
import type { ChallengeCodes } from './challenge-codes.js';
import { EMAIL_KINDS } from './email-flows.js';

/** What the composers of the e-mail flows read at send time. */
export interface EmailComposerDeps {
  challenges: Pick<EmailChallengesRepo, 'findById'>;
  users: Pick<UsersRepo, 'findById'>;
  codes: ChallengeCodes | undefined;
  /** Where authctl's own pages are: `publicUrl`, else `tokens.issuer`. */
  baseUrl: string;
  /** `mail.links.*`: an app's pages instead, with `{token}`. */
  links: { verifyEmail?: string | undefined; resetPassword?: string | undefined };
}

const challengeRef = z.strictObject({ challengeId: z.uuid() });

/** "30 minutes", "24 hours", "7 days": a challenge's lifetime as a message states it. */
export function lifetime(challenge: Pick<EmailChallenge, 'createdAt' | 'expiresAt'>): string {
  const minutes = Math.round((challenge.expiresAt.getTime() - challenge.createdAt.getTime()) / 60_000);
  const [n, unit] = minutes % 1_440 === 0 ? [minutes / 1_440, 'day'] : minutes % 60 === 0 ? [minutes / 60, 'hour'] : [minutes, 'minute'];
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

function link(template: string | undefined, fallback: string, token: string): string {
  return (template ?? fallback).replaceAll('{token}', encodeURIComponent(token));
}

/**
 * The composers of the e-mail flows: each re-derives the code and link from the challenge id
 * its job carries (the same on every attempt), and sends nothing once the challenge has ended
 * or expired (a newer message replaced it, or it was used).
 */
export function emailComposers(deps: EmailComposerDeps): MailComposer[] {
  const live = async (id: string, now: Date) => {
    const challenge = await deps.challenges.findById(id);
    return challenge && challenge.endedAt === null && challenge.expiresAt.getTime() > now.getTime() ? challenge : undefined;
  };
  const codes = () => {
    if (!deps.codes) throw new Error('the server secret is not configured: codes and links cannot be derived');
    return deps.codes;
  };
  const nameOf = async (userId: string | null) => {
    // A sign-in code to an address without an account has nobody to name yet.
    if (userId === null) return '';
    const user = await deps.users.findById(userId);
    return user ? (user.username ?? user.email ?? '') : '';
  };
  const base = deps.baseUrl.replace(/\/+$/, '');
  /** The values of a message with a code and a link: the same for every attempt of its job. */
  const secretValues = async (challenge: EmailChallenge, template: string | undefined, page: string) => ({
    name: await nameOf(challenge.userId),
    email: challenge.email,
    code: codes().code(challenge.id),
    link: link(template, `${base}${page}?token={token}`, codes().token(challenge.id)),
    expiresIn: lifetime(challenge),
  });

  const verify: MailComposer<{ challengeId: string }> = {
    kind: EMAIL_KINDS.verify,
    description: 'address verification (sign-up, a new address, or asked for again)',
    data: challengeRef,
    placeholders: ['name', 'email', 'code', 'link', 'expiresIn', 'action'],
    sensitive: ['code', 'link'],
    async compose(request, context) {
      const challenge = await live(request.data.challengeId, context.now);
      if (!challenge) return null;
      return {
        ...(await secretValues(challenge, deps.links.verifyEmail, '/v1/auth/email/verify')),
        action: challenge.purpose === 'change' ? 'confirm this new address for your account' : 'verify your address',
      };
    },
  };

  const reset: MailComposer<{ challengeId: string }> = {
    kind: EMAIL_KINDS.reset,
    description: 'password reset',
    data: challengeRef,
    placeholders: ['name', 'email', 'code', 'link', 'expiresIn'],
    sensitive: ['code', 'link'],
    async compose(request, context) {
      const challenge = await live(request.data.challengeId, context.now);
      return challenge ? secretValues(challenge, deps.links.resetPassword, '/v1/auth/password/reset') : null;
    },
  };

  const change: MailComposer<{ challengeId: string }> = {
    kind: EMAIL_KINDS.change,
    description: 'notice to the old address of an address change',
    data: challengeRef,
    placeholders: ['name', 'newEmail', 'requestedAt'],
    async compose(request) {
      const challenge = await deps.challenges.findById(request.data.challengeId);
      if (!challenge) return null;
      return { name: await nameOf(challenge.userId), newEmail: maskEmail(challenge.email), requestedAt: challenge.createdAt.toISOString() };
    },
  };

  const passwordChanged: MailComposer<{ userId: string; changedAt: string }> = {
    kind: EMAIL_KINDS.passwordChanged,
    description: 'notice that the password was changed',
    data: z.strictObject({ userId: z.uuid(), changedAt: z.iso.datetime() }),
    placeholders: ['name', 'changedAt'],
    async compose(request) {
      return { name: await nameOf(request.data.userId), changedAt: request.data.changedAt };
    },
  };

  const signupAttempt: MailComposer<{ requestedAt: string }> = {
    kind: EMAIL_KINDS.signupAttempt,
    description: 'notice that someone tried to sign up with an address that has an account',
    data: z.strictObject({ requestedAt: z.iso.datetime() }),
    placeholders: ['requestedAt'],
    async compose(request) {
      return Promise.resolve({ requestedAt: request.data.requestedAt });
    },
  };

  const login: MailComposer<{ challengeId: string }> = {
    kind: EMAIL_KINDS.login,
    description: 'e-mailed sign-in code',
    data: challengeRef,
    placeholders: ['email', 'code', 'expiresIn'],
    sensitive: ['code'],
    async compose(request, context) {
      const challenge = await live(request.data.challengeId, context.now);
      // A code alone, no link: a sign-in happens in the app that asked for it, not in a browser tab
      // a mail scanner may open.
      return challenge ? { email: challenge.email, code: codes().code(challenge.id), expiresIn: lifetime(challenge) } : null;
    },
  };

  return [verify, reset, change, passwordChanged, signupAttempt, login];
}
