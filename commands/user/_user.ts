import { userInfo } from 'node:os';
import type { Config } from '../../src/config/schema.js';
import { invalidRequest } from '../../src/platform/errors.js';

/** The description of every `<user>` argument of `authctl user …`: what `UserService.find` accepts. */
export const USER_ARG = 'User id, username or e-mail address.';

/**
 * Refuses to give a user an address while `identity.email` is "off" (exit 2), before anything is
 * asked or written: there would be no verification, reset or login by address to use it.
 */
export function refuseWhenEmailOff(settings: Config): void {
  if (settings.identity.email !== 'off') return;
  throw invalidRequest(
    [{ path: 'email', message: 'e-mail addresses are off here (identity.email is "off")' }],
    'e-mail addresses are off here (identity.email is "off"): set AUTHCTL_IDENTITY_EMAIL=optional (or identity.email in the config file), with mail configured, to give users addresses',
  );
}

/**
 * Who runs an admin command, for the log line of what it changed: the operating-system account
 * (`cli:<login>`) — the CLI talks to the database directly, so that is the one identity it has.
 */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    // No passwd entry for the uid (some containers): the variable, else the uid itself.
    return `cli:${process.env.USER ?? `uid ${process.getuid?.() ?? 'unknown'}`}`;
  }
}
