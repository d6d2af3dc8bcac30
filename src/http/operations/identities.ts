import type { OperationSpec } from './spec.js';

/** The OpenAPI operations of the caller's provider identities: /v1/me/identities*. */
export function identityOperations(): OperationSpec[] {
  return [];
}
