import type { z } from 'zod';
import { invalidRequest } from '../platform/errors.js';

/** Parses a request body against a schema; failures become 400 `invalid_request` with field errors. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body ?? undefined);
  if (result.success) return result.data;
  const errors = result.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
  throw invalidRequest(errors, errors.length === 1 ? `${errors[0]!.path || 'body'}: ${errors[0]!.message}` : 'the request body has invalid fields');
}
