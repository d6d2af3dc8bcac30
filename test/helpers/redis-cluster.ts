import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './redis-server.js';

/** One line of CLUSTER NODES. */
export interface ClusterNode {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** The master's id, for a replica. */
  masterId: string | null;
  /** `fail`, `fail?` or `handshake` among the flags, or not connected. */
  failing: boolean;
  /** Slot ranges a master serves, as [first, last]. */
  slots: Array<[number, number]>;
}

/**
 * Why this machine cannot run a cluster (a hint for the skip message), or undefined when
 * `redis-server` and `redis-cli` 7 (`cluster-port`, sharded pub/sub) are on PATH.
 */
export function redisClusterMissing(): string | undefined {
  for (const bin of ['redis-server', 'redis-cli']) {
    const run = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    const major = Number(/(?:v=|redis-cli )(\d+)\./.exec(run.stdout ?? '')?.[1]);
    if (run.status !== 0 || !(major >= 7)) return `${bin} 7 or later is not on PATH (apt-get install redis-server, or redis.io/downloads)`;
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it resolves true, for at most `limitMs`; false on time-out. */
async function until(probe: () => Promise<boolean>, limitMs: number, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (await probe().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

async function withNode<T>(port: number, work: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await work(redis);
  } finally {
    redis.disconnect();
  }
}

/** Parses the text of CLUSTER NODES. */
export function parseClusterNodes(text: string): ClusterNode[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, master, , , , link, ...slots] = line.split(' ');
      const flagList = flags!.split(',');
      return {
        id: id!,
        port: Number(/:(\d+)@/.exec(address!)?.[1]),
        role: flagList.includes('master') ? 'master' : 'replica',
        masterId: master === '-' ? null : master!,
        failing: flagList.some((f) => f === 'fail' || f === 'fail?' || f === 'handshake' || f === 'noaddr') || link !== 'connected',
        slots: slots.filter((s) => !s.startsWith('[')).map((s) => (s.includes('-') ? (s.split('-').map(Number) as [number, number]) : [Number(s), Number(s)])),
      };
    });
}

/**
 * A private Redis Cluster: `masters` masters with one replica each, as `redis-cli --cluster create
 * --cluster-replicas 1` lays them out, in a temporary folder on free loopback ports (no
 * persistence). A fault test can SIGKILL any node.
 */
export class RedisCluster {
  private readonly children = new Map<number, ChildProcess>();
  private readonly output = new Map<number, string>();

  private constructor(
    readonly dir: string,
    readonly ports: number[],
    private readonly nodeTimeoutMs: number,
  ) {}

  /** Starts the nodes, creates the cluster and waits until every node says `cluster_state:ok`. */
  static async start({ masters = 3, nodeTimeoutMs = 1_000, limitMs = 20_000 } = {}): Promise<RedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'authctl-redis-cluster-'));
    const ports: number[] = [];
    while (ports.length < masters * 4) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    // Client ports first, then each node's cluster-bus port.
    const cluster = new RedisCluster(dir, ports.slice(0, masters * 2), nodeTimeoutMs);
    try {
      const busPorts = ports.slice(masters * 2);
      cluster.ports.forEach((port, i) => cluster.spawnNode(port, busPorts[i]!));
      for (const port of cluster.ports) {
        if (!(await until(() => withNode(port, async (r) => (await r.ping()) === 'PONG'), 5_000)))
          throw new Error(`redis-server on ${port} did not answer PING:\n${cluster.output.get(port)}`);
      }
      const create = spawnSync(
        'redis-cli',
        ['--cluster', 'create', ...cluster.ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'],
        { encoding: 'utf8', timeout: limitMs },
      );
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
      if (!(await until(() => cluster.healthy(), limitMs))) throw new Error(`the cluster did not become healthy:\n${await cluster.nodesText()}`);
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** A seed URL (the first node), as a deployment would give `cache.redisUrl`. */
  get seedUrl(): string {
    return `redis://127.0.0.1:${this.ports[0]}`;
  }

  isRunning(port: number): boolean {
    const child = this.children.get(port);
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** CLUSTER NODES as seen by a running node (a killed one excluded). */
  async nodes(): Promise<ClusterNode[]> {
    return parseClusterNodes(await this.nodesText());
  }

  /** The master serving `slot`, by its port. */
  async masterOf(slot: number): Promise<number> {
    const master = (await this.nodes()).find((n) => n.role === 'master' && !n.failing && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!master) throw new Error(`no live master serves slot ${slot}`);
    return master.port;
  }

  /**
   * True when every running node says `cluster_state:ok`, sees every other running node
   * connected, and every replica's link to its master is up (so a failover can happen).
   */
  async healthy(): Promise<boolean> {
    const running = this.ports.filter((p) => this.isRunning(p));
    for (const port of running) {
      const ok = await withNode(port, async (r) => {
        if (!/cluster_state:ok/.test(await r.cluster('INFO'))) return false;
        const nodes = parseClusterNodes((await r.cluster('NODES')) as string).filter((n) => running.includes(n.port));
        if (nodes.length !== running.length || nodes.some((n) => n.failing)) return false;
        const replication = await r.info('replication');
        return !/role:slave/.test(replication) || /master_link_status:up/.test(replication);
      });
      if (!ok) return false;
    }
    return true;
  }

  /** Polls until `probe` holds, for at most `limitMs`; false on time-out. */
  until(probe: () => Promise<boolean>, limitMs: number): Promise<boolean> {
    return until(probe, limitMs);
  }

  /** Runs `work` on a connection of its own to one node. */
  onNode<T>(port: number, work: (redis: Redis) => Promise<T>): Promise<T> {
    return withNode(port, work);
  }

  /** How many keys matching `pattern` each live master holds, by port (KEYS: a test's own small cluster). */
  async keysPerMaster(pattern: string): Promise<Map<number, number>> {
    const counts = new Map<number, number>();
    for (const master of (await this.nodes()).filter((n) => n.role === 'master' && !n.failing)) {
      counts.set(master.port, await withNode(master.port, async (r) => (await r.keys(pattern)).length));
    }
    return counts;
  }

  /** Subscribed client connections on each running node, by port. */
  async subscribers(): Promise<Map<number, number>> {
    const counts = new Map<number, number>();
    for (const port of this.ports.filter((p) => this.isRunning(p))) {
      const list = await withNode(port, async (r) => (await r.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string);
      counts.set(port, list.split('\n').filter((line) => / sub=[1-9]/.test(line)).length);
    }
    return counts;
  }

  /** Closes every client connection on every running node (a network blip), not the cluster bus. */
  async dropClients(): Promise<void> {
    for (const port of this.ports.filter((p) => this.isRunning(p))) {
      await withNode(port, async (r) => {
        await r.call('CLIENT', 'KILL', 'TYPE', 'normal');
        await r.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      });
    }
  }

  /** SIGKILL one node (a crash); resolves once the process is gone. */
  async kill(port: number): Promise<void> {
    const child = this.children.get(port);
    if (!child || !this.isRunning(port)) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Kills every node and removes the folder. */
  async stop(): Promise<void> {
    await Promise.all(this.ports.map((port) => this.kill(port)));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async nodesText(): Promise<string> {
    for (const port of this.ports.filter((p) => this.isRunning(p))) {
      try {
        return await withNode(port, async (r) => (await r.cluster('NODES')) as string);
      } catch {
        // Try the next node.
      }
    }
    throw new Error('no cluster node answers');
  }

  private spawnNode(port: number, busPort: number): void {
    const args = [
      '--port', String(port),
      '--cluster-port', String(busPort),
      '--bind', '127.0.0.1',
      '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`,
      '--cluster-node-timeout', String(this.nodeTimeoutMs),
      '--dir', this.dir,
      '--save', '',
      '--appendonly', 'no',
      // A replica's first sync starts at once (the default waits 5 s for more replicas to join).
      '--repl-diskless-sync-delay', '0',
    ]; // prettier-ignore
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.set(port, child);
    this.output.set(port, '');
    const collect = (chunk: Buffer) => this.output.set(port, (this.output.get(port) ?? '') + chunk.toString());
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
  }
}
