import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * One request through node:http, for what fetch will not send: a body without Content-Type,
 * chunked transfer encoding with no Content-Length, exact header bytes. `chunks` are written one
 * by one; with no `content-length` header node uses chunked encoding.
 */
export function rawRequest(
  baseUrl: string,
  options: { method: string; path: string; headers?: Record<string, string>; chunks?: Array<string | Buffer> },
): Promise<RawResponse> {
  const url = new URL(options.path, baseUrl);
  return new Promise<RawResponse>((resolve, reject) => {
    let answered = false;
    const req = httpRequest(url, { method: options.method, headers: options.headers ?? {} }, (res) => {
      answered = true;
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => parts.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    // The server may answer (413) and close before the whole body is written: that is not a
    // client failure once a response has arrived.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end();
  });
}

/** The same answer as a fetch Response, so the usual assertions apply. */
export function toResponse(raw: RawResponse): Response {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return new Response(raw.body === '' ? null : raw.body, { status: raw.status, headers });
}
