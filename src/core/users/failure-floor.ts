import type { Logger } from '../../platform/logger.js';
import type { PasswordHasher } from './password-hasher.js';

export interface FailureFloorCalibrationOptions {
  hasher: Pick<PasswordHasher, 'calibrateFloor'>;
  /** One stored hash per foreign format and cost (`StatsRepo.foreignHashSamples`). */
  samples: () => Promise<string[]>;
  log: Logger;
  /** How often the samples are read again and the floor measured anew; default 5 minutes. */
  intervalMs?: number;
}

/**
 * Keeps {@link PasswordHasher.failureFloor} in step with the hashes stored (README "Password hash
 * formats"): at start and then every few minutes it reads one hash of each foreign format and cost
 * present and measures them. An import made while the server runs is measured at the next round
 * (until then the floor rises by itself at the first verification of such a hash); the floor drops
 * back to 0, and failed logins to argon2id's own time, once the last imported user has logged in.
 */
export class FailureFloorCalibration {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly opts: FailureFloorCalibrationOptions) {}

  /** Measures now (a failure is logged: the floor stays as it was). */
  refresh(): Promise<void> {
    this.running ??= this.measure().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.refresh(), this.opts.intervalMs ?? 300_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async measure(): Promise<void> {
    try {
      const samples = await this.opts.samples();
      const floorMs = await this.opts.hasher.calibrateFloor(samples);
      this.opts.log.debug('password failure floor measured', { event: 'user.failure_floor', classes: samples.length, floorMs: Math.round(floorMs) });
    } catch (err) {
      this.opts.log.warn('password failure floor not measured', { event: 'user.failure_floor_failed', err });
    }
  }
}
