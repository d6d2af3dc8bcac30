import { AssertionError } from 'node:assert';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/**
 * The OpenAPI document as the contract the HTTP tests hold the server to. Every response that goes
 * through `TestApp.request` (test/helpers/app.ts) is checked here against the document the same
 * server serves at `/openapi.json`: its status is one the operation documents, the headers the
 * document requires are there and well-formed, its media type is documented, and its body
 * validates (ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses) against that status's schema — the
 * problem schemas limit `code` to the codes the operation documents. An unknown path must be a
 * `404` problem, a known path with another method a `405` problem with `Allow`.
 */

type Json = Record<string, unknown>;
interface Operation {
  method: string;
  template: string;
  pointer: string;
  responses: Record<string, Json>;
}
interface PathEntry {
  template: string;
  pattern: RegExp;
  exact: RegExp;
  operations: Map<string, Operation>;
}

const JSON_TYPES = /^application\/(?:[\w.-]+\+)?json$/;

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

export class ContractValidator {
  private readonly ajv: Ajv2020;
  private readonly paths: PathEntry[] = [];
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(readonly document: Json) {
    this.ajv = new Ajv2020({ strict: false, validateSchema: false, allErrors: true });
    (addFormats as unknown as (ajv: Ajv2020) => void)(this.ajv);
    this.ajv.addSchema(document, 'openapi');
    for (const [template, item] of Object.entries(document.paths as Record<string, Json>)) {
      // @koa/router matches case-insensitively and with or without a trailing slash.
      const source = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+');
      const operations = new Map<string, Operation>();
      for (const [method, op] of Object.entries(item)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        operations.set(method, {
          method,
          template,
          pointer: `#/paths/${escapePointer(template)}/${method}`,
          responses: (op as { responses: Record<string, Json> }).responses,
        });
      }
      this.paths.push({ template, pattern: new RegExp(`^${source}/?$`, 'i'), exact: new RegExp(`^${source}$`, 'i'), operations });
    }
  }

  /** The schema at a JSON pointer of the document, compiled once. */
  private validator(pointer: string): ValidateFunction {
    let fn = this.compiled.get(pointer);
    if (!fn) {
      fn = this.ajv.compile({ $ref: `openapi${pointer}` });
      this.compiled.set(pointer, fn);
    }
    return fn;
  }

  private resolve(object: Json): Json {
    const ref = object.$ref;
    if (typeof ref !== 'string') return object;
    let node: unknown = this.document;
    for (const part of ref.slice(2).split('/')) node = (node as Json)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    return node as Json;
  }

  /** The violations of the contract by this response to `method path` (empty: it conforms). */
  check(method: string, rawPath: string, status: number, headers: Headers, body: string): string[] {
    const path = new URL(rawPath, 'http://x').pathname;
    const verb = method.toLowerCase();
    const entry = this.paths.find((p) => p.exact.test(path)) ?? this.paths.find((p) => p.pattern.test(path));
    const where = `${method.toUpperCase()} ${path} → ${status}`;
    if (!entry) {
      if (status !== 404) return [`${where}: the path is not in the document, so the answer must be 404 (got ${status})`];
      return this.checkFailure(where, path, status, headers, body, 'not_found');
    }
    if (verb === 'options') return []; // CORS preflights and Allow answers are HTTP's, not the API's
    const op = entry.operations.get(verb === 'head' ? 'get' : verb);
    if (!op) {
      const violations =
        status === 405
          ? this.checkFailure(where, path, status, headers, body, 'method_not_allowed')
          : [`${where}: ${method} is not documented for ${entry.template}, so the answer must be 405`];
      if (status === 405 && !headers.get('allow')) violations.push(`${where}: a 405 without Allow`);
      return violations;
    }
    const response = op.responses[String(status)] ?? op.responses.default;
    if (!response)
      return [
        `${where}: status ${status} is not documented for ${op.method.toUpperCase()} ${op.template} (documented: ${Object.keys(op.responses).join(', ')})`,
      ];
    const key = op.responses[String(status)] ? String(status) : 'default';
    const violations: string[] = [];
    for (const [name, declared] of Object.entries((response.headers ?? {}) as Record<string, Json>)) {
      const header = this.resolve(declared);
      const value = headers.get(name);
      if (value === null) {
        if (header.required === true) violations.push(`${where}: the required header ${name} is missing`);
        continue;
      }
      if (header.schema) {
        const pointer = typeof declared.$ref === 'string' ? `${declared.$ref}/schema` : `${op.pointer}/responses/${key}/headers/${escapePointer(name)}/schema`;
        if (!this.validator(pointer)(value)) violations.push(`${where}: header ${name}: ${JSON.stringify(value)} does not match its schema`);
      }
    }
    const content = response.content as Record<string, Json> | undefined;
    if (!content) {
      if (body.length > 0 && verb !== 'head') violations.push(`${where}: the document says no body, but the response has ${body.length} bytes`);
      return violations;
    }
    const type = (headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (!(type in content)) return [...violations, `${where}: media type "${type}" is not documented (documented: ${Object.keys(content).join(', ')})`];
    if (verb === 'head') return violations;
    let value: unknown = body;
    if (JSON_TYPES.test(type)) {
      try {
        value = JSON.parse(body);
      } catch {
        return [...violations, `${where}: the body is not JSON: ${body.slice(0, 200)}`];
      }
    }
    const fn = this.validator(`${op.pointer}/responses/${key}/content/${escapePointer(type)}/schema`);
    if (!fn(value)) violations.push(`${where}: the body does not match the schema: ${this.ajv.errorsText(fn.errors)}; body: ${body.slice(0, 400)}`);
    return violations;
  }

  /**
   * An answer no operation describes (unknown path or method): a failure in the format the
   * document's `x-error-formats` gives for that path — OAuth's error on /oauth/*, else a problem.
   */
  private checkFailure(where: string, path: string, status: number, headers: Headers, body: string, code: string): string[] {
    const formats = (this.document['x-error-formats'] ?? []) as { prefix: string; mediaType: string; schema: { $ref: string } }[];
    const format = formats.find((f) => path.startsWith(f.prefix));
    if (!format) return [`${where}: the document gives no error format for this path`];
    const type = (headers.get('content-type') ?? '').split(';')[0]!.trim();
    if (type !== format.mediaType) return [`${where}: expected a ${format.mediaType} body, got "${type}"`];
    let failure: Json;
    try {
      failure = JSON.parse(body) as Json;
    } catch {
      return [`${where}: the body is not JSON`];
    }
    const fn = this.validator(format.schema.$ref);
    const violations: string[] = [];
    if (!fn(failure)) violations.push(`${where}: not a ${format.schema.$ref}: ${this.ajv.errorsText(fn.errors)}`);
    if (format.mediaType === 'application/problem+json' && (failure.code !== code || failure.status !== status))
      violations.push(`${where}: expected a ${status} problem with code ${code}, got ${body.slice(0, 200)}`);
    if (!headers.get('x-request-id')) violations.push(`${where}: no X-Request-Id`);
    return violations;
  }
}

/** Where a validator gets its document: the server's own `/openapi.json`, or a document in hand. */
export type ContractSource = string | (() => Record<string, unknown>);

/**
 * A validator for a server: from the document it serves (`source` is its base URL), or from a
 * function that renders the same document in process — what startTestApp passes, so that
 * fetching the document adds no request to the logs and metrics a test counts
 * (test/http/openapi.test.ts checks that the served document is that same rendering).
 */
export async function contractOf(source: ContractSource): Promise<ContractValidator> {
  if (typeof source !== 'string') return new ContractValidator(JSON.parse(JSON.stringify(source())) as Json);
  const res = await fetch(`${source}/openapi.json`);
  if (res.status !== 200) throw new Error(`${source}/openapi.json answered ${res.status}`);
  return new ContractValidator((await res.json()) as Json);
}

/** Throws an AssertionError naming every way `res` (to `method path`) breaks the server's document. */
export async function assertConforms(validator: Promise<ContractValidator>, method: string, path: string, res: Response): Promise<void> {
  const body = res.body === null ? '' : await res.clone().text();
  const violations = (await validator).check(method, path, res.status, res.headers, body);
  if (violations.length > 0) throw new AssertionError({ message: `the response breaks the OpenAPI document:\n  ${violations.join('\n  ')}` });
}
