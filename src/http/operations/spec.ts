import type { z } from 'zod';
import type { Config } from '../../config/schema.js';
import type { ErrorCode } from '../../platform/errors.js';
import type { OAuthErrorCode } from '../middleware/oauth-errors.js';

/** What the OpenAPI document (src/http/openapi.ts) says of each operation; the catalogs of src/http/operations/* use it too. */

export type Method = 'get' | 'post' | 'delete' | 'put' | 'patch';
/** Who may call: no one in particular, a user's access token, a user's token or nobody, a peer region. */
export type Auth = 'none' | 'bearer' | 'bearer-or-none' | 'peer' | 'client' | 'client-or-none';

export interface Success {
  description: string;
  /** A JSON body (default `application/json`). */
  schema?: z.ZodType;
  /** Another media type: its body is described as a string. */
  type?: string;
  /** Several media types, each with its schema. */
  content?: Record<string, z.ZodType>;
  headers?: Record<string, { description: string; required?: boolean; schema?: z.ZodType }>;
}

/** One operation of the API, as the document describes it. */
export interface OperationSpec {
  method: Method;
  /** OpenAPI template (`/v1/sessions/{id}`). */
  path: string;
  operationId: string;
  tag: Tag;
  summary: string;
  description?: string;
  auth: Auth;
  /** `form`: also `application/x-www-form-urlencoded`; `'only'`: that alone. */
  body?: { schema: z.ZodType; required: boolean; form?: boolean | 'only' };
  query?: z.ZodObject;
  params?: z.ZodObject;
  responses: Record<number, Success>;
  /** Error codes beyond those every operation of its kind has (see {@link errorsOf}). */
  errors: ErrorCode[];
  /** `/oauth/*`: errors in OAuth's format (RFC 6749 §5.2) instead, by status. */
  oauthErrors?: Record<number, OAuthErrorCode[]>;
  /** Present only when the configuration turns it on. */
  when?: (config: Config) => boolean;
}

export type Tag = 'Auth' | 'E-mail' | 'MFA' | 'Passkeys' | 'Providers' | 'Account' | 'Discovery' | 'Services' | 'System' | 'Regions';
