import type { Config } from '../../config/schema.js';
import type { OperationSpec } from './spec.js';

/** The OpenAPI operations of The second step of a login and step-up: POST /v1/auth/mfa/verify and /v1/auth/reauthenticate. */
export function twoStepOperations(config: Config): OperationSpec[] {
  void config;
  return [];
}
