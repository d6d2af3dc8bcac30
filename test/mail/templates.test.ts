import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { z } from 'zod';
import { BUILTIN_TEMPLATES } from '../../src/mail/builtin-templates.js';
import { isSecretMemberName, MailComposers, testComposer, type MailComposer } from '../../src/mail/composers.js';
import { MailMessages, messageIdFor } from '../../src/mail/messages.js';
import { escapeHtml, MailTemplates, placeholdersOf, renderTemplate } from '../../src/mail/templates.js';
import { ManualClock } from '../../src/platform/clock.js';
import { AppError } from '../../src/platform/errors.js';

const HOSTILE = `<script>alert("x")</script> & 'quotes' "double"`;

/** A kind with a code and a link, as a later flow's would be (values given here, not derived). */
const codeComposer: MailComposer<{ tokenId: string }> = {
  kind: 'sample-code',
  description: 'a sample with a code and a link',
  data: z.strictObject({ tokenId: z.string().uuid() }),
  placeholders: ['name', 'code', 'link'],
  sensitive: ['code', 'link'],
  compose: async () => Promise.resolve({ name: HOSTILE, code: '123456', link: 'https://auth.example.test/verify?t=a"b<c' }),
};

const SAMPLE_TEMPLATES = {
  ...BUILTIN_TEMPLATES,
  'sample-code': {
    subject: 'Hello {{name}}',
    text: 'Hi {{name}}, your code is {{code}}: {{link}}',
    html: '<p title="{{name}}">Hi {{name}}, your code is <b>{{code}}</b>: <a href="{{link}}">verify</a></p>',
  },
};

function registry(): MailComposers {
  return new MailComposers().register(testComposer).register(codeComposer);
}

describe('mail templates, composers and the reference-only rule', function () {
  let dir: string;

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'authctl-mail-templates-'));
  });

  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('escapeHtml and renderTemplate', function () {
    it('escapes & < > " \' and nothing else', function () {
      expect(escapeHtml(HOSTILE)).to.equal('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39; &quot;double&quot;');
      expect(escapeHtml('plain text, émoji 😀, 100%')).to.equal('plain text, émoji 😀, 100%');
    });

    it('property: escaped text holds no markup character and decodes back to the input', function () {
      const decode = (s: string) =>
        s
          .replace(/&lt;/g, '<')
          .replace(/&gt;/g, '>')
          .replace(/&quot;/g, '"')
          .replace(/&#39;/g, "'")
          .replace(/&amp;/g, '&');
      fc.assert(
        fc.property(fc.string({ unit: 'binary' }), (value) => {
          const escaped = escapeHtml(value);
          expect(escaped).not.to.match(/[<>"']/);
          expect(escaped.replace(/&(amp|lt|gt|quot|#39);/g, '')).not.to.contain('&');
          expect(decode(escaped)).to.equal(value);
        }),
        { numRuns: 200 },
      );
    });

    it('replaces {{name}} (spaces allowed), escapes only in the html part, and refuses a placeholder without a value', function () {
      expect(placeholdersOf('{{a}} {{ b }} {{a}} {{ not valid-}} {x}')).to.deep.equal(['a', 'b']);
      expect(renderTemplate('<i>{{ v }}</i>', { v: HOSTILE }, escapeHtml)).to.equal(`<i>${escapeHtml(HOSTILE)}</i>`);
      expect(renderTemplate('{{v}}', { v: HOSTILE })).to.equal(HOSTILE);
      // A value is inserted once: placeholders inside values are not expanded again.
      expect(renderTemplate('{{a}}', { a: '{{b}}', b: 'no' })).to.equal('{{b}}');
      expect(() => renderTemplate('{{missing}}', {})).to.throw(/\{\{missing\}\}/);
    });
  });

  describe('MailTemplates', function () {
    it('renders the built-in templates with every value escaped in HTML (a <script> in a value stays text)', async function () {
      const composers = registry();
      const templates = new MailTemplates(SAMPLE_TEMPLATES, () => composers.contracts());
      const messages = new MailMessages({
        composers,
        templates,
        config: { from: 'Example <no-reply@Example.TEST>', productName: 'Acme "ID" <b>' },
        region: 'eu',
        clock: new ManualClock(Date.parse('2030-01-02T03:04:05Z')),
      });
      const mail = (await messages.build({ kind: 'sample-code', to: 'bob@example.test', data: { tokenId: '0a1b2c3d-0000-4000-8000-000000000000' } }, 'job-1'))!;
      expect(mail.html).not.to.contain('<script>');
      expect(mail.html).to.contain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
      expect(mail.html).to.contain('title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39; &quot;double&quot;"');
      expect(mail.html).to.contain('href="https://auth.example.test/verify?t=a&quot;b&lt;c"');
      expect(mail.text).to.contain(HOSTILE);
      expect(mail.subject).to.equal(`Hello ${HOSTILE}`);
      expect(mail.messageId).to.equal('<mail.job-1@example.test>');
      expect(mail.headers).to.deep.equal({ 'Auto-Submitted': 'auto-generated', 'X-Authctl-Kind': 'sample-code' });

      const test = (await messages.build({ kind: 'test', to: 'bob@example.test', data: {} }, null))!;
      expect(test.subject).to.equal('Acme "ID" <b>: test message');
      expect(test.text).to.contain('(region eu), requested at 2030-01-02T03:04:05.000Z.');
      expect(test.html).to.contain('<strong>Acme &quot;ID&quot; &lt;b&gt;</strong>');
      expect(test.messageId).to.match(/^<direct\.[0-9a-f-]{36}@example\.test>$/);
    });

    it('mail.templatesDir replaces each part on its own (<kind>.subject, .txt, .html) and falls back for the rest', function () {
      writeFileSync(join(dir, 'test.subject'), '  [{{productName}}] it works ({{region}})\n');
      writeFileSync(join(dir, 'test.html'), '<h1>{{productName}}</h1><p>{{ requestedAt }}</p>');
      writeFileSync(join(dir, 'unrelated.txt'), 'ignored: no such kind');
      const composers = registry();
      const templates = new MailTemplates(SAMPLE_TEMPLATES, () => composers.contracts(), dir);
      const rendered = templates.render('test', { productName: '<Acme>', region: 'eu', requestedAt: 'now' });
      expect(rendered.subject).to.equal('[<Acme>] it works (eu)');
      expect(rendered.html).to.equal('<h1>&lt;Acme&gt;</h1><p>now</p>');
      expect(rendered.text).to.contain('This is a test message from <Acme> (region eu), requested at now.');
    });

    it('refuses, with bad_config naming the file: an unknown placeholder, a code or link in a subject, a two-line subject, an empty file, a missing folder', function () {
      const composers = registry();
      const load = (files: Record<string, string>, folder = dir) => {
        rmSync(dir, { recursive: true, force: true });
        dir = mkdtempSync(join(tmpdir(), 'authctl-mail-templates-'));
        for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
        try {
          new MailTemplates(SAMPLE_TEMPLATES, () => composers.contracts(), folder === '' ? dir : folder).load();
        } catch (err) {
          expect(err).to.be.instanceOf(AppError);
          expect((err as AppError).code).to.equal('bad_config');
          return (err as AppError).detail;
        }
        return expect.fail('loaded');
      };
      expect(load({ 'test.txt': 'Hi {{nme}}' }, '')).to.match(
        /^mail\.templatesDir: .*test\.txt uses \{\{nme\}\}, which test mail does not provide \(it provides \{\{productName\}\}, \{\{region\}\}, \{\{requestedAt\}\}\)/,
      );
      expect(load({ 'sample-code.subject': 'Your code is {{code}}' }, '')).to.match(
        /sample-code\.subject uses \{\{code\}\} in the subject: subjects are logged/,
      );
      expect(load({ 'test.subject': 'one\ntwo' }, '')).to.match(/test\.subject must be one line/);
      expect(load({ 'test.html': '  \n' }, '')).to.match(/test\.html is empty/);
      expect(load({}, join(dir, 'missing'))).to.match(/^mail\.templatesDir: cannot read the folder .*missing \(ENOENT\)/);
    });
  });

  describe('MailComposers: the registry and what a job may hold', function () {
    it('refuses a duplicate or malformed kind, and a sensitive value that is not a placeholder', function () {
      expect(() => registry().register(testComposer)).to.throw(/registered twice/);
      expect(() => new MailComposers().register({ ...testComposer, kind: 'Bad Kind' })).to.throw(/lowercase/);
      expect(() => new MailComposers().register({ ...testComposer, sensitive: ['code'] })).to.throw(/not one of its placeholders/);
      expect(registry().kinds()).to.deep.equal(['test', 'sample-code']);
    });

    it('keeps references and refuses anything that would put a secret or content in the job row', function () {
      const composers = registry();
      const tokenId = '0a1b2c3d-0000-4000-8000-000000000000';
      expect(composers.check({ kind: 'sample-code', to: ' bob@example.test ', data: { tokenId } })).to.deep.equal({
        kind: 'sample-code',
        to: 'bob@example.test',
        data: { tokenId },
      });
      const refused = (request: Parameters<MailComposers['check']>[0]) => {
        try {
          composers.check(request);
        } catch (err) {
          expect((err as AppError).code).to.equal('invalid_request');
          return (err as AppError).detail;
        }
        return expect.fail('accepted');
      };
      expect(refused({ kind: 'nope', to: 'bob@example.test', data: {} })).to.match(/no mail of kind "nope" \(known: test, sample-code\)/);
      expect(refused({ kind: 'test', to: 'Bob <bob@example.test>', data: {} })).to.match(/recipient must be an e-mail address/);
      expect(refused({ kind: 'test', to: 'bob@example.test\r\nBcc: eve@example.test', data: {} })).to.match(/recipient/);
      expect(refused({ kind: 'sample-code', to: 'bob@example.test', data: { tokenId, code: '123456' } })).to.match(/data\.code looks like a secret/);
      expect(refused({ kind: 'sample-code', to: 'bob@example.test', data: { tokenId, resetLink: 'x' } })).to.match(/data\.resetLink looks like a secret/);
      expect(refused({ kind: 'sample-code', to: 'bob@example.test', data: { tokenId, next: 'https://evil.test/' } })).to.match(/data\.next is a URL/);
      expect(refused({ kind: 'sample-code', to: 'bob@example.test', data: { tokenId, note: 'x'.repeat(201) } })).to.match(/at most 200 characters/);
      expect(refused({ kind: 'sample-code', to: 'bob@example.test', data: { tokenId: { nested: true } } as never })).to.match(
        /must be a string, number, boolean or null/,
      );
      expect(refused({ kind: 'sample-code', to: 'bob@example.test', data: { tokenId, extra: 1 } })).to.match(
        /^mail of kind sample-code: data: Unrecognized key/,
      );
      expect(refused({ kind: 'sample-code', to: 'bob@example.test', data: { tokenId: 'not-a-uuid' } })).to.match(/data\.tokenId/);
    });

    it('tells references from secrets by member name', function () {
      for (const name of ['tokenId', 'userId', 'sessionId', 'context', 'locale', 'attempt', 'keyId']) expect(isSecretMemberName(name), name).to.equal(false);
      for (const name of ['code', 'otp', 'token', 'resetToken', 'verify_url', 'magicLink', 'codeHash', 'password', 'apiKey', 'body', 'htmlBody', 'verifyURL'])
        expect(isSecretMemberName(name), name).to.equal(true);
    });

    it("derives Message-IDs from the job id (the same for every attempt) and the sender's domain", function () {
      expect(messageIdFor('1234', 'no-reply@Mail.Example.test')).to.equal('<mail.1234@mail.example.test>');
      expect(messageIdFor('1234', '"Acme, Inc." <a@b.test>')).to.equal('<mail.1234@b.test>');
      expect(messageIdFor(null, 'a@b.test')).not.to.equal(messageIdFor(null, 'a@b.test'));
    });
  });
});
