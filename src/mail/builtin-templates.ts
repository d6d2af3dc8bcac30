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

  'verify-email': {
    subject: '{{productName}}: your verification code',
    text: `Hello {{name}},

To {{action}} ({{email}}), enter this code:

    {{code}}

or open this link:

{{link}}

The code and the link work once, for {{expiresIn}}. If you did not ask for this, you can ignore this message.
`,
    html: htmlPage(
      '{{productName}}: your verification code',
      `<p>Hello {{name}},</p>
<p>To {{action}} (<strong>{{email}}</strong>), enter this code:</p>
<p style="font-size:28px;letter-spacing:6px;font-weight:bold;font-family:monospace;">{{code}}</p>
<p>or <a href="{{link}}">open this link</a>.</p>
<p style="font-size:13px;color:#555;">The code and the link work once, for {{expiresIn}}. If you did not ask for this, you can ignore this message.</p>`,
    ),
  },
  'password-reset': {
    subject: '{{productName}}: reset your password',
    text: `Hello {{name}},

Someone (we hope you) asked to reset the password of the account of {{email}}.
To choose a new password, enter this code:

    {{code}}

or open this link:

{{link}}

The code and the link work once, for {{expiresIn}}, and stop working as soon as the password changes.
If you did not ask for this, ignore this message: your password stays as it is.
`,
    html: htmlPage(
      '{{productName}}: reset your password',
      `<p>Hello {{name}},</p>
<p>Someone (we hope you) asked to reset the password of the account of <strong>{{email}}</strong>.
To choose a new password, enter this code:</p>
<p style="font-size:28px;letter-spacing:6px;font-weight:bold;font-family:monospace;">{{code}}</p>
<p>or <a href="{{link}}">open this link</a>.</p>
<p style="font-size:13px;color:#555;">The code and the link work once, for {{expiresIn}}, and stop working as soon as the password changes.
If you did not ask for this, ignore this message: your password stays as it is.</p>`,
    ),
  },
  'email-change': {
    subject: '{{productName}}: a change of your e-mail address was requested',
    text: `Hello {{name}},

At {{requestedAt}} someone signed in to your account asked to change its e-mail address to {{newEmail}}.
The change happens once the new address is confirmed; from then on, messages go there instead of here.

If this was not you, change your password now: someone else knows it.
`,
    html: htmlPage(
      '{{productName}}: a change of your e-mail address was requested',
      `<p>Hello {{name}},</p>
<p>At {{requestedAt}} someone signed in to your account asked to change its e-mail address to <strong>{{newEmail}}</strong>.
The change happens once the new address is confirmed; from then on, messages go there instead of here.</p>
<p><strong>If this was not you, change your password now</strong>: someone else knows it.</p>`,
    ),
  },
  'password-changed': {
    subject: '{{productName}}: your password was changed',
    text: `Hello {{name}},

The password of your account was changed at {{changedAt}}, and every session was signed out.

If this was not you, reset your password at once and check your account.
`,
    html: htmlPage(
      '{{productName}}: your password was changed',
      `<p>Hello {{name}},</p>
<p>The password of your account was changed at {{changedAt}}, and every session was signed out.</p>
<p><strong>If this was not you, reset your password at once</strong> and check your account.</p>`,
    ),
  },
  'signup-attempt': {
    subject: '{{productName}}: someone tried to sign up with your address',
    text: `Hello,

At {{requestedAt}} someone tried to create an account with this address, which already has one. No new account was created.

If it was you, sign in instead; if you forgot your password, reset it from the sign-in page. If it was not you, there is nothing to do.
`,
    html: htmlPage(
      '{{productName}}: someone tried to sign up with your address',
      `<p>Hello,</p>
<p>At {{requestedAt}} someone tried to create an account with this address, which already has one. No new account was created.</p>
<p>If it was you, sign in instead; if you forgot your password, reset it from the sign-in page. If it was not you, there is nothing to do.</p>`,
    ),
  },
  'login-code': {
    subject: '{{productName}}: your sign-in code',
    text: `To sign in to {{productName}} as {{email}}, enter this code:

    {{code}}

It works once, for {{expiresIn}}; a newer code replaces it. Nobody from {{productName}} will ask you for it.
If you did not try to sign in, you can ignore this message: without the code nobody gets in.
`,
    html: htmlPage(
      '{{productName}}: your sign-in code',
      `<p>To sign in to {{productName}} as <strong>{{email}}</strong>, enter this code:</p>
<p style="font-size:28px;letter-spacing:6px;font-weight:bold;font-family:monospace;">{{code}}</p>
<p style="font-size:13px;color:#555;">It works once, for {{expiresIn}}; a newer code replaces it. Nobody from {{productName}} will ask you for it.
If you did not try to sign in, you can ignore this message: without the code nobody gets in.</p>`,
    ),
  },
};
