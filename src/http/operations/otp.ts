import type { Config } from '../../config/schema.js';
import type { OperationSpec } from './spec.js';

/** The OpenAPI operations of E-mailed sign-in codes: POST /v1/auth/otp/send and /v1/auth/otp/verify. */
export function otpOperations(config: Config): OperationSpec[] {
  void config;
  return [];
}
