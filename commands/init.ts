import { Flags } from '@oclif/core';
import { displayPath } from '../src/cli/config-file.js';
import { liveChecks } from '../src/cli/connections.js';
import { runInit, shellQuote, type InitResult } from '../src/cli/init.js';
import { GOOGLE_SECRET_ENV, type InitAnswers } from '../src/cli/init-wizard.js';
import { callbackUrl } from '../src/cli/providers.js';
import { readPasswordFromStdin } from './_io.js';
import { paint } from '../src/cli/table.js';
import { AppError } from '../src/platform/errors.js';
import { BaseCommand } from './_base.js';

export default class Init extends BaseCommand<typeof Init> {
  static override summary = "Write a region's config file: a guided set-up at a terminal, or from flags with --yes.";
  static override description = `At a terminal, asks for the region name, public URL, PostgreSQL, Redis and SMTP URLs (trying each connection, and asking again until it works; a missing database can be created; no SMTP URL: mail stays off), whether to enable "Sign in with Google" (client ID, client secret, the app URLs sign-in may return to), whether to turn on passkeys (the RP ID, the name browsers show, the origins), token lifetimes and peer regions; then writes config/<region>.json and offers to run the migrations.

The server secret is generated here and never written to the config file: the file says "env:AUTHCTL_SECRET" and the secret is shown once, as the export line to keep (or written to --secrets-file). Peer secrets, the Google client secret ("env:AUTHCTL_GOOGLE_CLIENT_SECRET") and URLs with passwords are handled the same way.

In scripts and CI, pass --yes with the values as flags (anything not given takes its default; connections are checked unless --no-check). An existing file is never overwritten without --force (exit 4).`;
  static override examples = [
    '<%= config.bin %> init',
    '<%= config.bin %> init --yes --region eu-west-1 --public-url https://auth.eu-west-1.example.com --database-url postgres://authctl@db:5432/authctl --redis-url redis://redis:6379 --secrets-file config/eu-west-1.env --migrate',
    '<%= config.bin %> init --yes --region us-east-1 --peer eu-west-1=https://auth.eu-west-1.example.com --output config/us.json --no-check --json',
    '<%= config.bin %> init --yes --public-url https://auth.example.com --passkeys --webauthn-rp-id example.com --webauthn-origin https://app.example.com',
    'printf %s "$GOOGLE_SECRET" | <%= config.bin %> init --yes --public-url https://auth.example.com --google-client-id 1234-abc.apps.googleusercontent.com --google-client-secret-stdin --redirect-url https://app.example.com/auth/callback',
  ];
  static override flags = {
    yes: Flags.boolean({ char: 'y', summary: 'Do not ask: take every value from the flags (defaults for the rest).' }),
    region: Flags.string({ summary: 'Region name: 1–32 lowercase letters, digits or "-" (default local).' }),
    'public-url': Flags.string({ summary: 'Public base URL of this region; also the token issuer (default http://127.0.0.1:8080).' }),
    'database-url': Flags.string({ summary: 'PostgreSQL URL (default postgres://postgres@127.0.0.1:5432/authctl).' }),
    'redis-url': Flags.string({ summary: 'Redis URL (default with --yes: none, an in-process cache for one server process).' }),
    'smtp-url': Flags.string({ summary: 'SMTP URL for outgoing mail, smtp://user:password@host:587 or smtps://…:465 (default: none, mail off).' }),
    'mail-from': Flags.string({ summary: 'Sender of mail, with --smtp-url (default no-reply@<public URL host>).' }),
    'access-ttl': Flags.integer({ summary: 'Access token lifetime in seconds (default 900).' }),
    'refresh-ttl': Flags.integer({ summary: 'Session (refresh token) lifetime in seconds (default 1209600, 14 days).' }),
    peer: Flags.string({ summary: 'A peer region as name=url (repeatable); its shared secret is generated.', multiple: true }),
    'google-client-id': Flags.string({
      summary: 'Enable "Sign in with Google" with this OAuth client ID; its secret is read from standard input (--google-client-secret-stdin).',
    }),
    'google-client-secret-stdin': Flags.boolean({
      summary: 'Read the Google client secret from standard input: it goes to AUTHCTL_GOOGLE_CLIENT_SECRET, never the file.',
    }),
    'redirect-url': Flags.string({ summary: 'An app URL provider sign-in may return to (repeatable; a trailing * allows a path prefix).', multiple: true }),
    passkeys: Flags.boolean({ summary: 'Turn on passkeys (identity.webauthn); the --webauthn-* flags default from --public-url.' }),
    'webauthn-rp-id': Flags.string({
      summary: "With --passkeys: the domain passkeys belong to, the site's host or a parent of it (default: the public URL's host).",
    }),
    'webauthn-rp-name': Flags.string({ summary: 'With --passkeys: the name the browser shows while creating a passkey (default: mail.productName).' }),
    'webauthn-origin': Flags.string({
      summary: 'With --passkeys: an origin passkeys are used on, https://… or android:apk-key-hash:… (repeatable; default https://<RP ID>).',
      multiple: true,
    }),
    output: Flags.string({ char: 'o', summary: 'Config file to write (default config/<region>.json).' }),
    'secrets-file': Flags.string({ summary: 'Also write the secrets as export lines to this file (mode 600).' }),
    force: Flags.boolean({ summary: 'Overwrite an existing config (and env) file.' }),
    migrate: Flags.boolean({ summary: 'Run the migrations with the new config (asked at a terminal; default with --yes: no).', allowNo: true }),
    check: Flags.boolean({
      summary: 'With --yes: try the database, Redis and SMTP before writing (a missing database is created).',
      allowNo: true,
      default: true,
    }),
  };

  async run(): Promise<InitResult> {
    const interactive = !this.flags.yes;
    if (interactive && !(process.stdin.isTTY && process.stdout.isTTY)) {
      throw new AppError('invalid_request', 'no terminal to ask questions: pass --yes with the values as flags (see `authctl init --help`)');
    }
    const result = await runInit({
      interactive,
      given: await this.given(),
      output: this.flags.output,
      secretsFile: this.flags['secrets-file'],
      force: this.flags.force,
      migrate: this.flags.migrate,
      check: this.flags.check,
      checks: liveChecks,
    }).catch((err: unknown) => {
      if ((err as Error).name === 'ExitPromptError') throw new AppError('invalid_request', 'cancelled: nothing was written');
      throw err;
    });
    this.report(result);
    return result;
  }

  private async given(): Promise<Partial<InitAnswers>> {
    const f = this.flags;
    const peers = (f.peer ?? []).map((spec) => {
      const at = spec.indexOf('=');
      if (at < 1) throw new AppError('invalid_request', `--peer ${spec}: expected name=url`);
      return { name: spec.slice(0, at), url: spec.slice(at + 1) };
    });
    const given: Partial<InitAnswers> = { peers };
    if (f.region !== undefined) given.region = f.region;
    if (f['public-url'] !== undefined) given.publicUrl = f['public-url'];
    if (f['database-url'] !== undefined) given.databaseUrl = f['database-url'];
    if (f['redis-url'] !== undefined) given.redisUrl = f['redis-url'] === '-' ? '' : f['redis-url'];
    if (f['access-ttl'] !== undefined) given.accessTtl = f['access-ttl'];
    if (f['refresh-ttl'] !== undefined) given.refreshTtl = f['refresh-ttl'];
    if (f['smtp-url'] !== undefined && f['smtp-url'] !== '') given.smtpUrl = f['smtp-url'];
    if (f['mail-from'] !== undefined) given.mailFrom = f['mail-from'];
    if (f['redirect-url']) given.redirectUrls = f['redirect-url'];
    const webauthn = { rpId: f['webauthn-rp-id'], rpName: f['webauthn-rp-name'], origins: f['webauthn-origin'] };
    if (f.passkeys) given.passkeys = Object.fromEntries(Object.entries(webauthn).filter(([, v]) => v !== undefined));
    else if (Object.values(webauthn).some((v) => v !== undefined)) throw new AppError('invalid_request', '--webauthn-*: needs --passkeys');
    if (f['google-client-secret-stdin'] && !f['google-client-id'])
      throw new AppError('invalid_request', '--google-client-secret-stdin: needs --google-client-id');
    if (f['google-client-id'] !== undefined) {
      // Never a flag: flags end up in shell history and `ps`.
      if (!f['google-client-secret-stdin']) {
        throw new AppError('invalid_request', '--google-client-id: pass the client secret on standard input with --google-client-secret-stdin');
      }
      given.google = { clientId: f['google-client-id'], clientSecret: (await readPasswordFromStdin(process.stdin, 'Google client secret')).trim() };
    }
    return given;
  }

  private report(result: InitResult): void {
    const file = displayPath(result.file);
    this.say(`${paint('green', '✔')} Wrote ${file} (region ${result.region}).`);
    if (result.secretsFile) {
      this.say(
        `${paint('green', '✔')} Wrote the secrets to ${displayPath(result.secretsFile)} (mode 600): \`. ${displayPath(result.secretsFile)}\` before running authctl.`,
      );
    } else {
      this.say(`\n${paint('bold', 'Secrets')} (shown once, never stored by authctl: keep them in your secret manager):`);
      for (const [name, value] of Object.entries(result.secrets)) this.say(`  export ${name}=${shellQuote(value)}`);
      for (const name of result.entered) this.say(`  export ${name}=…   # the value you entered`);
    }
    if (result.migrated) this.say(`${paint('green', '✔')} Migrated the database.`);
    if (result.secretNames.includes(GOOGLE_SECRET_ENV)) {
      this.say(`\n"Sign in with Google": enter ${callbackUrl(String(result.config.publicUrl), 'google')} as an authorized redirect URI of the OAuth client.`);
    }
    const peers = result.secretNames.filter((name) => name.startsWith('AUTHCTL_PEER_'));
    if (peers.length) this.say(`\nGive each peer its shared secret (${peers.join(', ')}): both sides need the same value.`);
    this.say(`\n${paint('bold', 'Next')}:`);
    this.say(`  export AUTHCTL_CONFIG=${file}`);
    if (!result.migrated) this.say('  authctl migrate');
    this.say(
      '  authctl serve      # the API, on the port in the file (8080)\n  authctl worker     # background jobs (or serve --with-workers on a small install)',
    );
  }
}
