/**
 * One catalog of error codes. Each code has an HTTP status (RFC 9457 body on `/v1`), a default
 * human title and a CLI exit code (docs/api.md#error-catalog). The codes are part of the public contract: never
 * rename one, only add.
 */
export const ERROR_CATALOG = {
  invalid_request: { status: 400, title: 'Bad Request', exit: 2 },
  weak_password: { status: 400, title: 'Bad Request', exit: 2 },
  invalid_credentials: { status: 401, title: 'Unauthorized', exit: 1 },
  invalid_token: { status: 401, title: 'Unauthorized', exit: 1 },
  invalid_refresh_token: { status: 401, title: 'Unauthorized', exit: 1 },
  refresh_token_reused: { status: 401, title: 'Unauthorized', exit: 1 },
  account_disabled: { status: 403, title: 'Forbidden', exit: 1 },
  not_found: { status: 404, title: 'Not Found', exit: 3 },
  method_not_allowed: { status: 405, title: 'Method Not Allowed', exit: 2 },
  username_taken: { status: 409, title: 'Conflict', exit: 4 },
  email_taken: { status: 409, title: 'Conflict', exit: 4 },
  email_not_verified: { status: 403, title: 'Forbidden', exit: 1 },
  invalid_code: { status: 400, title: 'Bad Request', exit: 1 },
  conflict: { status: 409, title: 'Conflict', exit: 4 },
  payload_too_large: { status: 413, title: 'Content Too Large', exit: 2 },
  unsupported_media_type: { status: 415, title: 'Unsupported Media Type', exit: 2 },
  rate_limited: { status: 429, title: 'Too Many Requests', exit: 1 },
  unavailable: { status: 503, title: 'Service Unavailable', exit: 69 },
  bad_config: { status: 500, title: 'Internal Server Error', exit: 78 },
  internal_error: { status: 500, title: 'Internal Server Error', exit: 1 },
  invalid_signature: { status: 401, title: 'Unauthorized', exit: 1 },
  unknown_peer: { status: 403, title: 'Forbidden', exit: 1 },
  wrong_region: { status: 421, title: 'Misdirected Request', exit: 1 },
  // Step-up: the operation needs an authentication within identity.reauthWindow (POST /v1/auth/reauthenticate).
  reauthentication_required: { status: 403, title: 'Forbidden', exit: 1 },
  // The mfaToken of a two-step login is malformed, forged, expired, used, or used where it does not apply.
  invalid_mfa_token: { status: 401, title: 'Unauthorized', exit: 1 },
  // Sign-in through OpenID Connect providers (README "Sign in with Google and other providers").
  // `redirect_to` is not on identity.redirectUrls (never redirected to).
  redirect_not_allowed: { status: 400, title: 'Bad Request', exit: 2 },
  // The callback's state is missing, forged, tampered with, expired, used, or of another provider.
  invalid_oidc_state: { status: 400, title: 'Bad Request', exit: 1 },
  // The one-time code of POST /v1/auth/oidc/token (or a link) is malformed, forged, expired, used, or its verifier does not match.
  invalid_oidc_code: { status: 400, title: 'Bad Request', exit: 1 },
  // An ID token failed a check: signature, issuer, audience, expiry, nonce.
  invalid_id_token: { status: 401, title: 'Unauthorized', exit: 1 },
  // The provider answered, but not as OpenID Connect says (a refused code exchange, a broken document).
  provider_error: { status: 502, title: 'Bad Gateway', exit: 69 },
  // The provider did not answer within identity.providerTimeoutMs.
  provider_unavailable: { status: 503, title: 'Service Unavailable', exit: 69 },
  // A first provider sign-in whose address belongs to an account it may not be linked to automatically.
  identity_not_linked: { status: 409, title: 'Conflict', exit: 4 },
  // The provider account is linked to another user already.
  identity_taken: { status: 409, title: 'Conflict', exit: 4 },
  // Removing this would leave the account no way to sign in (no password, no other identity or passkey, no verified address).
  last_sign_in_method: { status: 409, title: 'Conflict', exit: 4 },
  // Passkeys (README "Passkeys"). A ceremony's challenge that is malformed, forged, expired, used, of the other ceremony or another user.
  invalid_passkey_challenge: { status: 400, title: 'Bad Request', exit: 1 },
  // A WebAuthn response that is malformed or fails a check of what it says: type, origin, RP ID, user presence or verification, algorithm.
  invalid_passkey_response: { status: 400, title: 'Bad Request', exit: 2 },
  // A passkey assertion that proves nothing: an unknown (or removed) credential, a signature that does not verify, a counter that went backwards.
  passkey_rejected: { status: 401, title: 'Unauthorized', exit: 1 },
  // The OAuth endpoints (RFC 6749 §5.2, RFC 7009 §2.2.1): rendered there in OAuth's error format.
  invalid_client: { status: 401, title: 'Unauthorized', exit: 1 },
  unauthorized_client: { status: 403, title: 'Forbidden', exit: 1 },
  unsupported_token_type: { status: 400, title: 'Bad Request', exit: 2 },
  // `authctl user import`: the file is not in the format at all (empty, binary, a wrong CSV header, not JSON); EX_DATAERR.
  invalid_import_file: { status: 400, title: 'Bad Request', exit: 65 },
} as const satisfies Record<string, { status: number; title: string; exit: number }>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/** One field-level problem, as in the `errors` member of a validation problem. */
export interface FieldError {
  path: string;
  message: string;
}

export interface AppErrorOptions {
  /** The underlying error; it reaches the logs, never the client. */
  cause?: unknown;
  /** Field-level details for `invalid_request` / `weak_password`. */
  errors?: FieldError[];
  /** Seconds, for `Retry-After` on 429 and 503. */
  retryAfter?: number;
  /** Extra members of the problem body (RFC 9457 §3.2), e.g. where to go for `wrong_region`. */
  extensions?: Record<string, string>;
}

/**
 * An expected failure with a stable code. `detail` is shown to clients and admins, so it must
 * never carry internals (SQL, stack, whether a username exists); put those in `cause`.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly detail: string;
  readonly errors: FieldError[] | undefined;
  readonly retryAfter: number | undefined;
  readonly extensions: Record<string, string> | undefined;

  constructor(code: ErrorCode, detail: string, options: AppErrorOptions = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.detail = detail;
    this.errors = options.errors;
    this.retryAfter = options.retryAfter;
    this.extensions = options.extensions;
  }

  get status(): number {
    return ERROR_CATALOG[this.code].status;
  }

  get title(): string {
    return ERROR_CATALOG[this.code].title;
  }

  get exitCode(): number {
    return ERROR_CATALOG[this.code].exit;
  }
}

export function isAppError(err: unknown, code?: ErrorCode): err is AppError {
  return err instanceof AppError && (code === undefined || err.code === code);
}

/** Shorthand for a validation failure on one or more fields. */
export function invalidRequest(errors: FieldError[], detail = 'the request is not valid'): AppError {
  return new AppError('invalid_request', detail, { errors });
}
