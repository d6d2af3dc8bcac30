import { invalidRequest } from '../platform/errors.js';

// Scripts told apart for the mixed-script rule. A letter of any other script counts as one more
// script of its own ("other"), so mixing it with these is refused too.
const SCRIPTS = [
  'Latin',
  'Cyrillic',
  'Greek',
  'Armenian',
  'Georgian',
  'Hebrew',
  'Arabic',
  'Syriac',
  'Thaana',
  'Devanagari',
  'Bengali',
  'Gurmukhi',
  'Gujarati',
  'Oriya',
  'Tamil',
  'Telugu',
  'Kannada',
  'Malayalam',
  'Sinhala',
  'Thai',
  'Lao',
  'Tibetan',
  'Myanmar',
  'Khmer',
  'Mongolian',
  'Ethiopic',
  'Cherokee',
  'Han',
  'Hiragana',
  'Katakana',
  'Hangul',
  'Bopomofo',
] as const;
const SCRIPT_RES = SCRIPTS.map((name) => [name, new RegExp(`^\\p{Script=${name}}$`, 'u')] as const);

// UTS #39 §5.2 "Highly Restrictive": one script, or Latin with one of the CJK combinations.
const ALLOWED_MIXES: ReadonlyArray<ReadonlySet<string>> = [
  new Set(['Latin', 'Han', 'Hiragana', 'Katakana']),
  new Set(['Latin', 'Han', 'Bopomofo']),
  new Set(['Latin', 'Han', 'Hangul']),
];

/** The scripts of the letters of `text` (digits, punctuation and combining marks have none). */
export function scriptsOf(text: string): Set<string> {
  const found = new Set<string>();
  for (const char of text) {
    if (!/^\p{L}$/u.test(char)) continue;
    found.add(SCRIPT_RES.find(([, re]) => re.test(char))?.[0] ?? 'other');
  }
  return found;
}

/**
 * Refuses a (normalized) username that mixes scripts the way look-alike spoofs do ("pаypal" with
 * a Cyrillic "а"). NFKC already folds compatibility look-alikes (fullwidth, superscript, ligature
 * forms) onto their plain letters, so those collide with the real name instead (409); this
 * catches the cross-script homoglyphs NFKC leaves alone (UTS #39 §5.2, "Highly Restrictive").
 */
export function assertSingleScript(username: string): void {
  const scripts = scriptsOf(username);
  if (scripts.size <= 1) return;
  if (ALLOWED_MIXES.some((mix) => [...scripts].every((s) => mix.has(s)))) return;
  const message = 'username may not mix letters of different scripts';
  throw invalidRequest([{ path: 'username', message }], message);
}
