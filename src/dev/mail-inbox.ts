/**
 * The dev inbox of `authctl dev`: `GET /dev/mail` lists what the mail catcher caught. A listener
 * of its own on loopback, started by `authctl dev` only — the production HTTP app has no such
 * route, whatever its configuration. Every value is HTML-escaped; a message's own HTML is served
 * on its own page under a CSP sandbox (no scripts, no requests), never inline.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { escapeHtml } from '../mail/templates.js';
import { closeNow, listenPreferring } from './listen.js';
import type { CaughtMail, MailCatcher } from './mail-catcher.js';

export interface MailInbox {
  /** http://127.0.0.1:<port>/dev/mail */
  readonly url: string;
  close(): Promise<void>;
}

const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";
const MESSAGE_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'";

function send(res: ServerResponse, status: number, type: string, body: string, csp = PAGE_CSP): void {
  res.writeHead(status, {
    'content-type': `${type}; charset=utf-8`,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'content-security-policy': csp,
  });
  res.end(body);
}

function row(mail: CaughtMail): string {
  const e = escapeHtml;
  const codes = mail.codes.map((c) => `<code class="code">${e(c)}</code>`).join(' ');
  const links = mail.links.map((l) => `<a href="${e(l)}" rel="noreferrer">${e(l)}</a>`).join('<br>');
  return `<tr>
<td>${e(mail.receivedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</td>
<td>${e(mail.to.join(', '))}</td>
<td><details><summary>${e(mail.subject || '(no subject)')}</summary><pre>${e(mail.text)}</pre>
${mail.html !== null ? `<a href="/dev/mail/${mail.id}.html">HTML version</a>` : ''}
<div class="meta">From ${e(mail.from)} · ${e(mail.messageId ?? 'no Message-ID')}</div></details></td>
<td>${e(mail.kind ?? '')}</td>
<td>${codes}</td>
<td>${links}</td>
</tr>`;
}

export function renderInbox(mails: CaughtMail[], smtpUrl: string): string {
  const rows = mails.length ? mails.map(row).join('\n') : '<tr><td colspan="6" class="empty">No mail yet. Everything authctl dev sends arrives here.</td></tr>';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>authctl dev inbox (${mails.length})</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:6px 8px;text-align:left;vertical-align:top;font-size:14px}
pre{white-space:pre-wrap;background:#f6f6f6;padding:8px;border-radius:4px}
.code{font-size:16px;background:#fff3bf;padding:1px 4px;border-radius:3px}
.meta{color:#777;font-size:12px}
.empty{color:#777;padding:24px}
</style>
</head>
<body>
<h1>authctl dev inbox</h1>
<p class="meta">Caught on ${escapeHtml(smtpUrl)}; nothing is delivered. Newest first; refreshes every 5 s. JSON: <a href="/dev/mail.json">/dev/mail.json</a></p>
<table>
<thead><tr><th>received</th><th>to</th><th>subject</th><th>kind</th><th>codes</th><th>links</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</body>
</html>
`;
}

function handle(catcher: MailCatcher, req: IncomingMessage, res: ServerResponse): void {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed');
  if (path === '/' || path === '/dev' || path === '/dev/') {
    res.writeHead(302, { location: '/dev/mail' });
    res.end();
    return;
  }
  if (path === '/dev/mail') return send(res, 200, 'text/html', renderInbox(catcher.list(), catcher.smtpUrl));
  if (path === '/dev/mail.json') return send(res, 200, 'application/json', JSON.stringify({ smtpUrl: catcher.smtpUrl, messages: catcher.list() }));
  const html = /^\/dev\/mail\/(\d+)\.html$/.exec(path);
  const mail = html ? catcher.get(Number(html[1])) : undefined;
  if (mail?.html != null) return send(res, 200, 'text/html', mail.html, MESSAGE_CSP);
  send(res, 404, 'text/plain', 'not found');
}

/** Serves the inbox on 127.0.0.1, on `port` when it is free, else on any free port. */
export async function startMailInbox(catcher: MailCatcher, options: { port?: number } = {}): Promise<MailInbox> {
  const server = createServer((req, res) => handle(catcher, req, res));
  const port = await listenPreferring(server, options.port);
  return {
    url: `http://127.0.0.1:${port}/dev/mail`,
    close: () => closeNow(server),
  };
}
