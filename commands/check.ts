import { Flags } from '@oclif/core';
import { checkRegion, type IssuerSource, type RegionCheckReport } from '../src/admin/check.js';
import { table } from '../src/cli/table.js';
import { resolveConfigFile } from '../src/config/load.js';
import { AppError } from '../src/platform/errors.js';
import { BaseCommand } from './_base.js';

const SHOWN: Record<string, string> = { pass: 'ok', fail: 'FAILED', skip: 'skipped' };

export default class Check extends BaseCommand<typeof Check> {
  static override summary = 'Smoke-test a deployed region over HTTP: health, JWKS, and a throw-away user from sign-up to deletion.';
  static override description = [
    'Checks /healthz, /readyz and the JWKS, then registers a user named authctl-check-<random> with a random password, logs in,',
    'verifies the access token against the JWKS and the issuer, refreshes twice (rotation), logs out (refresh and access token',
    'refused), and deletes the user with DELETE /v1/me — whatever failed before. The expected issuer is --issuer, else the',
    "config's tokens.issuer when a config file or AUTHCTL_ISSUER is given, else --url. With database access (a config file or",
    "AUTHCTL_DATABASE_URL) it also fails on a peer's dead-lettered changes or replication lag over --max-lag, and can delete the",
    'user through the database when no session can be had. Waits out 429 Retry-After up to --max-wait in all. Prints no token',
    'or password. Exit 0 when every check passes (skipped ones included), 1 when any fails.',
  ].join(' ');
  static override examples = [
    '<%= config.bin %> check --url https://auth.eu-west-1.example.com',
    'AUTHCTL_CONFIG=config/eu-west-1.json <%= config.bin %> check --url https://auth.eu-west-1.example.com --json',
  ];
  static override flags = {
    url: Flags.string({ summary: "The region's base URL, as its clients reach it.", required: true }),
    issuer: Flags.string({ summary: 'The `iss` the access tokens must carry (default: tokens.issuer of a given config, else --url).' }),
    'max-lag': Flags.integer({ summary: 'Fail when a peer lags more than this many seconds (needs database access).', default: 30, min: 1 }),
    'max-wait': Flags.integer({ summary: 'Seconds to wait out 429 Retry-After in all before failing.', default: 30, min: 0, max: 600 }),
    'revocation-wait': Flags.integer({ summary: 'Seconds a logged-out access token may still be accepted.', default: 5, min: 1, max: 60 }),
    timeout: Flags.integer({ summary: 'Seconds per request.', default: 10, min: 1, max: 120 }),
  };

  async run(): Promise<RegionCheckReport> {
    const url = regionUrl(this.flags.url);
    const configFile = resolveConfigFile({ file: this.flags.config }) !== undefined;
    const hasDatabase = configFile || process.env.AUTHCTL_DATABASE_URL !== undefined;
    const issuer: { value: string; source: IssuerSource } = this.flags.issuer
      ? { value: this.flags.issuer, source: '--issuer' }
      : configFile || process.env.AUTHCTL_ISSUER !== undefined
        ? { value: this.settings.tokens.issuer, source: 'config' }
        : { value: url, source: '--url' };
    const report = await checkRegion({
      url,
      issuer,
      database: hasDatabase ? { backlog: this.container.replication.backlog, users: this.container.users } : undefined,
      maxLagSeconds: this.flags['max-lag'],
      timeoutMs: this.flags.timeout * 1000,
      maxWaitMs: this.flags['max-wait'] * 1000,
      revocationWaitMs: this.flags['revocation-wait'] * 1000,
    });
    const rows = report.checks.map((c) => ({ ...c, result: SHOWN[c.result], ms: c.result === 'skip' ? null : c.ms }));
    this.say(`${url} (issuer "${issuer.value}", from ${issuer.source})\n${table(rows, ['check', 'result', 'ms', 'detail'], { stateColumns: ['result'] })}`);
    this.say(report.passed ? 'All checks passed.' : 'Some checks FAILED.');
    // Loud in --json mode too: a user left behind in production needs a person.
    if (report.user && !report.user.deleted) process.stderr.write(`authctl check: ${report.checks.at(-1)?.detail ?? 'the throw-away user was not deleted'}\n`);
    if (!report.passed) process.exitCode = 1;
    return report;
  }
}

function regionUrl(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash) {
    throw new AppError('invalid_request', '--url must be the http(s) base URL of the region, e.g. https://auth.eu-west-1.example.com');
  }
  return url.toString().replace(/\/+$/, '');
}
