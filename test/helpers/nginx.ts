import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect } from './redis-server.js';

/** Debian's nginx (`apt-get install nginx-light`), or undefined when it is not installed. */
export function nginxBinary(): string | undefined {
  return ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path));
}

/**
 * docker/nginx.conf (a conf.d file) for a test: the upstream's servers become `servers` (each with
 * the parameters the file gives its first one) and `listen 80` becomes `listen`. Nothing else
 * changes, so what is tested is what ships.
 */
export function renderNginxConf(source: string, opts: { servers: string[]; listen: string }): string {
  const upstream = /upstream authctl \{[^}]*\}/.exec(source);
  if (!upstream) throw new Error('docker/nginx.conf: no `upstream authctl { … }` block');
  const lines = [...upstream[0].matchAll(/^(\s*)server\s+\S+?(\s[^;]*)?;\n/gm)];
  if (lines.length === 0) throw new Error('docker/nginx.conf: the upstream lists no server');
  const [first] = lines;
  const [indent, params] = [first![1]!, first![2] ?? ''];
  const servers = opts.servers.map((address) => `${indent}server ${address}${params};\n`).join('');
  let block = upstream[0];
  for (const line of lines) block = block.replace(line[0], line === first ? servers : '');
  const listen = /^(\s*)listen 80;$/m;
  if (!listen.test(source)) throw new Error('docker/nginx.conf: no `listen 80;`');
  return source.replace(upstream[0], block).replace(listen, `$1listen ${opts.listen};`);
}

/** One line per request in `access.log`: when it ended, what it was, which servers nginx tried. */
const LOG_FORMAT = '\'$msec $request_method $uri $status "$upstream_addr" "$upstream_status"\'';

export interface AccessLogEntry {
  /** Epoch ms when nginx finished the request. */
  at: number;
  method: string;
  uri: string;
  status: number;
  /** Every server nginx tried, in order (`127.0.0.1:1234`), empty when none was. */
  upstreams: string[];
  upstreamStatuses: string[];
}

/**
 * A private nginx (master and workers in their own process group) running a rendered
 * docker/nginx.conf inside the http block of a minimal main config, like the official image's:
 * pid, logs and temp paths in a temp dir of its own.
 */
export class NginxProcess {
  private child: ChildProcess | undefined;
  private output = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async start(binary: string, conf: string, port: number): Promise<NginxProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'authctl-nginx-'));
    // Workers run as `nobody` when the master is root: they must reach the temp paths inside.
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'authctl.conf'), conf);
    const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `    ${kind}_temp_path ${join(dir, kind)};`).join('\n');
    writeFileSync(
      join(dir, 'nginx.conf'),
      `worker_processes auto;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    log_format authctl_test ${LOG_FORMAT};
    access_log ${join(dir, 'access.log')} authctl_test;
${temp}
    include ${join(dir, 'authctl.conf')};
}
`,
    );
    const nginx = new NginxProcess(dir, port);
    await nginx.run(binary);
    return nginx;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private async run(binary: string): Promise<void> {
    // -e: the error log before the config is read (the packaged default is not writable unless root).
    const args = ['-p', this.dir, '-c', join(this.dir, 'nginx.conf'), '-e', join(this.dir, 'error.log'), '-g', 'daemon off;'];
    const child = spawn(binary, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    const deadline = Date.now() + 5_000;
    while (!(await canConnect(this.port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await this.stop();
        throw new Error(`nginx did not start:\n${this.output}${this.errorLog()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  errorLog(): string {
    const path = join(this.dir, 'error.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  accessLog(): AccessLogEntry[] {
    const path = join(this.dir, 'access.log');
    if (!existsSync(path)) return [];
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [, at, method, uri, status, upstreams, statuses] = /^(\S+) (\S+) (\S+) (\d+) "([^"]*)" "([^"]*)"$/.exec(line) ?? [];
        const list = (text = '') => (text === '-' || text === '' ? [] : text.split(/, | : /));
        return { at: Number(at) * 1000, method: method!, uri: uri!, status: Number(status), upstreams: list(upstreams), upstreamStatuses: list(statuses) };
      });
  }

  /** Stops the whole process group and removes the temp dir. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      process.kill(-child.pid, 'SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
