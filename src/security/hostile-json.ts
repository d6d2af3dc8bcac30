import type { FieldError } from '../platform/errors.js';

/** Deeper than any body of docs/api.md#endpoints (at most 1) by a wide margin. */
export const MAX_JSON_DEPTH = 16;

// Keys that reach Object.prototype when a body is merged or copied naively (prototype pollution).
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Checks a parsed request body for shapes no client of the API sends and attackers do: nesting
 * deeper than MAX_JSON_DEPTH (recursive code downstream could exhaust the stack) and
 * prototype-pollution keys at any depth. Iterative, so the check itself cannot overflow.
 * Returns the first problem found, as a field error, or undefined.
 */
export function findHostileJson(body: unknown): FieldError | undefined {
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value: body, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= MAX_JSON_DEPTH) return { path, message: `nested deeper than ${MAX_JSON_DEPTH} levels` };
    for (const key of Object.keys(value)) {
      const at = path ? `${path}.${key}` : key;
      if (FORBIDDEN_KEYS.has(key)) return { path: at, message: `"${key}" is not allowed as a key` };
      stack.push({ value: (value as Record<string, unknown>)[key], path: at, depth: depth + 1 });
    }
  }
  return undefined;
}
