import { Args } from '@oclif/core';
import type { TokenInspection } from '../../src/admin/inspect-token.js';
import { paint, table } from '../../src/cli/table.js';
import { BaseCommand } from '../_base.js';
import { readPasswordFromStdin } from '../_io.js';

export default class TokenInspect extends BaseCommand<typeof TokenInspect> {
  static override summary = 'Decode an access token and verify it against the key ring, saying why it fails.';
  static override description =
    'Shows the header and claims, then runs every check a server runs: algorithm, typ, key id (unknown, retired or published), signature, issuer, audience, expiry, issue time, required claims and whether the session is live. Exit 0 when the token is valid, 1 when a check fails (the first failure is the reason). Pass `-` to read the token from standard input and keep it out of shell history.';
  static override examples = [
    'printf %s "$ACCESS_TOKEN" | <%= config.bin %> token inspect -',
    '<%= config.bin %> token inspect eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiIsInR5cCI6ImF0K2p3dCJ9.eyJ… --json',
  ];
  static override args = { jwt: Args.string({ required: true, description: 'The access token, or - to read it from standard input.' }) };

  async run(): Promise<TokenInspection> {
    const token = (this.args.jwt === '-' ? await readPasswordFromStdin(process.stdin, 'token') : this.args.jwt).trim();
    const report = await this.container.admin.inspectToken(token);
    if (!report.valid) process.exitCode = 1;
    this.say(
      [
        paint('bold', 'Header'),
        JSON.stringify(report.header, null, 2),
        paint('bold', 'Claims'),
        JSON.stringify(report.claims, null, 2),
        '',
        table(
          report.checks.map((c) => ({ ...c, ok: c.ok ? 'ok' : 'FAILED' })),
          ['check', 'ok', 'detail'],
          { stateColumns: ['ok'] },
        ),
        '',
        report.valid ? paint('green', 'Valid.') : paint('red', `Invalid: ${report.reason}`),
      ].join('\n'),
    );
    return report;
  }
}
