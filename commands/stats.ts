import type { StatsReport, UsageWindow } from '../src/admin/stats.js';
import { BaseCommand } from './_base.js';

export default class Stats extends BaseCommand<typeof Stats> {
  static override summary = 'Summarize the region: users, sessions, logins and refreshes, cache, database load and job queues.';
  static override description =
    'Read from PostgreSQL, Redis and pg-boss; no server needs to run. Logins and refreshes come from the hourly usage counters, so "last hour" covers the previous hour and the current one so far. A cache that cannot be reached is shown as degraded; a database that cannot be reached exits 69.';
  static override examples = ['<%= config.bin %> stats', '<%= config.bin %> stats --json'];

  async run(): Promise<StatsReport> {
    const report = await this.container.admin.stats();
    this.say(render(report));
    return report;
  }
}

const LABEL = 20;

function render(r: StatsReport): string {
  const lines: string[] = [];
  const section = (title: string, note = '') => lines.push(note ? `${title.padEnd(LABEL + 2)}${note}` : title);
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(LABEL)}${value}`);

  lines.push(`authctl stats: region ${r.region} at ${utc(r.generatedAt)}`, '');

  // An estimate reads "≈ 10,000,000": PostgreSQL's figure, not a count (see the note below).
  const count = (path: string, value: number) => (r.estimated.includes(path) ? `≈ ${n(value)}` : n(value));
  section('Users');
  row('total', count('users.total', r.users.total));
  row('disabled', count('users.disabled', r.users.disabled));
  // Imported users not logged in since: their hash is replaced by argon2id at their next login.
  const foreign = Object.entries(r.users.foreignHashes);
  row('foreign hashes', foreign.length === 0 ? 'none' : foreign.map(([format, c]) => `${format} ${n(c)}`).join(', '));

  section('Sessions');
  row('active', count('sessions.active', r.sessions.active));
  row('revoked in 24 h', count('sessions.revokedLast24h', r.sessions.revokedLast24h));

  const usage = (title: string, w: UsageWindow | undefined) => {
    if (!w) {
      section(title, 'not available');
      return;
    }
    section(title, `(since ${utc(w.since)})`);
    row('logins', `${n(w.counts.logins)}   failed ${n(w.counts.login_failures)}`);
    row('registrations', n(w.counts.registrations));
    row('refreshes', `${n(w.counts.refreshes)}   reuse detected ${n(w.counts.reuse_detections)}`);
    row('revocations', n(w.counts.revocations));
  };
  usage('Last hour', r.usage?.lastHour);
  usage('Last 24 h', r.usage?.last24h);

  const c = r.cache;
  section('Cache');
  row('driver', `${c.driver} (${c.health})`);
  row('hit ratio', pct(c.hitRatio));
  row('keys', c.keys ? `${n(c.keys.sessions)} sessions, ${n(c.keys.users)} users` : '-');
  row('memory', bytes(c.memoryBytes));

  const d = r.database;
  section('Database');
  row('name', `${d.name} (${bytes(d.sizeBytes)})`);
  row('connections', `${n(d.connections)} of ${n(d.maxConnections)}`);
  row('queries', `${n(d.activeQueries)} running, ${n(d.idleInTransaction)} idle in transaction`);
  row('longest query', d.longestQuerySeconds === null ? '-' : `${d.longestQuerySeconds.toFixed(1)} s`);
  row('transactions', `${n(d.xactCommit)} committed, ${n(d.xactRollback)} rolled back, ${n(d.deadlocks)} deadlocks`);
  row('buffer hit ratio', pct(d.blocksHitRatio));
  row('counting since', d.statsSince ? utc(d.statsSince) : 'database creation');

  if (r.queues) {
    section('Queues', ['queued', 'active', 'failed'].map((h) => h.padStart(8)).join(''));
    for (const [name, q] of Object.entries(r.queues.depth)) {
      row(name, [q.queued, q.active, q.failed].map((v) => n(v).padStart(8)).join(''));
    }
  } else {
    section('Queues', 'not available');
  }

  const notes = [...r.warnings];
  if (r.estimated.length > 0) notes.push("≈: PostgreSQL's estimate from its table statistics (counting that many rows would read the whole table)");
  if (notes.length > 0) lines.push('', ...notes.map((w) => `note: ${w}`));
  return lines.join('\n');
}

const numberFormat = new Intl.NumberFormat('en-US');

function n(value: number): string {
  return numberFormat.format(value);
}

function pct(ratio: number | null): string {
  return ratio === null ? '-' : `${(ratio * 100).toFixed(1)} %`;
}

function bytes(value: number | null): string {
  if (value === null) return '-';
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  if (value < 1024 ** 3) return `${(value / 1024 ** 2).toFixed(1)} MiB`;
  return `${(value / 1024 ** 3).toFixed(2)} GiB`;
}

function utc(at: Date): string {
  return `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
