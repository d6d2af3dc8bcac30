import { Command, Flags, type Interfaces } from '@oclif/core';
import { loadConfig } from '../src/config/load.js';
import type { Config, ConfigInput } from '../src/config/schema.js';
import type { buildContainer, Container } from '../src/container.js';
import type { buildDataContainer, DataContainer } from '../src/data-container.js';
import { AppError } from '../src/platform/errors.js';
import { shutdown } from '../src/runtime.js';

export type CommandFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>;
export type CommandArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>;

/**
 * What a command builds to do its work: `region`, every service of the region (src/container.ts:
 * the cache, the job queue, the mailer, the OpenID client…); `data`, the database, its
 * repositories and the import and export alone (src/data-container.ts), for commands that only
 * move rows. Only the chosen one's modules are loaded (docs/design-decisions.md, "The CLI loads
 * only the command it runs").
 */
export type CommandServices = 'region' | 'data';

/**
 * Every authctl command: `--config`, `--json`, config loading, the service container (built on
 * first use, closed at the end), and one mapping from error codes to exit codes (docs/api.md#exit-codes).
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override enableJsonFlag = true;

  /** See {@link CommandServices}: a command that needs no more than the data says `data`. */
  static services: CommandServices = 'region';

  static override baseFlags = {
    config: Flags.string({
      summary: 'Config file (default: $AUTHCTL_CONFIG, then ./config/authctl.json if present).',
      helpGroup: 'GLOBAL',
    }),
  };

  /** Long-running commands (serve, worker, dev) log to stdout; one-shot commands keep it for output. */
  protected logStream: 'stdout' | 'stderr' = 'stderr';
  protected flags!: CommandFlags<T>;
  protected args!: CommandArgs<T>;
  private loadedConfig: Config | undefined;
  private builtContainer: Container | undefined;
  private builtData: DataContainer | undefined;
  private build: { region: typeof buildContainer } | { data: typeof buildDataContainer } | undefined;

  override async init(): Promise<void> {
    await super.init();
    const { args, flags } = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    });
    this.flags = flags as CommandFlags<T>;
    this.args = args as CommandArgs<T>;
    // Loaded here, once the command line is parsed, so that the getters below stay synchronous.
    this.build =
      (this.ctor as typeof BaseCommand).services === 'data'
        ? { data: (await import('../src/data-container.js')).buildDataContainer }
        : { region: (await import('../src/container.js')).buildContainer };
  }

  /** Settings a command derives from its own flags (e.g. `serve --port`); applied last. */
  protected configOverrides(): ConfigInput {
    return {};
  }

  protected get settings(): Config {
    this.loadedConfig ??= loadConfig({ file: this.flags.config, overrides: this.configOverrides() });
    return this.loadedConfig;
  }

  /** Every service of the region (commands with `services = 'region'`, the default). */
  protected get container(): Container {
    if (!this.build || !('region' in this.build)) throw new Error(`${this.id ?? 'this command'} builds its data alone (services = 'data'): use this.data`);
    this.builtContainer ??= this.build.region(this.settings, { logStream: this.logStream });
    return this.builtContainer;
  }

  /** The database, the repositories, the import and the export: the container's own in a `region` command. */
  protected get data(): DataContainer {
    if (this.build && 'region' in this.build) return this.container;
    if (!this.build) throw new Error('the command is not initialized');
    this.builtData ??= this.build.data(this.settings, { logStream: this.logStream });
    return this.builtData;
  }

  /** Writes `text` in human mode only (with --json, the returned value is the output). */
  protected say(text: string): void {
    if (!this.jsonEnabled()) this.log(text);
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number }; parse?: unknown }): Promise<unknown> {
    // oclif's parser gives a value outside a flag's `options` exit 1 (its error has no entry in
    // `exitCodes`): a usage error like every other one of the parser, exit 2.
    if (!(err instanceof AppError) && err.parse !== undefined && err.oclif) err.oclif.exit = 2;
    // A value that starts with "-" (a key id can) reads as a flag: say how to pass it.
    if (!(err instanceof AppError) && err.oclif?.exit === 2 && /Nonexistent flag: -(?!-)/.test(err.message)) {
      err.message = err.message.replace(/(Nonexistent flag: (-\S+))/, '$1 (if that is a value, put -- before it: `-- $2`)');
    }
    // Usage errors from oclif's parser: same shape as ours, without oclif's internals.
    if (!(err instanceof AppError) && err.oclif?.exit === 2 && this.jsonEnabled()) {
      process.exitCode = 2;
      this.logJson({ error: { code: 'invalid_request', message: err.message } });
      return undefined;
    }
    if (!(err instanceof AppError)) return super.catch(err);
    process.exitCode = err.exitCode;
    if (this.jsonEnabled()) {
      this.logJson({ error: { code: err.code, message: err.detail, ...(err.errors ? { errors: err.errors } : {}) } });
    } else {
      this.logToStderr(`Error: ${err.detail}${hint(err)}`);
    }
    return undefined;
  }

  /** Closes the container now (e.g. before stopping a database it uses); idempotent. */
  protected async closeContainer(): Promise<void> {
    const container = this.builtContainer;
    const data = this.builtData;
    this.builtContainer = undefined;
    this.builtData = undefined;
    await shutdown(container);
    await data?.db.close();
  }

  protected override async finally(err: Error | undefined): Promise<unknown> {
    await this.closeContainer();
    return super.finally(err);
  }
}

function hint(err: AppError): string {
  switch (err.code) {
    case 'unavailable':
      // The detail already names Redis (and its variable) when the cache is what is missing.
      if (/redis|cache/i.test(err.detail)) return '\nCheck that Redis is running and AUTHCTL_REDIS_URL (or cache.redisUrl in the config file) points at it.';
      if (/--no-check/.test(err.detail)) return '';
      if (/\bSMTP\b/.test(err.detail)) return '\nCheck that the SMTP server is running and AUTHCTL_SMTP_URL (or mail.smtpUrl in the config file) points at it.';
      // PgBouncer in transaction mode refuses statement_timeout in the startup packet: not an outage.
      if (/unsupported startup parameter/.test(String((err.cause as Error | undefined)?.message)))
        return '\nA connection pooler refused the connection over a startup parameter: behind PgBouncer in transaction mode set AUTHCTL_DATABASE_POOLER=transaction (database.pooler), README "Behind a connection pooler".';
      return '\nCheck that PostgreSQL is running and AUTHCTL_DATABASE_URL (or database.url in the config file) points at it.';
    case 'not_found':
      if (/^no such user\b/.test(err.detail)) return '\nFind users with `authctl user list --search <part of the name>`.';
      return /^no such passkey\b/.test(err.detail) ? "\nSee the user's passkeys with `authctl user passkeys list <user>`." : '';
    case 'bad_config':
      return '\nSee README.md, "Configuration".';
    default:
      return '';
  }
}
