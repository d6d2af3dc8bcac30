import type { OperationSpec } from './spec.js';

/**
 * The OpenAPI operations of passkeys (docs/api.md#passkeys): registration and the list under
 * /v1/me/passkeys, sign-in under /v1/auth/passkey. Present only with identity.webauthn.enabled.
 */
export function passkeyOperations(): OperationSpec[] {
  return [];
}
