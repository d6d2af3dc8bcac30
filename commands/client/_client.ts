import type { IssuedClientSecret } from '../../src/core/clients/client-service.js';

/** The description of every `<id>` argument of `authctl client …`. */
export const CLIENT_ARG = 'Client id (svc_…; see `authctl client list`).';

/**
 * The secret, in human mode: the one time it is shown, said plainly. With --json it is the
 * output's `secret` member, also this once.
 */
export function secretLines(issued: IssuedClientSecret): string {
  return [
    `client_id:     ${issued.client.id}`,
    `client_secret: ${issued.secret}`,
    '',
    'This secret is shown once and cannot be shown again (only its hash is stored): store it now.',
    `A lost secret is replaced with \`authctl client rotate-secret ${issued.client.id}\`.`,
  ].join('\n');
}
