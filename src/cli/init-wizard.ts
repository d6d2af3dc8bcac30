import { confirm, input, number, password } from '@inquirer/prompts';
import { configSchema } from '../config/schema.js';
import type { ConnectionChecks } from './connections.js';
import { callbackUrl } from './providers.js';
import { envReference, generateSecret, peerSecretEnv, type ConfigFileValues, type PeerEntry } from './config-file.js';

/** What `authctl init` needs to write a region's config file. */
export interface InitAnswers {
  region: string;
  publicUrl: string;
  databaseUrl: string;
  /** Empty: no Redis (the in-process cache; one server process only). */
  redisUrl: string;
  accessTtl: number;
  refreshTtl: number;
  /** `secret` is set when the admin pasted the peer's secret; otherwise one is generated. */
  peers: Array<{ name: string; url: string; secret?: string }>;
  /** Outgoing mail: empty or absent, mail stays off. */
  smtpUrl?: string;
  /** The sender (mail.from); required with `smtpUrl`. */
  mailFrom?: string;
  /** "Sign in with Google": the OAuth client from Google Cloud console. Absent: no provider. */
  google?: { clientId: string; clientSecret: string };
  /** Where provider sign-in may send the browser back (identity.redirectUrls); required with `google`. */
  redirectUrls?: string[];
  /** Passkeys on (identity.webauthn); what is not given takes {@link passkeySettings}' defaults. Absent: off. */
  passkeys?: PasskeyAnswers;
}

/** `identity.webauthn` as init asks for it. */
export interface PasskeyAnswers {
  rpId?: string;
  /** Absent: mail.productName. */
  rpName?: string;
  origins?: string[];
}

export const INIT_DEFAULTS = {
  region: 'local',
  publicUrl: 'http://127.0.0.1:8080',
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/authctl',
  redisUrl: 'redis://127.0.0.1:6379',
  accessTtl: 900,
  refreshTtl: 1_209_600,
} as const;

/** The streams prompts read and write: the terminal, or a test's. */
export interface PromptIo {
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
}

/**
 * Checks one value against the config schema (every other key takes its default), so the wizard,
 * the flags and the file accept exactly the same values. True, or the schema's message.
 */
export function checkValue(shape: (value: unknown) => Record<string, unknown>, value: unknown): true | string {
  const result = configSchema.safeParse(shape(value));
  return result.success ? true : result.error.issues[0]!.message;
}

export const FIELDS = {
  region: (v: unknown) => ({ region: v }),
  publicUrl: (v: unknown) => ({ publicUrl: v }),
  databaseUrl: (v: unknown) => ({ database: { url: v } }),
  redisUrl: (v: unknown) => ({ cache: { redisUrl: v } }),
  accessTtl: (v: unknown) => ({ tokens: { accessTtl: v } }),
  refreshTtl: (v: unknown) => ({ tokens: { refreshTtl: v } }),
  peer: (v: unknown) => ({ regions: { peers: [v] } }),
  smtpUrl: (v: unknown) => ({ mail: { smtpUrl: v } }),
  mailFrom: (v: unknown) => ({ mail: { from: v } }),
  googleClientId: (v: unknown) => ({ identity: { providers: [{ id: 'google', clientId: v }] } }),
  redirectUrl: (v: unknown) => ({ identity: { redirectUrls: [v] } }),
  webauthnRpId: (v: unknown) => ({ identity: { webauthn: { rpId: v } } }),
  webauthnRpName: (v: unknown) => ({ identity: { webauthn: { rpName: v } } }),
  webauthnOrigin: (v: unknown) => ({ identity: { webauthn: { origins: [v] } } }),
};

/** The environment variable the Google client secret is read from: the file names it, never holds it. */
export const GOOGLE_SECRET_ENV = 'AUTHCTL_GOOGLE_CLIENT_SECRET';

/**
 * One entry of identity.redirectUrls as init accepts it: an absolute http(s) URL, or an origin and
 * a path prefix ending in "*". True, or why not.
 */
export function checkRedirectUrl(value: string): true | string {
  const schema = checkValue(FIELDS.redirectUrl, value);
  if (schema !== true) return schema;
  try {
    const url = new URL(value.replace(/\*$/, ''));
    if (url.protocol === 'https:' || url.protocol === 'http:') return true;
  } catch {
    // Not a URL: said below.
  }
  return 'an absolute http(s) URL, e.g. https://app.example.com/auth/callback (or a prefix ending in *)';
}

/**
 * The passkeys' RP ID suggested for a public URL: its host — `localhost` when that is an IP
 * address, which browsers refuse WebAuthn on.
 */
export function defaultRpId(publicUrl: string): string {
  try {
    const host = new URL(publicUrl).hostname;
    return /^\[|^\d+(\.\d+){3}$/.test(host) ? 'localhost' : host;
  } catch {
    return 'localhost';
  }
}

/** The product name the browser shows by default while creating a passkey (mail.productName's default). */
export function defaultRpName(): string {
  return configSchema.parse({}).mail.productName;
}

/** identity.webauthn's values for the answers: the RP ID defaults to the public URL's host, the origins to https://<RP ID>. */
export function passkeySettings(publicUrl: string, passkeys: PasskeyAnswers): { rpId: string; rpName?: string; origins: string[] } {
  const rpId = passkeys.rpId ?? defaultRpId(publicUrl);
  return {
    rpId,
    ...(passkeys.rpName !== undefined ? { rpName: passkeys.rpName } : {}),
    origins: passkeys.origins?.length ? passkeys.origins : [`https://${rpId}`],
  };
}

/**
 * An RP ID as init accepts it: a domain name (the schema's rule), not an IP address. True, or why not.
 */
export function checkRpId(value: string): true | string {
  const schema = checkValue(FIELDS.webauthnRpId, value);
  if (schema !== true) return schema;
  return /^\d+(\.\d+){3}$/.test(value) ? 'a domain name, not an IP address: browsers refuse passkeys on IP addresses (use localhost in development)' : true;
}

/**
 * One origin of identity.webauthn.origins for an RP ID: the schema's form, and a web origin's host
 * must be the RP ID or under it (a browser refuses a ceremony elsewhere). True, or why not.
 */
export function checkPasskeyOrigin(value: string, rpId: string): true | string {
  const schema = checkValue(FIELDS.webauthnOrigin, value);
  if (schema !== true) return schema;
  if (value.startsWith('android:')) return true;
  const host = new URL(value).hostname;
  return host === rpId || host.endsWith(`.${rpId}`) ? true : `${value} is not on ${rpId}: its host must be ${rpId} or a subdomain of it`;
}

/** A comma-separated answer as a list. */
export function splitList(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** `no-reply@<the public URL's host>`, the sender suggested for a region. */
export function defaultMailFrom(publicUrl: string): string {
  try {
    return `no-reply@${new URL(publicUrl).hostname}`;
  } catch {
    return 'no-reply@localhost';
  }
}

/**
 * Asks for each answer in turn; connections are tried as they are given and asked again until they
 * work. `onRegion` runs once the region is known (e.g. to refuse an existing file before asking more).
 */
export async function askInitAnswers(
  defaults: Partial<InitAnswers>,
  checks: ConnectionChecks,
  io: PromptIo = {},
  onRegion: (region: string) => void = () => undefined,
): Promise<InitAnswers> {
  const say = (text: string) => (io.output ?? process.stdout).write(`${text}\n`);
  const region = await input({ message: 'Region name', default: defaults.region ?? INIT_DEFAULTS.region, validate: (v) => checkValue(FIELDS.region, v) }, io);
  onRegion(region);
  const publicUrl = await input(
    {
      message: 'Public URL (where apps and peer regions reach this region)',
      default: defaults.publicUrl ?? INIT_DEFAULTS.publicUrl,
      validate: (v) => checkValue(FIELDS.publicUrl, v),
    },
    io,
  );

  let databaseUrl = defaults.databaseUrl ?? INIT_DEFAULTS.databaseUrl;
  for (;;) {
    databaseUrl = await input({ message: 'PostgreSQL URL', default: databaseUrl, validate: (v) => checkValue(FIELDS.databaseUrl, v) }, io);
    let result = await checks.database(databaseUrl);
    if (
      !result.ok &&
      result.missingDatabase &&
      (await confirm({ message: `Database ${result.missingDatabase} does not exist. Create it?`, default: true }, io))
    ) {
      try {
        await checks.createDatabase(databaseUrl);
        result = await checks.database(databaseUrl);
      } catch (err) {
        result = { ok: false, reason: `could not create it: ${(err as Error).message}` };
      }
    }
    if (result.ok) {
      say(`  ✔ connected (${result.detail})`);
      break;
    }
    say(`  ✖ ${result.reason}. Try again.`);
  }

  let redisUrl: string = defaults.redisUrl ?? INIT_DEFAULTS.redisUrl;
  for (;;) {
    redisUrl = (
      await input(
        {
          message: 'Redis URL (- for none: in-process cache, one server process only)',
          default: redisUrl || '-',
          validate: (v) => v.trim() === '-' || checkValue(FIELDS.redisUrl, v.trim()),
        },
        io,
      )
    ).trim();
    if (redisUrl === '-') {
      redisUrl = '';
      break;
    }
    const result = await checks.redis(redisUrl);
    if (result.ok) {
      say(`  ✔ connected (${result.detail})`);
      break;
    }
    say(`  ✖ ${result.reason}. Try again.`);
  }

  let smtpUrl = defaults.smtpUrl ?? '';
  for (;;) {
    smtpUrl = (
      await input(
        {
          message: 'SMTP URL for outgoing mail (smtp://user:password@host:587, or smtps://…:465; blank: no mail)',
          ...(smtpUrl ? { default: smtpUrl } : {}),
          validate: (v) => v.trim() === '' || checkValue(FIELDS.smtpUrl, v.trim()),
        },
        io,
      )
    ).trim();
    if (smtpUrl === '') break;
    const result = await checks.smtp(smtpUrl);
    if (result.ok) {
      say(`  ✔ connected (${result.detail})`);
      break;
    }
    say(`  ✖ ${result.reason}. Try again.`);
  }
  const mailFrom = smtpUrl
    ? await input(
        { message: 'Sender of mail (From)', default: defaults.mailFrom ?? defaultMailFrom(publicUrl), validate: (v) => checkValue(FIELDS.mailFrom, v.trim()) },
        io,
      )
    : undefined;

  const provider = await askGoogle(defaults, publicUrl, io);
  const passkeys = await askPasskeys(defaults, publicUrl, io);

  const accessTtl = await askSeconds('Access token lifetime, seconds', defaults.accessTtl ?? INIT_DEFAULTS.accessTtl, FIELDS.accessTtl, io);
  const refreshTtl = await askSeconds('Session (refresh token) lifetime, seconds', defaults.refreshTtl ?? INIT_DEFAULTS.refreshTtl, FIELDS.refreshTtl, io);

  const peers: InitAnswers['peers'] = [...(defaults.peers ?? [])];
  while (await confirm({ message: peers.length ? 'Add another peer region?' : 'Add a peer region (another region of this deployment)?', default: false }, io)) {
    const name = await input(
      {
        message: 'Peer region name',
        validate: (v) => (v === region ? 'that is this region' : peers.some((p) => p.name === v) ? 'already added' : checkValue(FIELDS.region, v)),
      },
      io,
    );
    const url = await input({ message: `${name}'s public URL`, validate: (v) => checkValue(FIELDS.publicUrl, v) }, io);
    const generate = await confirm({ message: `Generate a new shared secret for ${name}? (No: enter the one ${name} gave you)`, default: true }, io);
    const secret = generate
      ? undefined
      : await password({ message: `Shared secret of ${name}`, mask: '*', validate: (v) => (v.length >= 32 ? true : 'at least 32 characters') }, io);
    peers.push({ name, url, ...(secret ? { secret } : {}) });
  }
  return {
    region,
    publicUrl,
    databaseUrl,
    redisUrl,
    accessTtl,
    refreshTtl,
    peers,
    ...(smtpUrl ? { smtpUrl, mailFrom: mailFrom!.trim() } : {}),
    ...provider,
    ...passkeys,
  };
}

/** Passkeys: the RP ID, the name the browser shows and the origins ceremonies may run on. */
async function askPasskeys(defaults: Partial<InitAnswers>, publicUrl: string, io: PromptIo): Promise<Pick<InitAnswers, 'passkeys'>> {
  if (
    !(await confirm(
      { message: 'Turn on passkeys? (sign-in and second steps with WebAuthn: Face ID, Windows Hello, security keys)', default: Boolean(defaults.passkeys) },
      io,
    ))
  ) {
    return {};
  }
  const given = passkeySettings(publicUrl, defaults.passkeys ?? {});
  (io.output ?? process.stdout).write(
    "  The RP ID is the domain passkeys belong to: your site's host or a parent domain of it. Changing it later orphans every passkey.\n",
  );
  const rpId = (await input({ message: 'Passkeys RP ID (a domain, e.g. example.com)', default: given.rpId, validate: (v) => checkRpId(v.trim()) }, io)).trim();
  const rpName = (
    await input(
      {
        message: 'Name the browser shows while creating a passkey',
        default: given.rpName ?? defaultRpName(),
        validate: (v) => checkValue(FIELDS.webauthnRpName, v.trim()),
      },
      io,
    )
  ).trim();
  const origins = splitList(
    await input(
      {
        message: 'Origins passkeys are used on (comma-separated: https://… sites, android:apk-key-hash:… apps)',
        // The origins given were for the RP ID given: another RP ID starts from its own.
        default: (rpId === given.rpId ? given : passkeySettings(publicUrl, { rpId })).origins.join(', '),
        validate: (v) => {
          const list = splitList(v);
          if (list.length === 0) return 'at least one origin';
          return list.map((origin) => checkPasskeyOrigin(origin, rpId)).find((ok) => ok !== true) ?? true;
        },
      },
      io,
    ),
  );
  return { passkeys: { rpId, ...(rpName !== defaultRpName() ? { rpName } : {}), origins } };
}

/** "Sign in with Google": the OAuth client of Google Cloud console and the app URLs to send users back to. */
async function askGoogle(defaults: Partial<InitAnswers>, publicUrl: string, io: PromptIo): Promise<Pick<InitAnswers, 'google' | 'redirectUrls'>> {
  if (
    !(await confirm({ message: 'Enable "Sign in with Google"? (needs an OAuth client ID from Google Cloud console)', default: Boolean(defaults.google) }, io))
  ) {
    return {};
  }
  (io.output ?? process.stdout).write(`  Authorized redirect URI to enter at Google: ${callbackUrl(publicUrl, 'google')}\n`);
  const clientId = (
    await input(
      {
        message: 'Google client ID (….apps.googleusercontent.com)',
        default: defaults.google?.clientId,
        validate: (v) => checkValue(FIELDS.googleClientId, v.trim()),
      },
      io,
    )
  ).trim();
  const clientSecret = await password({ message: 'Google client secret', mask: '*', validate: (v) => (v.trim() !== '' ? true : 'required') }, io);
  const redirectUrls = splitList(
    await input(
      {
        message: "Your app's URLs that sign-in may return to (comma-separated; a trailing * allows a path prefix)",
        ...(defaults.redirectUrls?.length ? { default: defaults.redirectUrls.join(', ') } : {}),
        validate: (v) => {
          const urls = splitList(v);
          if (urls.length === 0) return 'at least one URL';
          return urls.map(checkRedirectUrl).find((ok) => ok !== true) ?? true;
        },
      },
      io,
    ),
  );
  return { google: { clientId, clientSecret: clientSecret.trim() }, redirectUrls };
}

/** The identity block: the provider and where it returns, and passkeys. */
function identityValues(answers: InitAnswers): ConfigFileValues {
  return {
    ...(answers.google
      ? {
          providers: [{ id: 'google', clientId: answers.google.clientId, clientSecret: envReference(GOOGLE_SECRET_ENV) }],
          redirectUrls: answers.redirectUrls ?? [],
        }
      : {}),
    ...(answers.passkeys ? { webauthn: { enabled: true, ...passkeySettings(answers.publicUrl, answers.passkeys) } } : {}),
  };
}

async function askSeconds(message: string, fallback: number, field: (v: unknown) => Record<string, unknown>, io: PromptIo): Promise<number> {
  const value = await number({ message, default: fallback, required: true, validate: (v) => checkValue(field, v) }, io);
  return value ?? fallback;
}

/**
 * The config file for the answers, and the secrets it refers to by environment variable (never in
 * the file). `entered` names the secrets the admin typed (already known to them: not shown again).
 */
export function buildConfigFile(answers: InitAnswers): { values: ConfigFileValues; secrets: Record<string, string>; entered: string[] } {
  const secrets: Record<string, string> = { AUTHCTL_SECRET: generateSecret() };
  const entered: string[] = [];
  // A URL with a password goes to the environment too; the file then only names the variable.
  const viaEnv = (url: string, name: string): string => {
    if (!new URL(url).password) return url;
    secrets[name] = url;
    entered.push(name);
    return envReference(name);
  };
  const peers: PeerEntry[] = answers.peers.map((peer) => {
    const name = peerSecretEnv(peer.name);
    secrets[name] = peer.secret ?? generateSecret();
    if (peer.secret) entered.push(name);
    return { name: peer.name, url: peer.url, secret: envReference(name) };
  });
  const values: ConfigFileValues = {
    region: answers.region,
    publicUrl: answers.publicUrl,
    http: { host: '0.0.0.0', port: 8080 },
    database: { url: viaEnv(answers.databaseUrl, 'AUTHCTL_DATABASE_URL') },
    ...(answers.redisUrl ? { cache: { redisUrl: viaEnv(answers.redisUrl, 'AUTHCTL_REDIS_URL') } } : {}),
    tokens: { issuer: answers.publicUrl, audience: 'authctl', accessTtl: answers.accessTtl, refreshTtl: answers.refreshTtl },
    ...(peers.length ? { regions: { peers } } : {}),
    ...(answers.smtpUrl
      ? { mail: { transport: 'smtp', smtpUrl: viaEnv(answers.smtpUrl, 'AUTHCTL_SMTP_URL'), from: answers.mailFrom ?? defaultMailFrom(answers.publicUrl) } }
      : {}),
    ...(answers.google || answers.passkeys ? { identity: identityValues(answers) } : {}),
    secret: envReference('AUTHCTL_SECRET'),
  };
  if (answers.google) {
    secrets[GOOGLE_SECRET_ENV] = answers.google.clientSecret;
    entered.push(GOOGLE_SECRET_ENV);
  }
  return { values, secrets, entered };
}
