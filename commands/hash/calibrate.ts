import { Flags } from '@oclif/core';
import { calibrateArgon2, type CalibrationResult } from '../../src/core/users/calibrate.js';
import { BaseCommand } from '../_base.js';

export default class HashCalibrate extends BaseCommand<typeof HashCalibrate> {
  static override summary = 'Find argon2id parameters (never below the OWASP minimum) that take a target time on this machine.';
  static override description =
    'Times real argon2id hashes, raising memory from the OWASP minimum (19 MiB, t=2, p=1) until a hash takes about --target-ms, and prints the configuration lines. Run it on the hardware that will serve logins; each login and registration costs one such hash per request.';
  static override examples = ['<%= config.bin %> hash calibrate', '<%= config.bin %> hash calibrate --target-ms 100 --json'];
  static override flags = {
    'target-ms': Flags.integer({ summary: 'Target time of one hash, ms.', default: 50, min: 1, max: 10_000 }),
    'max-memory': Flags.integer({ summary: 'Upper bound on memory, MiB.', default: 1024, min: 19, max: 4096 }),
  };

  async run(): Promise<CalibrationResult & { env: Record<string, string>; config: { hash: CalibrationResult['params'] } }> {
    this.say(`Timing argon2id hashes (target ${this.flags['target-ms']} ms) …`);
    const result = await calibrateArgon2({ targetMs: this.flags['target-ms'], maxMemoryKiB: this.flags['max-memory'] * 1024 });
    const { memoryCost, timeCost, parallelism } = result.params;
    const env = {
      AUTHCTL_HASH_MEMORY_COST: String(memoryCost),
      AUTHCTL_HASH_TIME_COST: String(timeCost),
      AUTHCTL_HASH_PARALLELISM: String(parallelism),
    };
    const config = { hash: result.params };
    if (result.minimumExceedsTarget) {
      this.say(`Even the OWASP minimum takes ${result.medianMs.toFixed(1)} ms here (over the ${result.targetMs} ms target); it is the floor, so use it:`);
    } else {
      this.say(
        `m=${Math.round(memoryCost / 1024)} MiB, t=${timeCost}, p=${parallelism}: ${result.medianMs.toFixed(1)} ms per hash (target ${result.targetMs} ms).`,
      );
    }
    this.say(
      `\nEnvironment:\n${Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n')}\n\nOr in the config file:\n${JSON.stringify(config, null, 2)}`,
    );
    return { ...result, env, config };
  }
}
