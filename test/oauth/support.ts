import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { expect } from 'chai';
import type { ConfigInput } from '../../src/config/schema.js';
import { buildContainer } from '../../src/container.js';
import { createApp } from '../../src/http/app.js';
import type { Clock } from '../../src/platform/clock.js';
import { migrate, shutdown, startBackground } from '../../src/runtime.js';
import { requester, testConfig, type TestApp } from '../helpers/app.js';
import { createTestDatabase } from '../helpers/db.js';
import { JSON_CONTENT_TYPE } from '../helpers/http-assert.js';

/**
 * A region whose `tokens.issuer` (and `publicUrl`) is the URL it is served at, as in production,
 * so discovery clients that check the issuer against the URL they asked (openid-client) accept
 * it: the port is bound before the config is made.
 */
export async function startIssuerApp(
  label: string,
  options: { overrides?: (url: string) => ConfigInput; clock?: Clock; logSink?: Writable } = {},
): Promise<TestApp> {
  // The app is built once the URL is known; until then the port answers 503.
  const app: { handle?: (req: IncomingMessage, res: ServerResponse) => void } = {};
  const server: Server = createServer((req, res) => (app.handle ? app.handle(req, res) : res.writeHead(503).end()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const db = await createTestDatabase(label);
  const own = options.overrides?.(url) ?? {};
  const container = buildContainer(testConfig(db.url, { publicUrl: url, ...own, tokens: { issuer: url, ...own.tokens } }), {
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.logSink ? { logSink: options.logSink } : {}),
  });
  await migrate(container);
  await startBackground(container);
  const callback = createApp(container).callback();
  app.handle = (req, res) => void callback(req, res);
  return {
    db,
    container,
    url,
    request: requester(url),
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await shutdown(container);
      await db.drop();
    },
  };
}

/** RFC 6749 §2.3.1: `Basic base64(urlencode(id) ":" urlencode(secret))`. */
export function basic(clientId: string, secret: string): string {
  const encode = (s: string) => new URLSearchParams({ s }).toString().slice(2);
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

/** POSTs a form to an OAuth endpoint. */
export function postForm(app: Pick<TestApp, 'request'>, path: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  });
}

/** Asserts an RFC 6749 §5.2 error: status, exact `error`, JSON, no-store, X-Request-Id; returns the body. */
export async function expectOAuthError(res: Response, status: number, error: string): Promise<{ error: string; error_description?: string }> {
  const text = await res.text();
  expect(res.status, text).to.equal(status);
  expect(res.headers.get('content-type'), text).to.match(JSON_CONTENT_TYPE);
  expect(res.headers.get('cache-control')).to.equal('no-store');
  expect(res.headers.get('x-request-id')).to.be.a('string').and.not.equal('');
  const body = JSON.parse(text) as { error: string; error_description?: string };
  expect(body.error, text).to.equal(error);
  expect(
    Object.keys(body).every((k) => k === 'error' || k === 'error_description'),
    text,
  ).to.equal(true);
  if (body.error_description !== undefined) expect(body.error_description).to.match(/^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/);
  if (status === 401) expect(res.headers.get('www-authenticate')).to.equal('Basic realm="authctl"');
  return body;
}
