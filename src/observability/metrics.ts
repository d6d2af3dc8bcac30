import { collectDefaultMetrics, Registry } from 'prom-client';

/** One registry per container (not prom-client's global), so several servers can share a process. */
export function createMetricsRegistry(region: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ region });
  collectDefaultMetrics({ register: registry, prefix: 'authctl_' });
  return registry;
}
