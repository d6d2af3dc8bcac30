import type { Context } from 'koa';
import { escapeHtml } from '../mail/templates.js';

/**
 * The few HTML pages authctl serves itself: what the links in its messages open when
 * `mail.links.*` does not point them at an app. A GET only shows a page; only its button (a form
 * POST) uses the token, so link scanners (Outlook Safe Links, mail gateways) that fetch every
 * link never spend one. The strict CSP of the API is loosened for these pages by exactly what
 * they need: inline styles and a form that posts to itself.
 */
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

function frame(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>
body{margin:0;padding:24px;background:#f6f6f6;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#222}
main{max-width:420px;margin:40px auto;background:#fff;border-radius:6px;padding:24px;line-height:1.5}
label{display:block;margin:16px 0 4px}
input[type=password]{width:100%;box-sizing:border-box;padding:8px;font-size:16px}
button{margin-top:16px;padding:10px 16px;font-size:16px;border:0;border-radius:4px;background:#1f5fbf;color:#fff;cursor:pointer}
.error{color:#a40000}
</style>
</head>
<body><main>
<h1 style="font-size:20px">${escapeHtml(title)}</h1>
${body}
</main></body>
</html>
`;
}

/** Sends a page with the headers every page gets (no caching, no referrer: the URL holds a token). */
export function sendPage(ctx: Context, status: number, title: string, body: string): void {
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.set('Content-Security-Policy', PAGE_CSP);
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.body = frame(title, body);
}

/** `GET /v1/auth/email/verify?token=…`: a button that confirms the address. */
export function verifyPage(ctx: Context, token: string, productName: string): void {
  sendPage(
    ctx,
    200,
    `${productName}: confirm your e-mail address`,
    `<p>Press the button to confirm this e-mail address for your account.</p>
<form method="post">
<input type="hidden" name="token" value="${escapeHtml(token)}">
<button type="submit">Confirm my address</button>
</form>`,
  );
}

/** `GET /v1/auth/password/reset?token=…`: the new-password form. */
export function resetPage(ctx: Context, token: string, productName: string, error?: string): void {
  sendPage(
    ctx,
    error ? 400 : 200,
    `${productName}: choose a new password`,
    `${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}<form method="post">
<input type="hidden" name="token" value="${escapeHtml(token)}">
<label for="newPassword">New password (at least 8 characters)</label>
<input type="password" id="newPassword" name="newPassword" autocomplete="new-password" minlength="8" maxlength="1024" required autofocus>
<button type="submit">Set the new password</button>
</form>`,
  );
}

/** The page after a form POST: what happened, in one sentence. */
export function resultPage(ctx: Context, status: number, title: string, message: string): void {
  sendPage(ctx, status, title, `<p${status >= 400 ? ' class="error"' : ''}>${escapeHtml(message)}</p>`);
}
