import { expect } from 'chai';
import type { PortableUser } from '../../src/admin/portable-user.js';

/** The lines of an NDJSON export, parsed (every line, the last one too, ends with a newline). */
export function parseExport(text: string): PortableUser[] {
  expect(text.endsWith('\n') || text === '', 'every line ends with a newline').to.equal(true);
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as PortableUser);
}
