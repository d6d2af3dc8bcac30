import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { SessionView, TokenResponse } from '../../src/core/auth/auth-service.js';
import type { UserView } from '../../src/core/users/user-service.js';
import type { FieldError } from '../../src/platform/errors.js';
import type { TestApp } from './app.js';

export type { FieldError, SessionView, TokenResponse, UserView };

/** Lowercase canonical UUID (any version). */
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** What `crypto.randomUUID()` produces: version 4, RFC 4122 variant. */
export const UUID_V4_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const PROBLEM_CONTENT_TYPE = /^application\/problem\+json(\s*;|$)/;
export const JSON_CONTENT_TYPE = /^application\/json(\s*;|$)/;

/** The members every RFC 9457 problem of docs/api.md#errors carries. */
export const PROBLEM_MEMBERS = ['type', 'title', 'status', 'code', 'detail', 'requestId'] as const;

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  requestId: string;
  errors?: FieldError[];
}

/**
 * Asserts that `res` is exactly the problem `status`/`code` of docs/api.md#errors: problem+json, the
 * six members (plus `errors` only for validation codes), `requestId` equal to `X-Request-Id`.
 */
export async function expectProblem(res: Response, status: number, code: string): Promise<Problem> {
  const text = await res.text();
  expect(res.status, `HTTP status (body: ${text})`).to.equal(status);
  expect(res.headers.get('content-type'), 'content-type').to.match(PROBLEM_CONTENT_TYPE);
  const body = JSON.parse(text) as Problem;
  expect(body.code, `code (detail: ${body.detail})`).to.equal(code);
  expect(body.status).to.equal(status);
  expect(body.type).to.equal('about:blank');
  expect(body.title).to.be.a('string').with.length.above(0);
  expect(body.detail).to.be.a('string').with.length.above(0);
  expect(body.requestId).to.be.a('string').with.length.above(0);
  expect(body.requestId, 'requestId equals the X-Request-Id header').to.equal(res.headers.get('x-request-id'));
  const allowed = new Set<string>([...PROBLEM_MEMBERS, 'errors']);
  expect(
    Object.keys(body).filter((k) => !allowed.has(k)),
    'unexpected problem members',
  ).to.deep.equal([]);
  if (body.errors !== undefined) {
    expect(body.errors).to.be.an('array').with.length.above(0);
    for (const e of body.errors) {
      expect(e.path).to.be.a('string');
      expect(e.message).to.be.a('string').with.length.above(0);
    }
  }
  return body;
}

/** A validation problem whose `errors` name `paths` (at least those). */
export async function expectInvalidRequest(res: Response, ...paths: string[]): Promise<Problem> {
  const problem = await expectProblem(res, 400, 'invalid_request');
  expect(problem.errors, 'errors[] of a validation problem').to.be.an('array');
  const reported = problem.errors!.map((e) => e.path);
  for (const path of paths) expect(reported, `errors[].path includes "${path}"`).to.include(path);
  return problem;
}

/** 401 invalid_token with the RFC 6750 §3 challenge. */
export async function expectInvalidToken(res: Response): Promise<Problem> {
  const problem = await expectProblem(res, 401, 'invalid_token');
  const challenge = res.headers.get('www-authenticate') ?? '';
  expect(challenge, 'WWW-Authenticate').to.match(/^Bearer(\s|$)/);
  expect(challenge, 'WWW-Authenticate').to.include('error="invalid_token"');
  return problem;
}

/** Asserts a TokenResponse (docs/api.md#tokenresponse) and returns it. */
export async function expectTokenResponse(res: Response): Promise<TokenResponse> {
  const text = await res.text();
  expect(res.status, `HTTP status (body: ${text})`).to.equal(200);
  expect(res.headers.get('content-type')).to.match(JSON_CONTENT_TYPE);
  expect(res.headers.get('cache-control'), 'Cache-Control of a token response').to.equal('no-store');
  const body = JSON.parse(text) as TokenResponse;
  expect(Object.keys(body).sort()).to.deep.equal(['accessToken', 'expiresIn', 'refreshExpiresIn', 'refreshToken', 'sessionId', 'tokenType', 'user']);
  expect(body.tokenType).to.equal('Bearer');
  expect(body.accessToken.split('.'), 'compact JWS').to.have.length(3);
  expect(body.sessionId).to.match(UUID_RE);
  expect(body.refreshToken).to.match(new RegExp(`^rt_[a-z][a-z0-9-]*_${body.sessionId}_\\d+_[A-Za-z0-9_-]{22}$`));
  expect(body.expiresIn).to.be.a('number');
  expect(body.refreshExpiresIn).to.be.a('number');
  expectUserView(body.user);
  return body;
}

export function expectUserView(user: unknown): asserts user is UserView {
  expect(user).to.be.an('object');
  expect(Object.keys(user as object).sort(), 'user members').to.deep.equal(['createdAt', 'email', 'emailVerified', 'homeRegion', 'id', 'username']);
  const u = user as UserView;
  expect(u.id).to.match(UUID_RE);
  expect(u.username === null || typeof u.username === 'string', 'username is a string or null').to.equal(true);
  expect(u.email === null || typeof u.email === 'string', 'email is a string or null').to.equal(true);
  expect(u.username !== null || u.email !== null, 'a username or an email').to.equal(true);
  expect(u.emailVerified).to.be.a('boolean');
  expect(u.homeRegion).to.be.a('string');
  expect(new Date(u.createdAt).toISOString()).to.equal(u.createdAt);
}

/** The counter inside `rt_<region>_<session>_<counter>_<mac>`. */
export function refreshCounter(token: string): number {
  // The MAC is base64url and may itself contain "_": anchor on the session UUID instead.
  const match = /_[0-9a-f-]{36}_(\d+)_[A-Za-z0-9_-]{22}$/.exec(token);
  if (!match) throw new Error(`not a refresh token: ${token}`);
  return Number(match[1]);
}

export function uniqueUsername(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** A password that passes the policy and is not on any list. */
export function uniquePassword(): string {
  return `pw ${randomBytes(12).toString('base64url')}`;
}

export async function register(app: TestApp, username: string, password: string): Promise<UserView> {
  const res = await app.request('/v1/auth/register', { method: 'POST', json: { username, password } });
  const text = await res.text();
  expect(res.status, `register ${username}: ${text}`).to.equal(201);
  const body = JSON.parse(text) as { user: UserView };
  return body.user;
}

export async function login(app: TestApp, username: string, password: string, headers: Record<string, string> = {}): Promise<TokenResponse> {
  const res = await app.request('/v1/auth/login', { method: 'POST', json: { username, password }, headers });
  return expectTokenResponse(res);
}

export function refresh(app: TestApp, refreshToken: unknown): Promise<Response> {
  return app.request('/v1/auth/refresh', { method: 'POST', json: { refreshToken } });
}

/** A registered user with its password, for files that log the same user in many times. */
export interface Account {
  user: UserView;
  username: string;
  password: string;
}

export async function createAccount(app: TestApp, prefix: string): Promise<Account> {
  const username = uniqueUsername(prefix);
  const password = uniquePassword();
  const user = await register(app, username, password);
  return { user, username: user.username!, password };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
