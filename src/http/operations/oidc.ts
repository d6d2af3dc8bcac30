import type { OperationSpec } from './spec.js';

/** The OpenAPI operations of sign-in through providers: /v1/auth/oidc/*. */
export function oidcOperations(): OperationSpec[] {
  return [];
}
