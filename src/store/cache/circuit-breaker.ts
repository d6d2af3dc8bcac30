export type BreakerState = 'closed' | 'open' | 'half-open';

export class BreakerOpenError extends Error {
  constructor() {
    super('circuit open');
    this.name = 'BreakerOpenError';
  }
}

/**
 * The breaker in front of Redis (cache and limit counters alike): 3 consecutive failures open
 * it, a probe goes through after 0.5 s, backing off to 5 s while probes fail.
 */
export function redisBreaker(onStateChange?: (state: BreakerState) => void): CircuitBreaker {
  return new CircuitBreaker({ failureThreshold: 3, openMs: 500, maxOpenMs: 5_000, ...(onStateChange ? { onStateChange } : {}) });
}

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** How long the circuit stays open before one probe is let through; doubles per failed probe. */
  openMs: number;
  maxOpenMs: number;
  onStateChange?: (state: BreakerState) => void;
}

/**
 * A small circuit breaker: after `failureThreshold` consecutive failures calls fail fast (no
 * network wait) for `openMs`, then a single probe decides whether to close again. This keeps a
 * dead Redis from adding its timeout to every request.
 */
export class CircuitBreaker {
  private failures = 0;
  private openUntil = 0;
  private currentOpenMs: number;
  private probing = false;
  private current: BreakerState = 'closed';

  constructor(private readonly opts: CircuitBreakerOptions) {
    this.currentOpenMs = opts.openMs;
  }

  get state(): BreakerState {
    return this.current;
  }

  /** Closes the circuit at once (the dependency told us it is back). */
  reset(): void {
    this.failures = 0;
    this.currentOpenMs = this.opts.openMs;
    if (this.current !== 'closed') this.setState('closed');
  }

  /**
   * Runs `operation` unless the circuit is open. `proves: false` marks an operation whose success
   * says nothing about the dependency's health (in a Redis Cluster a PUBLISH is served by any
   * node, even while the keyspace is down): its failure counts, its success resets nothing.
   */
  async run<T>(operation: () => Promise<T>, { proves = true } = {}): Promise<T> {
    let probe = false;
    if (this.current !== 'closed') {
      // Open, or half-open with the probe still in flight: fail fast. Exactly one call probes.
      if (this.probing || Date.now() < this.openUntil) throw new BreakerOpenError();
      this.probing = probe = true;
      this.setState('half-open');
    }
    try {
      const result = await operation();
      if (proves) this.succeeded();
      return result;
    } catch (err) {
      this.failed();
      throw err;
    } finally {
      if (probe) this.probing = false;
    }
  }

  private succeeded(): void {
    this.failures = 0;
    this.currentOpenMs = this.opts.openMs;
    if (this.current !== 'closed') this.setState('closed');
  }

  private failed(): void {
    this.failures++;
    if (this.current === 'half-open') this.currentOpenMs = Math.min(this.currentOpenMs * 2, this.opts.maxOpenMs);
    if (this.current === 'half-open' || this.failures >= this.opts.failureThreshold) {
      this.openUntil = Date.now() + this.currentOpenMs;
      if (this.current !== 'open') this.setState('open');
    }
  }

  private setState(state: BreakerState): void {
    this.current = state;
    this.opts.onStateChange?.(state);
  }
}
