import type { Seeded } from './api.js';
import type { Environment } from './env.js';
import type { LoadResult, LoadTarget } from './load.js';

export interface RunContext {
  target: LoadTarget;
  env: Environment;
  /** The PostgreSQL and Redis of the run (`--pg-url`, `--redis`), for a scenario that needs a region of its own. */
  pgUrl: string;
  redis: string;
  durationS: number;
  warmupS: number;
  /** Distinguishes this run's usernames from any earlier run's. */
  tag: string;
  log: (line: string) => void;
  /** One user with one live session per connection, registered and logged in on first use. */
  seeded(): Promise<Seeded[]>;
}

export interface Scenario {
  name: string;
  summary: string;
  run(ctx: RunContext): Promise<LoadResult[]>;
}
