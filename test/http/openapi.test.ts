import { compileErrors, validate } from '@readme/openapi-parser';
import { expect } from 'chai';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { routers } from '../../src/http/app.js';
import { openApiDocument } from '../../src/http/openapi.js';
import { ERROR_CATALOG } from '../../src/platform/errors.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { login, register, uniquePassword, uniqueUsername } from '../helpers/http-assert.js';
import { ContractValidator } from '../helpers/openapi.js';
import { buildContainer } from '../../src/container.js';

type Json = Record<string, unknown>;
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** `/v1/sessions/:id` → `/v1/sessions/{id}`. */
function template(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** Every (method, path) the routers of a container serve, HEAD aside (Koa answers it for GET). */
function routed(app: TestApp): string[] {
  const out = new Set<string>();
  for (const router of routers(app.container)) {
    for (const layer of router.stack) {
      for (const method of layer.methods) if (method !== 'HEAD') out.add(`${method.toLowerCase()} ${template(String(layer.path))}`);
    }
  }
  return [...out].sort();
}

function documented(doc: Json): string[] {
  const out: string[] = [];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Json>))
    for (const method of Object.keys(item)) if (METHODS.includes(method)) out.push(`${method} ${path}`);
  return out.sort();
}

function eachOperation(doc: Json, fn: (where: string, op: Json) => void): void {
  for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
    for (const [method, op] of Object.entries(item)) if (METHODS.includes(method)) fn(`${method.toUpperCase()} ${path}`, op as Json);
  }
}

describe('the OpenAPI document (GET /openapi.json) is the contract', function () {
  this.timeout(60_000);
  let app: TestApp;
  let doc: Json;

  before(async () => {
    app = await startTestApp('openapi', {
      overrides: { http: { benchRoutes: true, docs: true }, identity: { webauthn: { enabled: true, rpId: 'localhost', origins: ['http://localhost:3000'] } } },
    });
    const res = await app.request('/openapi.json');
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    doc = (await res.json()) as Json;
  });
  after(async () => {
    await app?.close();
  });

  it('is what the server renders from its configuration: the same document, byte for byte, every time', async () => {
    expect(doc).to.deep.equal(JSON.parse(JSON.stringify(openApiDocument(app.container.config))));
    const again = await (await app.request('/openapi.json')).text();
    expect(again).to.equal(JSON.stringify(doc));
    expect(doc.openapi).to.equal('3.1.0');
  });

  it('passes an OpenAPI 3.1 validator (@readme/openapi-parser)', async () => {
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, compileErrors(result)).to.equal(true);
  });

  it('covers every route of the router, and documents no route the router lacks', () => {
    const served = routed(app);
    const described = documented(doc);
    expect(
      served.filter((r) => !described.includes(r)),
      'routes missing from the document',
    ).to.deep.equal([]);
    expect(
      described.filter((r) => !served.includes(r)),
      'documented operations no router serves',
    ).to.deep.equal([]);
    expect(served.length).to.be.above(20);
  });

  it('follows the configuration: optional routes come and go with their switches, sign-up asks what identity.* requires', () => {
    const plain = openApiDocument(testConfig('postgres://x@127.0.0.1/x', { http: { metricsPort: 9100 } }));
    const paths = Object.keys(plain.paths as Json);
    expect(paths).to.not.include('/metrics');
    expect(paths).to.not.include('/bench/baseline');
    expect(paths).to.not.include('/docs');
    expect(paths.filter((p) => p.includes('passkey'))).to.deep.equal([]);
    expect(Object.keys(doc.paths as Json)).to.include.members(['/bench/baseline', '/docs', '/docs/assets/{version}/{file}']);
    expect(Object.keys(doc.paths as Json)).to.include.members([
      '/v1/me/passkeys',
      '/v1/me/passkeys/{id}',
      '/v1/auth/passkey/options',
      '/v1/auth/passkey/verify',
    ]);
    const withEmail = openApiDocument(
      testConfig('postgres://x@127.0.0.1/x', { identity: { email: 'required', username: 'optional' }, mail: { transport: 'log', from: 'a@example.com' } }),
    );
    const registration = (withEmail.components as { schemas: Record<string, Json> }).schemas.Registration!;
    expect(registration.required).to.have.members(['email', 'password']);
    const defaults = (doc.components as { schemas: Record<string, Json> }).schemas.Registration!;
    expect(defaults.required).to.have.members(['username', 'password']);
  });

  it('gives every operation an id, a summary, a tag, X-Request-Id on every response, and 500 internal_error', () => {
    const ids = new Set<string>();
    eachOperation(doc, (where, op) => {
      expect(op.operationId, where).to.be.a('string');
      expect(ids.has(op.operationId as string), `${where}: duplicate operationId`).to.equal(false);
      ids.add(op.operationId as string);
      expect(op.summary, where).to.be.a('string').with.length.above(3);
      expect(op.tags, where).to.be.an('array').with.length(1);
      const responses = op.responses as Record<string, Json>;
      expect(responses, `${where} documents 500`).to.have.property('500');
      for (const [status, response] of Object.entries(responses)) {
        expect((response.headers as Json | undefined)?.['X-Request-Id'], `${where} ${status}: X-Request-Id`).to.deep.equal({
          $ref: '#/components/headers/XRequestId',
        });
      }
    });
  });

  it('lists, per status, exactly the problem codes of that status; 429 and 503 carry Retry-After; Bearer 401s carry WWW-Authenticate', () => {
    eachOperation(doc, (where, op) => {
      const responses = op.responses as Record<string, Json>;
      for (const [status, response] of Object.entries(responses)) {
        const content = response.content as Record<string, Json> | undefined;
        if (where.startsWith('POST /oauth/') && Number(status) >= 400) {
          // OAuth's format: {error, error_description}, a 401 challenging Basic.
          const schema = content?.['application/json']?.schema as Json;
          expect((schema.properties as Record<string, Json>).error!.enum, `${where} ${status}`)
            .to.be.an('array')
            .with.length.above(0);
          if (status === '401') expect((response.headers as Json)['WWW-Authenticate'], `${where} 401`).to.be.an('object');
          continue;
        }
        const problem = (content?.['application/problem+json']?.schema ?? undefined) as Json | undefined;
        // An error is a problem, but for pages (a form post's answer) and /readyz (its checks, as JSON).
        const other = (response.content as Record<string, Json> | undefined)?.['text/html'] ?? (where === 'GET /readyz' ? response : undefined);
        if (Number(status) >= 400 && !other) expect(problem, `${where} ${status}: a problem schema`).to.be.an('object');
        if (!problem) continue;
        const codes = ((problem.properties as Record<string, Json>).code!.enum ?? []) as string[];
        expect(codes.length, `${where} ${status}: codes`).to.be.above(0);
        for (const code of codes)
          expect(ERROR_CATALOG[code as keyof typeof ERROR_CATALOG]?.status, `${where}: ${code} belongs to ${status}`).to.equal(Number(status));
        const headers = response.headers as Json;
        if (status === '429' || status === '503')
          expect(headers['Retry-After'], `${where} ${status}`).to.deep.equal({ $ref: '#/components/headers/RetryAfter' });
        if (codes.includes('invalid_token')) expect(headers, `${where} ${status}`).to.have.property('WWW-Authenticate');
      }
      const bearer = ((op.security as Json[]) ?? []).some((s) => 'bearerAuth' in s);
      if (bearer) expect(responses['401'], `${where}: a Bearer route documents 401`).to.be.an('object');
    });
    const schemes = (doc.components as { securitySchemes: Record<string, Json> }).securitySchemes;
    expect(schemes.bearerAuth).to.include({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  });

  it('has examples that satisfy their own schemas', () => {
    const ajv = new Ajv2020({ strict: false, validateSchema: false });
    (addFormats as unknown as (a: Ajv2020) => void)(ajv);
    ajv.addSchema(doc, 'openapi');
    let checked = 0;
    for (const [name, schema] of Object.entries((doc.components as { schemas: Record<string, Json> }).schemas)) {
      if (schema.example === undefined) continue;
      const check = ajv.compile({ $ref: `openapi#/components/schemas/${name}` });
      expect(check(schema.example), `${name}'s example: ${ajv.errorsText(check.errors)}`).to.equal(true);
      checked++;
    }
    expect(checked).to.be.at.least(5);
  });

  it('derives request bodies from the schemas the routes validate with: what the document refuses, the server refuses', async () => {
    const credentials = (doc.components as { schemas: Record<string, Json> }).schemas.Credentials!;
    const max = ((credentials.properties as Record<string, Json>).password!.maxLength ?? 0) as number;
    expect(max).to.equal(1024);
    const res = await app.request('/v1/auth/login', { method: 'POST', json: { username: 'someone', password: 'x'.repeat(max + 1) } });
    expect(res.status).to.equal(400);
    const fine = await app.request('/v1/auth/login', { method: 'POST', json: { username: 'someone', password: 'x'.repeat(max) } });
    expect(fine.status).to.equal(401);
  });

  describe('the validator the HTTP tests go through can fail', () => {
    let validator: ContractValidator;
    before(() => {
      validator = new ContractValidator(doc);
    });

    it('accepts a real response as it is', async () => {
      const username = uniqueUsername('contract');
      const password = uniquePassword();
      await register(app, username, password);
      const tokens = await login(app, username, password);
      const res = await fetch(`${app.url}/v1/me`, { headers: { authorization: `Bearer ${tokens.accessToken}` } });
      const body = await res.text();
      expect(validator.check('GET', '/v1/me', res.status, res.headers, body)).to.deep.equal([]);

      // …and refuses it with one undocumented member, another status, a missing header, a wrong type.
      const leaked = JSON.stringify({ user: { ...(JSON.parse(body) as { user: Json }).user, passwordHash: '$argon2id$…' } });
      expect(validator.check('GET', '/v1/me', 200, res.headers, leaked).join()).to.match(/additional properties/);
      expect(validator.check('GET', '/v1/me', 201, res.headers, body).join()).to.match(/not documented/);
      const bare = new Headers(res.headers);
      bare.delete('x-request-id');
      expect(validator.check('GET', '/v1/me', 200, bare, body).join()).to.match(/X-Request-Id is missing/);
      const html = new Headers(res.headers);
      html.set('content-type', 'text/html');
      expect(validator.check('GET', '/v1/me', 200, html, body).join()).to.match(/media type/);
    });

    it('refuses a problem code the operation does not document, and a 401 invalid_token without its challenge', async () => {
      const res = await fetch(`${app.url}/v1/me`, { headers: { authorization: 'Bearer nope' } });
      const body = await res.text();
      expect(validator.check('GET', '/v1/me', 401, res.headers, body)).to.deep.equal([]);
      const other = body.replace('"invalid_token"', '"invalid_credentials"');
      expect(validator.check('GET', '/v1/me', 401, res.headers, other).join()).to.match(/allowed values/);
      const noChallenge = new Headers(res.headers);
      noChallenge.delete('www-authenticate');
      expect(validator.check('GET', '/v1/me', 401, noChallenge, body).join()).to.match(/WWW-Authenticate is missing/);
    });

    it('holds unknown paths to 404 and unknown methods to 405 with Allow', async () => {
      const missing = await app.request('/v1/nothing-here');
      expect(missing.status).to.equal(404);
      const wrongMethod = await app.request('/v1/me', { method: 'PUT' });
      expect(wrongMethod.status).to.equal(405);
      expect(validator.check('GET', '/v1/nothing-here', 200, missing.headers, '{}').join()).to.match(/must be 404/);
      const noAllow = new Headers(wrongMethod.headers);
      noAllow.delete('allow');
      expect(validator.check('PUT', '/v1/me', 405, noAllow, await wrongMethod.text()).join()).to.match(/without Allow/);
    });

    it('is what TestApp.request runs on every response', async () => {
      // A server whose document is rendered from a different configuration: /bench/baseline is not in it.
      const other = buildContainer(testConfig(app.db.url));
      const strict = (await import('../helpers/app.js')).requester(app.url, () => openApiDocument(other.config));
      let error: unknown;
      try {
        await strict('/bench/baseline');
      } catch (err) {
        error = err;
      }
      expect(String(error)).to.match(/breaks the OpenAPI document[\s\S]*must be 404/);
      const res = await strict('/bench/baseline', { contract: false });
      expect(res.status).to.equal(200);
    });
  });
});
