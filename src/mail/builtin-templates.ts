import type { MailTemplateSet } from './templates.js';

/** The frame every built-in HTML message shares: plain, readable without images or CSS. */
function htmlPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
</head>
<body style="margin:0;padding:24px;background:#f6f6f6;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#222;">
<div style="max-width:560px;margin:0 auto;background:#fff;border-radius:6px;padding:24px;line-height:1.5;">
${body}
<p style="margin-top:32px;font-size:12px;color:#777;">{{productName}}</p>
</div>
</body>
</html>
`;
}

/**
 * The built-in templates, by kind. A file in `mail.templatesDir` replaces any part of them
 * (`<kind>.subject`, `<kind>.txt`, `<kind>.html`). Placeholders are `{{name}}`; the html part
 * escapes every value.
 */
export const BUILTIN_TEMPLATES: Readonly<Record<string, MailTemplateSet>> = {
  test: {
    subject: '{{productName}}: test message',
    text: `This is a test message from {{productName}} (region {{region}}), requested at {{requestedAt}}.

It was sent by \`authctl mail test\` to check that mail can be delivered: there is nothing to do.
`,
    html: htmlPage(
      '{{productName}}: test message',
      `<p>This is a test message from <strong>{{productName}}</strong> (region {{region}}), requested at {{requestedAt}}.</p>
<p>It was sent by <code>authctl mail test</code> to check that mail can be delivered: there is nothing to do.</p>`,
    ),
  },
};
