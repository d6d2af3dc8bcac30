import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AppError } from '../platform/errors.js';

/** The three parts of a kind's message; `{{name}}` placeholders in each. */
export interface MailTemplateSet {
  /** One line; plain text (no escaping; line breaks in values become spaces). */
  subject: string;
  /** The text/plain part; values inserted as they are. */
  text: string;
  /** The text/html part; every value HTML-escaped. */
  html: string;
}

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

/** What the templates of one kind may use, and what its subject must not. */
export interface TemplateContract {
  kind: string;
  /** Every placeholder the kind's composer provides (`productName` is always provided too). */
  placeholders: readonly string[];
  /** Placeholders that carry a code or link: refused in the subject, which is logged. */
  sensitive: readonly string[];
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML content and quoted attribute values: `& < > " '`. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const PLACEHOLDER = /\{\{\s*([A-Za-z][A-Za-z0-9_]*)\s*\}\}/g;

/** The placeholder names a template uses, in order of first use. */
export function placeholdersOf(template: string): string[] {
  return [...new Set([...template.matchAll(PLACEHOLDER)].map((m) => m[1]!))];
}

/**
 * Replaces each `{{name}}` with `values[name]` passed through `escape`. A placeholder without a
 * value is an error (a template and its composer disagree), never an empty string.
 */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>, escape: (value: string) => string = (v) => v): string {
  return template.replace(PLACEHOLDER, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`the template uses {{${name}}}, which has no value`);
    return escape(value);
  });
}

const PARTS = [
  ['subject', 'subject'],
  ['text', 'txt'],
  ['html', 'html'],
] as const;

/**
 * The templates of every mail kind: the built-in ones, each part of which a file in
 * `mail.templatesDir` may replace (`<kind>.subject`, `<kind>.txt`, `<kind>.html`).
 * `load()` reads and checks the overrides (a placeholder the kind does not provide, a code or
 * link in a subject, an unreadable folder: `bad_config`, naming the file); `render()` loads
 * on first use.
 */
export class MailTemplates {
  private loaded: Map<string, MailTemplateSet> | undefined;

  constructor(
    private readonly builtins: Readonly<Record<string, MailTemplateSet>>,
    private readonly contracts: () => readonly TemplateContract[],
    private readonly dir?: string | undefined,
  ) {}

  /** Reads and checks every template now; idempotent. Throws `bad_config` naming the file. */
  load(): void {
    if (this.loaded) return;
    const dir = this.dir ? resolve(this.dir) : undefined;
    let files = new Set<string>();
    if (dir) {
      try {
        files = new Set(readdirSync(dir));
      } catch (err) {
        throw new AppError('bad_config', `mail.templatesDir: cannot read the folder ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
          cause: err,
        });
      }
    }
    const sets = new Map<string, MailTemplateSet>();
    for (const contract of this.contracts()) {
      const builtin = this.builtins[contract.kind];
      const set = { ...(builtin ?? { subject: '', text: '', html: '' }) };
      for (const [part, extension] of PARTS) {
        const name = `${contract.kind}.${extension}`;
        if (dir && files.has(name)) {
          const file = join(dir, name);
          try {
            set[part] = readFileSync(file, 'utf8');
          } catch (err) {
            throw new AppError('bad_config', `mail.templatesDir: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
          }
          if (part === 'subject') set.subject = set.subject.trim();
          checkTemplate(set[part], part, contract, `mail.templatesDir: ${file}`);
        } else if (builtin) {
          checkTemplate(set[part], part, contract, `the built-in ${name} template`);
        } else {
          throw new AppError(
            'bad_config',
            `mail.templatesDir: mail of kind ${contract.kind} has no built-in template: add ${name} to ${dir ?? 'mail.templatesDir'}`,
          );
        }
      }
      sets.set(contract.kind, set);
    }
    this.loaded = sets;
  }

  /** The kind's message with `values` in place (HTML-escaped in the html part). */
  render(kind: string, values: Readonly<Record<string, string>>): RenderedMail {
    this.load();
    const set = this.loaded!.get(kind);
    if (!set) throw new Error(`no templates for mail of kind ${kind}`);
    const subjectValues = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v.replace(/[\r\n]+/g, ' ')]));
    return {
      subject: renderTemplate(set.subject, subjectValues).trim(),
      text: renderTemplate(set.text, values),
      html: renderTemplate(set.html, values, escapeHtml),
    };
  }
}

function checkTemplate(template: string, part: 'subject' | 'text' | 'html', contract: TemplateContract, where: string): void {
  if (template.trim() === '') throw new AppError('bad_config', `${where} is empty`);
  if (part === 'subject' && /[\r\n]/.test(template)) throw new AppError('bad_config', `${where} must be one line`);
  const allowed = new Set(['productName', ...contract.placeholders]);
  for (const name of placeholdersOf(template)) {
    if (!allowed.has(name)) {
      throw new AppError(
        'bad_config',
        `${where} uses {{${name}}}, which ${contract.kind} mail does not provide (it provides ${[...allowed].map((p) => `{{${p}}}`).join(', ')})`,
      );
    }
    if (part === 'subject' && contract.sensitive.includes(name)) {
      throw new AppError('bad_config', `${where} uses {{${name}}} in the subject: subjects are logged, so codes and links belong in the body only`);
    }
  }
}
