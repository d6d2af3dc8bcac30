/**
 * `authctl serve` on several cores: a primary process forks `http.processes` workers that each
 * run the ordinary server; the primary listens on the port and hands each connection it accepts,
 * unread, to the next worker in turn.
 * Each worker is a full server — its own pools, key ring, revocation list (fed by pub/sub and the
 * DB poll, exactly as separate servers of a region are) — so nothing about correctness changes.
 *
 * The primary holds no database connection. It restarts a worker that dies, stops the whole server
 * on SIGTERM and SIGINT (see {@link runPrimary}), and aggregates every worker's metrics
 * (prom-client's AggregatorRegistry), which it serves on `http.metricsPort` and hands to any
 * worker asked for `/metrics` on the public port — so a scrape sees the whole server, not one
 * process.
 *
 * Why not node:cluster's own round-robin (workers calling `listen`): there the listening socket
 * closes only when the last worker has closed its server, and at that moment node closes every
 * connection still queued for a worker (and a worker whose server is closed refuses the ones
 * handed to it). A draining server answers with `Connection: close`, so a balancer keeps opening
 * new connections to it in exactly that window, with a request already written to each — a POST
 * the balancer will not resend. Here the order is the other way round: the listening socket
 * closes first, then the workers drain with every connection accepted before that.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { listen, startMetricsServer, urlOf } from './server.js';

const METRICS_REQUEST = 'authctl:metrics-request';
const METRICS_RESPONSE = 'authctl:metrics-response';
/** Worker → primary: started, takes connections. */
const READY = 'authctl:ready';
/** Primary → worker: the primary listens (on `url`). */
const SERVING = 'authctl:serving';
/** Primary → worker, with an accepted socket: serve it. */
const CONNECTION = 'authctl:connection';
/** Worker → primary: it got a signal itself; send it no more connections. */
const LEAVE = 'authctl:leave';
/** Primary → worker: no connection follows this message (same channel, so in order); drain. */
const DRAIN = 'authctl:drain';
/** At most this many turns of the event loop between a stop and the listener's close. */
const QUIET_TURNS = 20;
/** Set for the one worker that also runs the background jobs (`serve --with-workers`). */
export const JOBS_ENV = 'AUTHCTL_CLUSTER_JOBS';

interface MetricsMessage {
  type: string;
  id: number;
  text?: string;
  error?: string;
}

interface ControlMessage {
  type: string;
  url?: string;
  signal?: NodeJS.Signals;
}

export interface PrimaryOptions {
  processes: number;
  host: string;
  port: number;
  metricsPort: number | undefined;
  /** Run the background jobs in the first worker. */
  withJobs: boolean;
  /** Lines for the operator (stderr). */
  say: (line: string) => void;
  /** Called once, when the primary listens (every worker has started), with the URL. */
  onListening: (url: string) => void;
}

/** True in a process forked by {@link runPrimary}. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/**
 * Runs the primary until SIGINT/SIGTERM and every worker has stopped. Resolves with the exit code:
 * 0 after a signal, 1 when a worker fails before it ever started (a config problem that
 * restarting would only repeat) or the port cannot be listened on.
 *
 * The primary listens once every worker has started, so a worker that cannot (a wrong secret)
 * stops the server before it listens. A stop closes the listening socket first — the next
 * connection is refused and a balancer resends it to another server, whatever its method — then
 * tells each worker to drain, after the last connection handed to it.
 */
export async function runPrimary(opts: PrimaryOptions): Promise<number> {
  const aggregator = new AggregatorRegistry();
  const render = () => aggregator.clusterMetrics();
  let stopping = false;
  let failure: number | undefined;
  let url: string | undefined;
  const started = new WeakSet<Worker>();
  const jobsWorker = new WeakSet<Worker>();
  /** The workers connections go to, in turn. */
  const rotation: Worker[] = [];
  let turn = 0;
  /** Connections accepted while no worker was in the rotation (all of them restarting). */
  const waiting: Socket[] = [];
  let alive = 0;

  const tell = (worker: Worker, message: ControlMessage, socket?: Socket): void => {
    if (!worker.isConnected()) {
      socket?.destroy();
      return;
    }
    worker.send(message, socket, (err: Error | null) => {
      if (err) socket?.destroy();
    });
  };
  const leave = (worker: Worker): void => {
    const at = rotation.indexOf(worker);
    if (at !== -1) rotation.splice(at, 1);
  };
  /** The next worker in turn; one that has died meanwhile leaves the rotation (its connections unread go to another). */
  const next = (): Worker | undefined => {
    while (rotation.length > 0) {
      const worker = rotation[turn++ % rotation.length]!;
      if (worker.isConnected()) return worker;
      leave(worker);
    }
    return undefined;
  };
  const handOff = (socket: Socket): void => {
    const worker = next();
    if (worker) tell(worker, { type: CONNECTION }, socket);
    else waiting.push(socket);
  };
  const join = (worker: Worker): void => {
    rotation.push(worker);
    tell(worker, { type: SERVING, url });
    for (const socket of waiting.splice(0)) handOff(socket);
  };
  let accepted = 0;
  // Paused: the worker reads the request, not the primary.
  const listener = createNetServer({ pauseOnConnect: true }, (socket) => {
    accepted += 1;
    handOff(socket);
  });
  /**
   * Runs `then` after a turn of the event loop that accepted no connection (at most
   * {@link QUIET_TURNS} turns): what the kernel queued while this process waited for the CPU is
   * accepted and handed off before the listener closes. What reaches the kernel's queue after that
   * last turn is reset, as when any server stops listening — a window of microseconds.
   */
  const whenQuiet = (then: () => void): void => {
    let turns = 0;
    let seen = accepted;
    const check = () => {
      // The first turn only gets to the next poll for connections; each later one follows one.
      if (turns++ === 0 || (accepted !== seen && turns < QUIET_TURNS)) {
        seen = accepted;
        setImmediate(check);
      } else then();
    };
    setImmediate(check);
  };

  const fork = (jobs: boolean): void => {
    const worker = cluster.fork(jobs ? { [JOBS_ENV]: '1' } : {});
    alive += 1;
    if (jobs) jobsWorker.add(worker);
  };

  const startListening = async (): Promise<void> => {
    try {
      await listen(listener, opts.host, opts.port);
    } catch (err) {
      failure = 1;
      opts.say(`${(err as Error).message}; stopping`);
      stop('SIGTERM');
      return;
    }
    if (stopping) return;
    url = urlOf(listener, opts.host);
    for (const worker of Object.values(cluster.workers ?? {})) if (worker && started.has(worker)) join(worker);
    opts.onListening(url);
  };

  cluster.on('message', (worker, message: MetricsMessage | ControlMessage) => {
    switch (message?.type) {
      case METRICS_REQUEST:
        render().then(
          (text) => worker.send({ type: METRICS_RESPONSE, id: (message as MetricsMessage).id, text }),
          (err: Error) => worker.send({ type: METRICS_RESPONSE, id: (message as MetricsMessage).id, error: err.message }),
        );
        break;
      case READY:
        started.add(worker);
        if (stopping) tell(worker, { type: DRAIN, signal: 'SIGTERM' });
        else if (url !== undefined) join(worker);
        else if (Object.values(cluster.workers ?? {}).every((w) => w === undefined || started.has(w))) void startListening();
        break;
      case LEAVE:
        leave(worker);
        tell(worker, { type: DRAIN, signal: (message as ControlMessage).signal });
        break;
    }
  });

  const done = new Promise<void>((resolve) => {
    cluster.on('exit', (worker, code, signal) => {
      alive -= 1;
      leave(worker);
      const jobs = jobsWorker.has(worker);
      if (!stopping && !started.has(worker)) {
        // Never got as far as serving: the next one would fail the same way.
        failure = code ?? 1;
        opts.say(`a server process exited during start-up (${signal ?? `exit code ${code}`}); stopping`);
        stop('SIGTERM');
      } else if (!stopping) {
        opts.say(`a server process died (${signal ?? `exit code ${code}`}); starting a new one`);
        fork(jobs);
      }
      if (alive === 0 && stopping) resolve();
    });
  });

  let metricsServer: Server | undefined;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    whenQuiet(() => {
      if (listener.listening) listener.close();
      for (const socket of waiting.splice(0)) socket.destroy();
      rotation.length = 0;
      // Every connection accepted is on its way to a worker; DRAIN follows it on that channel.
      for (const worker of Object.values(cluster.workers ?? {})) {
        if (worker && started.has(worker)) tell(worker, { type: DRAIN, signal });
        else worker?.process.kill(signal);
      }
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  for (let i = 0; i < opts.processes; i++) fork(opts.withJobs && i === 0);
  if (opts.metricsPort !== undefined) metricsServer = await startMetricsServer(render, opts.host, opts.metricsPort);

  await done;
  await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
  return failure ?? 0;
}

/** A worker's end of the hand-off: see {@link connectionsFromPrimary}. */
export interface PrimaryConnections {
  /** For `startServer`: serve the connections the primary hands over; resolves with its URL. */
  accept: (server: Server) => Promise<string>;
  /** Resolves when the primary says to drain: no connection comes after that. */
  drain: Promise<NodeJS.Signals>;
}

/**
 * In a worker, before its server starts: take connections from the primary instead of listening.
 * A signal to the worker itself (SIGINT from a terminal reaches every process of the group) asks
 * the primary to leave it out first; it drains when the primary answers, with everything the
 * primary had handed it by then.
 */
export function connectionsFromPrimary(): PrimaryConnections {
  let serving: (url: string | undefined) => void = () => undefined;
  const served = new Promise<string | undefined>((resolve) => (serving = resolve));
  let draining: (signal: NodeJS.Signals) => void = () => undefined;
  const drain = new Promise<NodeJS.Signals>((resolve) => (draining = resolve));
  process.on('message', (message: ControlMessage) => {
    if (message?.type === SERVING) serving(message.url);
    else if (message?.type === DRAIN) {
      serving(undefined);
      draining(message.signal ?? 'SIGTERM');
    }
  });
  return {
    drain,
    accept: async (server) => {
      process.on('message', (message: ControlMessage, socket?: Socket) => {
        if (message?.type === CONNECTION && socket) server.emit('connection', socket);
      });
      // node:http starts its bookkeeping of connections (header and request timeouts,
      // closeIdleConnections) on 'listening'; this server never listens itself.
      server.emit('listening');
      const ask = (signal: NodeJS.Signals) => {
        if (process.connected) process.send!({ type: LEAVE, signal });
      };
      process.on('SIGINT', ask);
      process.on('SIGTERM', ask);
      process.send!({ type: READY });
      // A drain before the primary listened: this process never served.
      return (await served) ?? 'nowhere (stopped before the primary listened)';
    },
  };
}

/**
 * In a worker: answer the primary's aggregation requests from this process's registry, and make
 * `render()` (the public `/metrics`) return the aggregate of all workers, fetched from the primary.
 */
export function joinClusterMetrics(metrics: { registry: Registry; render: () => Promise<string> }): void {
  // The constructor installs prom-client's worker-side listener; the registry is ours, not global.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([metrics.registry]);
  const pending = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  let next = 0;
  process.on('message', (message: MetricsMessage) => {
    if (message?.type !== METRICS_RESPONSE) return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error !== undefined) waiter?.reject(new Error(message.error));
    else waiter?.resolve(message.text ?? '');
  });
  metrics.render = () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      process.send!({ type: METRICS_REQUEST, id });
    });
}

/** In a worker that has stopped serving: closes the IPC channel, so the process can exit. */
export function leaveCluster(): void {
  if (cluster.isWorker && cluster.worker?.isConnected()) cluster.worker.disconnect();
}
