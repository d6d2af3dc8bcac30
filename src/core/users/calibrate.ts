import { OWASP_ARGON2_MINIMUM, PasswordHasher, type Argon2Params } from './password-hasher.js';

export interface CalibrationResult {
  params: Argon2Params;
  /** Median duration of one hash at `params`, ms. */
  medianMs: number;
  targetMs: number;
  /** Every configuration tried, in order, with its median. */
  trials: Array<Argon2Params & { medianMs: number }>;
  /** True when even the OWASP minimum is slower than the target: the minimum is returned. */
  minimumExceedsTarget: boolean;
}

export interface CalibrationOptions {
  targetMs?: number;
  /** Upper bound on memory, KiB (default 1 GiB). */
  maxMemoryKiB?: number;
  parallelism?: number;
  samples?: number;
  /** Injected for tests; defaults to timing real argon2id hashes. */
  measure?: (params: Argon2Params) => Promise<number>;
}

async function timeHashes(params: Argon2Params, samples: number): Promise<number> {
  const hasher = new PasswordHasher(params);
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    await hasher.hash(`calibration-${i}`);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/**
 * Finds argon2id parameters, never below the OWASP minimum (m = 19 MiB, t = 2, p = 1), whose
 * median hash time on this machine is as close as possible to `targetMs` without exceeding it.
 * Memory is the parameter raised (it costs an attacker's GPUs most); time cost stays at the
 * minimum. Doubling finds a bracket, then a binary search on memory narrows it to ~5 %.
 */
export async function calibrateArgon2(options: CalibrationOptions = {}): Promise<CalibrationResult> {
  const targetMs = options.targetMs ?? 50;
  const maxMemory = options.maxMemoryKiB ?? 1_048_576;
  const base: Argon2Params = { ...OWASP_ARGON2_MINIMUM, parallelism: options.parallelism ?? OWASP_ARGON2_MINIMUM.parallelism };
  const samples = options.samples ?? 5;
  const measure = options.measure ?? ((params: Argon2Params) => timeHashes(params, samples));
  const trials: CalibrationResult['trials'] = [];
  const run = async (memoryCost: number) => {
    const params = { ...base, memoryCost };
    const medianMs = await measure(params);
    trials.push({ ...params, medianMs });
    return medianMs;
  };

  const minimumMs = await run(base.memoryCost);
  if (minimumMs >= targetMs) {
    return { params: base, medianMs: minimumMs, targetMs, trials, minimumExceedsTarget: true };
  }
  // Double memory until the target is passed (or the cap reached): [low, high) brackets it.
  let low = base.memoryCost;
  let lowMs = minimumMs;
  let high = low;
  while (high < maxMemory) {
    high = Math.min(high * 2, maxMemory);
    const ms = await run(high);
    if (ms > targetMs) break;
    low = high;
    lowMs = ms;
  }
  if (low === high) return { params: { ...base, memoryCost: low }, medianMs: lowMs, targetMs, trials, minimumExceedsTarget: false };
  // Binary search on memory, in whole MiB, until the bracket is within ~5 %.
  while (high - low > Math.max(1024, low * 0.05)) {
    const mid = Math.round((low + high) / 2 / 1024) * 1024;
    if (mid <= low || mid >= high) break;
    const ms = await run(mid);
    if (ms <= targetMs) {
      low = mid;
      lowMs = ms;
    } else {
      high = mid;
    }
  }
  return { params: { ...base, memoryCost: low }, medianMs: lowMs, targetMs, trials, minimumExceedsTarget: false };
}
