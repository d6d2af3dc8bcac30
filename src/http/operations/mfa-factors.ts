import type { Config } from '../../config/schema.js';
import type { OperationSpec } from './spec.js';

/** The OpenAPI operations of TOTP factors and recovery codes of the caller: /v1/me/mfa/*. */
export function factorOperations(config: Config): OperationSpec[] {
  void config;
  return [];
}
