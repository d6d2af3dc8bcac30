/**
 * CPU accounting from /proc (Linux): the server child, the load generator (this process), the
 * PostgreSQL and Redis processes on this machine, and the machine as a whole. Every figure is a
 * percentage of ONE core, so on a 2-core machine the machine total tops out at 200 %.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

let clockTicks: number | undefined;

/** USER_HZ, the unit of the /proc times (almost always 100). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces), or undefined. */
function statFields(pid: number | string): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  } catch {
    return undefined; // gone
  }
}

/** utime + stime of one process alone, in seconds. */
function ownCpuSeconds(pid: number | string): number {
  const fields = statFields(pid);
  return fields ? (Number(fields[11]) + Number(fields[12])) / ticksPerSecond() : 0;
}

/**
 * utime + stime of a process (all its threads, libuv's pool included) and of its descendants —
 * the workers of `authctl serve --processes N` — in seconds.
 */
export function processCpuSeconds(pid: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(entry)?.[1]);
    if (ppid > 0) children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  let total = 0;
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.pop()!;
    total += ownCpuSeconds(next);
    pending.push(...(children.get(next) ?? []));
  }
  return total;
}

/**
 * CPU seconds per process of PostgreSQL and Redis, by pid. PostgreSQL backends serving another
 * database (another bench, a test suite on the same server) are left out: their title names
 * their database ("postgres: 15/main: user db host(port) state"). Shared background processes
 * (WAL writer, checkpointer, …) are counted.
 */
function serviceProcesses(database: string | undefined): Map<number, { kind: 'postgres' | 'redis'; cpu: number }> {
  const out = new Map<number, { kind: 'postgres' | 'redis'; cpu: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let comm: string;
    try {
      comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    if (comm !== 'postgres' && comm !== 'redis-server') continue;
    if (comm === 'postgres' && database !== undefined) {
      let title: string;
      try {
        title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      } catch {
        continue;
      }
      const backend = /^postgres: [^:]+: (\S+) (\S+) (?:\S+\(\d+\)|\[local\])/.exec(title);
      if (backend && backend[2] !== database) continue;
    }
    out.set(Number(entry), { kind: comm === 'postgres' ? 'postgres' : 'redis', cpu: ownCpuSeconds(entry) });
  }
  return out;
}

/** Busy and total CPU seconds of the whole machine, all cores (from the `cpu` line of /proc/stat). */
export function machineCpuSeconds(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const field = (i: number) => v[i] ?? 0;
  // user nice system idle iowait irq softirq steal
  const busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
  return { busy: busy / ticksPerSecond(), total: (busy + field(3) + field(4)) / ticksPerSecond() };
}

export const machineCores = cpus().length;

export interface CpuUsage {
  /** The `authctl serve` child. */
  server: number;
  /** This process: autocannon, its JSON handling, the /metrics sampler. */
  loadgen: number;
  /** PostgreSQL: the backends of our database and the shared background processes. */
  postgres: number;
  /** Every `redis-server` process on the machine. */
  redis: number;
  /** The connection pooler in front of PostgreSQL (PgBouncer), when the run has one. */
  pooler?: number;
  /** Everything, all cores (at most cores × 100). */
  machine: number;
  /** machine − the above: other work on the box that competed with the run. */
  other: number;
}

/** Measures CPU over an interval: `const m = new CpuMeter(pid); …; m.stop()`. */
export class CpuMeter {
  private readonly t0 = performance.now();
  private readonly server0: number;
  private readonly load0 = process.cpuUsage();
  private readonly services0: ReturnType<typeof serviceProcesses>;
  private readonly machine0 = machineCpuSeconds();

  private readonly pooler0: number;

  /**
   * @param database our database: other databases' backends are not ours to count.
   * @param poolerPid the run's own PgBouncer, if any.
   */
  constructor(
    private readonly serverPid: number | undefined,
    private readonly database?: string,
    private readonly poolerPid?: number,
  ) {
    this.server0 = serverPid === undefined ? 0 : processCpuSeconds(serverPid);
    this.pooler0 = poolerPid === undefined ? 0 : processCpuSeconds(poolerPid);
    this.services0 = serviceProcesses(database);
  }

  stop(): CpuUsage {
    const seconds = (performance.now() - this.t0) / 1000;
    const pct = (cpuSeconds: number) => Math.round((cpuSeconds / seconds) * 100);
    const load = process.cpuUsage(this.load0);
    const services = { postgres: 0, redis: 0 };
    // Per pid: a backend that started during the interval counts whole; one that exited is lost.
    for (const [pid, p] of serviceProcesses(this.database)) services[p.kind] += Math.max(0, p.cpu - (this.services0.get(pid)?.cpu ?? 0));
    const machine = machineCpuSeconds();
    const usage = {
      server: this.serverPid === undefined ? 0 : pct(processCpuSeconds(this.serverPid) - this.server0),
      loadgen: pct((load.user + load.system) / 1e6),
      postgres: pct(services.postgres),
      redis: pct(services.redis),
      ...(this.poolerPid === undefined ? {} : { pooler: pct(processCpuSeconds(this.poolerPid) - this.pooler0) }),
      machine: pct(machine.busy - this.machine0.busy),
    };
    const known = usage.server + usage.loadgen + usage.postgres + usage.redis + (usage.pooler ?? 0);
    return { ...usage, other: Math.max(0, usage.machine - known) };
  }
}

/** How busy the whole machine is over the next `ms`, % of one core (everything: an idle server too). */
export async function machineBusyPct(ms = 1_000): Promise<number> {
  const before = machineCpuSeconds();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  return ((machineCpuSeconds().busy - before.busy) / ((performance.now() - t0) / 1000)) * 100;
}

export interface QuietOptions {
  /** Quiet: the machine busy under this % of one core over a second. */
  belowPct: number;
  /** Give up after this long, s. */
  maxWaitS: number;
  signal?: AbortSignal | undefined;
  /** Told once, the first time the machine is found busy. */
  onBusy?: (busyPct: number) => void;
}

/**
 * Waits (bounded) until the machine is quiet, so a neighbour's build does not pass for a figure
 * of ours; returns the seconds waited (the last, quiet, second of sampling is not waiting).
 */
export async function waitForQuiet(opts: QuietOptions): Promise<number> {
  const started = performance.now();
  let said = false;
  while (performance.now() - started < opts.maxWaitS * 1000 && !opts.signal?.aborted) {
    const busy = await machineBusyPct();
    if (busy < opts.belowPct) break;
    if (!said) opts.onBusy?.(busy);
    said = true;
  }
  return Math.max(0, Math.round((performance.now() - started) / 1000 - 1));
}
