import { z } from 'zod';
import { mailSchema } from './mail.js';

const seconds = (min: number, max: number) => z.number().int().min(min).max(max);
const url = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL with protocol ${protocols.join(' or ')}`,
  );

/**
 * The whole configuration of one region. Every field has a default except the server secret,
 * which commands that sign or MAC anything require (see `requireSecret`). Durations are seconds.
 */
export const configSchema = z.strictObject({
  region: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be 1–32 lowercase letters, digits or "-", starting with a letter')
    .default('local'),
  publicUrl: url(['http:', 'https:']).optional(),
  http: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
      // Server processes sharing the port (node:cluster): one Node process uses one core for
      // JavaScript, so give a server as many as the cores it should use. 1 = no cluster.
      processes: z.number().int().min(1).max(64).default(1),
      bodyLimit: z.number().int().min(1024).max(1_048_576).default(16_384),
      // Serve /metrics on this port only (an admin port kept off the public listener).
      metricsPort: z.number().int().min(0).max(65535).optional(),
      // GET /bench/baseline: the JSON of /v1/me without auth or I/O, so `npm run bench` can show
      // what authentication costs on top of the same stack. Off unless benchmarking.
      benchRoutes: z.boolean().default(false),
      // Behind a reverse proxy: take the client address from X-Forwarded-For, trusting only the
      // last `proxyHops` entries (the ones our own proxies appended; anything before is client-made).
      trustProxy: z.boolean().default(false),
      proxyHops: z.number().int().min(1).max(10).default(1),
      // Browser origins allowed to call the API (CORS). Empty: no CORS headers at all.
      corsOrigins: z.array(url(['http:', 'https:'])).default([]),
      // GET /docs: the interactive API reference (Swagger UI, served from this server, no CDN).
      // On in `authctl dev`; elsewhere off unless set. GET /openapi.json is always served.
      docs: z.boolean().default(false),
    })
    .prefault({}),
  database: z
    .strictObject({
      url: url(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/authctl'),
      readUrl: url(['postgres:', 'postgresql:']).optional(),
      // "transaction": the URLs point at a transaction-mode pooler (PgBouncer, RDS Proxy): no
      // named prepared statements and no session-level settings in the startup packet. README:
      // "Behind a connection pooler".
      pooler: z.enum(['none', 'transaction']).default('none'),
      poolMax: z.number().int().min(1).max(200).default(10),
      // A request must not hang while the database is away: it gets 503 after this long.
      connectTimeoutMs: z.number().int().min(100).max(60_000).default(3_000),
      statementTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    })
    .prefault({}),
  cache: z
    .strictObject({
      // 'redis' whenever redisUrl is set, else 'memory' (single process only: `authctl dev`).
      driver: z.enum(['memory', 'redis']).optional(),
      redisUrl: url(['redis:', 'rediss:']).optional(),
      // Redis Cluster: the URL names one seed node; keys carry hash tags so nothing else changes.
      cluster: z.boolean().default(false),
      keyPrefix: z
        .string()
        .regex(/^[A-Za-z0-9:_-]{1,64}$/, 'letters, digits, ":", "_" or "-"')
        .default('authctl'),
      commandTimeoutMs: z.number().int().min(10).max(10_000).default(250),
      userTtl: seconds(1, 86_400).default(300),
    })
    .prefault({}),
  jobs: z
    .strictObject({
      schema: z
        .string()
        .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lowercase SQL identifier')
        .default('pgboss'),
      cleanupCron: z.string().min(9).default('*/5 * * * *'),
      cleanupBatchSize: z.number().int().min(10).max(100_000).default(1_000),
      retryLimit: z.number().int().min(0).max(100).default(5),
      retryDelaySeconds: seconds(1, 3_600).default(2),
    })
    .prefault({}),
  tokens: z
    .strictObject({
      issuer: z.string().min(1).default('http://127.0.0.1:8080'),
      audience: z.string().min(1).default('authctl'),
      alg: z.enum(['EdDSA', 'ES256']).default('EdDSA'),
      accessTtl: seconds(60, 86_400).default(900),
      refreshTtl: seconds(300, 31_536_000).default(1_209_600),
      refreshGrace: seconds(0, 300).default(10),
      clockSkew: seconds(0, 300).default(30),
    })
    .prefault({}),
  keys: z
    .strictObject({
      // A rotated key is published this long before it signs, so verifiers that cache the JWKS
      // (typically for minutes) know it before the first token signed with it reaches them.
      activationDelay: seconds(0, 86_400).default(300),
      reloadInterval: seconds(1, 3_600).default(30),
    })
    .prefault({}),
  revocation: z
    .strictObject({
      pollIntervalMs: z.number().int().min(100).max(60_000).default(1_000),
    })
    .prefault({}),
  // Other regions of the deployment (docs/architecture.md#a-region). `secret` is shared with that peer only and
  // signs replication and proxy requests both ways; in a file, write it as "env:NAME" (see load.ts).
  regions: z
    .strictObject({
      peers: z
        .array(
          z.strictObject({
            name: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be 1–32 lowercase letters, digits or "-", starting with a letter'),
            url: url(['http:', 'https:']),
            secret: z.string().min(32, 'must be at least 32 characters'),
          }),
        )
        .default([])
        .refine((peers) => new Set(peers.map((p) => p.name)).size === peers.length, 'peer names must be unique'),
      // How long a refresh for a session homed elsewhere waits for its home region before the
      // local replica answers instead.
      proxyTimeoutMs: z.number().int().min(50).max(30_000).default(1_500),
      // `home`: a login for a user homed in another region is answered 421 with that region's URL.
      loginPolicy: z.enum(['any', 'home']).default('any'),
      // Replication shipping (per peer): rows per POST, idle poll, back-off while a peer fails,
      // and how many refused deliveries dead-letter a batch (an unreachable peer never does).
      batchSize: z.number().int().min(1).max(5_000).default(500),
      pollIntervalMs: z.number().int().min(20).max(60_000).default(200),
      retryBaseMs: z.number().int().min(10).max(600_000).default(1_000),
      retryMaxMs: z.number().int().min(10).max(3_600_000).default(60_000),
      maxAttempts: z.number().int().min(1).max(1_000).default(10),
    })
    .prefault({}),
  secret: z.string().min(32, 'must be at least 32 characters').optional(),
  previousSecret: z.string().min(32, 'must be at least 32 characters').optional(),
  hash: z
    .strictObject({
      // OWASP Password Storage Cheat Sheet minimum for argon2id: m=19 MiB, t=2, p=1.
      memoryCost: z.number().int().min(19_456).max(4_194_304).default(19_456),
      timeCost: z.number().int().min(2).max(100).default(2),
      parallelism: z.number().int().min(1).max(16).default(1),
    })
    .prefault({}),
  // Brute-force protection (README "Security"). Durations are seconds.
  rateLimit: z
    .strictObject({
      enabled: z.boolean().default(true),
      // Failed logins per account before the exponential back-off starts.
      freeFailures: z.number().int().min(1).max(50).default(5),
      // NIST SP 800-63B §5.2.2: never more than 100 consecutive failures per account.
      maxFailures: z.number().int().min(1).max(100).default(100),
      // Failures per account are counted over this window (from the first one); a success resets them.
      failureWindow: seconds(1, 604_800).default(86_400),
      // The back-off doubles from 1 s per failure after `freeFailures`, up to this.
      maxBackoff: seconds(1, 86_400).default(900),
      // Failed logins per client address per `ipWindow`.
      ipFailures: z.number().int().min(1).max(100_000).default(100),
      ipWindow: seconds(1, 86_400).default(900),
      // Registrations per client address per `registerWindow`.
      registerPerIp: z.number().int().min(1).max(100_000).default(20),
      registerWindow: seconds(1, 86_400).default(3_600),
      // POST /oauth/introspect: requests per service client per second, in each server process
      // (429 + Retry-After above it).
      introspectPerClient: z.number().int().min(1).max(1_000_000).default(2_000),
    })
    .prefault({}),
  // Who a user is (README "E-mail identity"): what sign-up asks for, and the e-mail flows.
  identity: z
    .strictObject({
      // `optional`: a user may sign up with an address alone (`identity.email` must then be on).
      username: z.enum(['required', 'optional']).default('required'),
      // `off`: no addresses at all (as before). `optional`/`required`: sign-up takes one, and the
      // verification, reset and address-change flows are on (mail must be configured).
      email: z.enum(['required', 'optional', 'off']).default('off'),
      // Login of a user whose address is unverified answers 403 email_not_verified (after the
      // password check), and sign-up with a taken address answers like a fresh one (the owner is
      // mailed a notice instead) so that sign-up tells nobody which addresses have accounts.
      requireVerifiedEmail: z.boolean().default(false),
      // Lifetimes of a verification (or address change) and of a password reset.
      verifyTtl: seconds(300, 604_800).default(86_400),
      resetTtl: seconds(300, 86_400).default(1_800),
      // Wrong codes after which a code is dead.
      maxCodeAttempts: z.number().int().min(1).max(10).default(5),
      // Messages per address and kind: at most one per `sendInterval`, `sendsPerHour` an hour;
      // and `sendsPerIpPerHour` of every kind per client address. Over a limit the answer is still
      // 202 and nothing is sent (no oracle).
      sendInterval: seconds(1, 3_600).default(60),
      sendsPerHour: z.number().int().min(1).max(1_000).default(5),
      sendsPerIpPerHour: z.number().int().min(1).max(100_000).default(30),
      // E-mailed sign-in codes (POST /v1/auth/otp/*, with identity.email on): their lifetime and
      // the wrong codes after which one is dead. `otpSignup`: a first code to an address without
      // an account creates the account (off: such an address is sent nothing).
      otpTtl: seconds(60, 3_600).default(600),
      otpMaxAttempts: z.number().int().min(1).max(10).default(3),
      otpSignup: z.boolean().default(false),
      // Second factors: `off` (never asked, enrolment is 404), `optional` (asked of users who
      // enrolled one), `required` (every user: one without a factor must enrol before getting tokens).
      mfa: z.enum(['off', 'optional', 'required']).default('optional'),
      // The mfaToken of a two-step login: its lifetime.
      mfaTokenTtl: seconds(60, 900).default(300),
      // Step-up: how recent an authentication password change, address change, factor removal and
      // recovery-code regeneration (and enrolment) need (the access token's auth_time).
      reauthWindow: seconds(60, 86_400).default(600),
      // Sign-in through OpenID Connect providers (README "Sign in with Google and other
      // providers"). `google` is a preset: its issuer, scopes and display name are filled in
      // (src/core/oidc/provider-settings.ts). `clientSecret`: write it as "env:NAME" in a file.
      providers: z
        .array(
          z.strictObject({
            id: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be 1–32 lowercase letters, digits or "-", starting with a letter'),
            preset: z.enum(['google']).optional(),
            // https (http only on a loopback address, for development and tests).
            issuer: url(['http:', 'https:']).optional(),
            clientId: z.string().min(1),
            // Absent: a public client (PKCE only), for providers that allow one.
            clientSecret: z.string().min(1).optional(),
            scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'an OAuth scope token')).optional(),
            displayName: z.string().min(1).max(64).optional(),
            // `verified-email`: a first sign-in whose address (verified by the provider) belongs to
            // an existing account is linked to it. `off`: it is refused; the owner signs in and links.
            linking: z.enum(['verified-email', 'off']).default('off'),
          }),
        )
        .default([])
        .refine((providers) => new Set(providers.map((p) => p.id)).size === providers.length, 'provider ids must be unique'),
      // Where the provider sign-in may send the browser back to (`redirect_to`): exact URLs, or an
      // origin and a path prefix written with a trailing "*" ("https://app.example.com/auth/*").
      redirectUrls: z.array(z.string().min(1)).default([]),
      // A provider that does not answer (discovery, token exchange, JWKS) within this gets a 503.
      providerTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),
      // How long the browser may spend at the provider (the sealed state's lifetime).
      providerFlowTtl: seconds(60, 3_600).default(600),
      // Passkeys (README "Passkeys"): WebAuthn sign-in and second steps. `rpId`: the domain the
      // passkeys belong to (the site's host or a parent of it; `localhost` in development);
      // `rpName`: what the browser shows (default: mail.productName); `origins`: where the
      // ceremonies may run — web origins (https, or http on localhost) and Android apps'
      // `android:apk-key-hash:<hash>` origins (default: https://<rpId>).
      webauthn: z
        .strictObject({
          enabled: z.boolean().default(false),
          rpId: z
            .string()
            .regex(
              /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
              'a lowercase domain name, such as example.com (no scheme, port or path)',
            )
            .optional(),
          rpName: z.string().min(1).max(64).optional(),
          origins: z
            .array(
              z
                .string()
                .regex(
                  /^(https:\/\/[^/?#\s]+|http:\/\/(localhost|[a-z0-9-]+\.localhost)(:\d{1,5})?|android:apk-key-hash:[A-Za-z0-9_-]{43})$/,
                  'an origin: https://host[:port], http://localhost[:port], or android:apk-key-hash:<base64url SHA-256 of the signing certificate>',
                ),
            )
            .default([]),
        })
        .prefault({}),
    })
    .prefault({}),
  // Outgoing mail (src/config/mail.ts): off unless configured.
  mail: mailSchema,
  log: z
    .strictObject({
      level: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly', 'silent']).default('info'),
    })
    .prefault({}),
});

/** Rules across sections, checked after each section's own. */
export const checkedConfigSchema = configSchema.superRefine((config, ctx) => {
  if (config.identity.username === 'optional' && config.identity.email === 'off') {
    ctx.addIssue({
      code: 'custom',
      path: ['identity', 'username'],
      message: 'can be "optional" only when identity.email is on ("optional" or "required"): a user needs at least one identifier',
    });
  }
  if (config.identity.requireVerifiedEmail && config.identity.email === 'off') {
    ctx.addIssue({ code: 'custom', path: ['identity', 'requireVerifiedEmail'], message: 'needs identity.email "optional" or "required"' });
  }
  if (config.identity.otpSignup && config.identity.email === 'off') {
    ctx.addIssue({ code: 'custom', path: ['identity', 'otpSignup'], message: 'needs identity.email "optional" or "required"' });
  }
  if (config.identity.otpSignup && config.identity.username === 'required') {
    ctx.addIssue({
      code: 'custom',
      path: ['identity', 'otpSignup'],
      message: 'needs identity.username "optional": an account created by an e-mailed code has an address and no username',
    });
  }
  for (const [i, provider] of config.identity.providers.entries()) {
    if (!provider.issuer && provider.preset === undefined && provider.id !== 'google') {
      ctx.addIssue({ code: 'custom', path: ['identity', 'providers', i, 'issuer'], message: 'required (only the "google" preset knows its issuer)' });
    }
  }
  if (config.identity.providers.length > 0 && config.identity.redirectUrls.length === 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['identity', 'redirectUrls'],
      message: 'needs at least one URL: provider sign-in sends the browser back only to an allowed redirect_to',
    });
  }
  if (config.identity.webauthn.enabled && config.identity.webauthn.rpId === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['identity', 'webauthn', 'rpId'],
      message: "required with passkeys on: the domain the passkeys belong to (the site's host or a parent of it, e.g. example.com)",
    });
  }
  if (config.identity.email !== 'off' && config.mail.transport === 'off') {
    ctx.addIssue({
      code: 'custom',
      path: ['mail', 'transport'],
      message:
        `identity.email is "${config.identity.email}", so mail must be sent: set AUTHCTL_SMTP_URL and AUTHCTL_MAIL_FROM with AUTHCTL_MAIL_TRANSPORT=smtp ` +
        '(or mail.transport "log" on purpose, which writes messages to the log), or set identity.email to "off"',
    });
  }
});

export type ConfigInput = z.input<typeof configSchema>;
export type Config = Readonly<z.output<typeof configSchema>>;
