import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Config } from '@oclif/core';
import { expect } from 'chai';
import { parse } from 'yaml';
import { ENV_VARIABLES } from '../../src/config/load.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { repoRoot } from './run-cli.js';

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { disable?: boolean; test?: string[] };
  restart?: string;
  volumes?: string[];
}

const dockerDir = join(repoRoot, 'docker');
const read = (name: string) => readFileSync(join(dockerDir, name), 'utf8');

/** What can be checked of docker/ without a Docker engine: that it names only real things. */
describe('docker/ deployment files', function () {
  let services: Record<string, ComposeService>;
  let oclif: Config;
  const authctlServices = () => Object.entries(services).filter(([, s]) => s.build !== undefined || s.image?.startsWith('authctl'));

  before(async function () {
    const compose = parse(read('compose.yml'), { merge: true }) as { services: Record<string, ComposeService> };
    services = compose.services;
    oclif = await Config.load(repoRoot);
  });

  it('compose.yml has PostgreSQL, Redis, a one-shot migrate, two servers, a worker, nginx and Prometheus', function () {
    expect(Object.keys(services)).to.include.members(['postgres', 'redis', 'migrate', 'authctl-1', 'authctl-2', 'worker', 'nginx', 'prometheus']);
    expect(services.migrate!.restart).to.equal('no');
    for (const name of ['authctl-1', 'authctl-2', 'worker']) {
      expect((services[name]!.depends_on as Record<string, { condition: string }>).migrate, name).to.deep.equal({
        condition: 'service_completed_successfully',
      });
    }
    expect((services.migrate!.depends_on as Record<string, { condition: string }>).postgres).to.deep.equal({ condition: 'service_healthy' });
  });

  it('every authctl command compose runs exists in dist/commands, with the flags it passes', function () {
    const roles = authctlServices();
    expect(roles.map(([name]) => name)).to.have.members(['migrate', 'authctl-1', 'authctl-2', 'worker']);
    for (const [name, service] of roles) {
      const words = service.command ?? ['serve'];
      const firstFlag = words.findIndex((w) => w.startsWith('-'));
      const id = (firstFlag === -1 ? words : words.slice(0, firstFlag)).join(':');
      const command = oclif.findCommand(id);
      expect(command, `${name} runs "authctl ${words.join(' ')}", which is not a command`).to.not.equal(undefined);
      expect(
        existsSync(join(repoRoot, 'dist/commands', `${id.replace(/:/g, '/')}.js`)) ||
          existsSync(join(repoRoot, 'dist/commands', id.replace(/:/g, '/'), 'index.js')),
      ).to.equal(true);
      for (const flag of words.filter((w) => w.startsWith('--')).map((w) => w.slice(2).split('=')[0]!)) {
        expect(Object.keys(command!.flags), `${name}: authctl ${id} has no --${flag}`).to.include(flag);
      }
    }
    // The one-shot job and the worker serve no HTTP: the image's /healthz check is off for them.
    expect(services.migrate!.healthcheck).to.deep.equal({ disable: true });
    expect(services.worker!.healthcheck).to.deep.equal({ disable: true });
  });

  it('every AUTHCTL_* variable compose sets is one the config loader reads', function () {
    const known = new Set([...Object.keys(ENV_VARIABLES), 'AUTHCTL_CONFIG']);
    let count = 0;
    for (const [name, service] of authctlServices()) {
      const env = service.environment ?? {};
      for (const variable of Object.keys(env).filter((v) => v.startsWith('AUTHCTL_'))) {
        count++;
        expect(known.has(variable), `${name} sets ${variable}, which authctl does not read`).to.equal(true);
      }
      expect(env, name).to.include.keys('AUTHCTL_DATABASE_URL', 'AUTHCTL_REDIS_URL', 'AUTHCTL_SECRET');
      // The database URL points at the compose service, the secret comes from docker/.env.
      expect(env.AUTHCTL_DATABASE_URL).to.match(/@postgres:5432\//);
      expect(env.AUTHCTL_REDIS_URL).to.equal('redis://redis:6379');
      expect(env.AUTHCTL_SECRET).to.match(/^\$\{AUTHCTL_SECRET:\?/);
    }
    expect(count).to.be.greaterThan(10);
  });

  it('nginx balances over exactly the serve services, on their port; Prometheus scrapes the same', function () {
    const nginx = read('nginx.conf');
    const upstream = /upstream authctl \{([^}]*)\}/.exec(nginx)?.[1] ?? '';
    const servers = [...upstream.matchAll(/server\s+([\w.-]+):(\d+)/g)].map((m) => ({ host: m[1]!, port: m[2]! }));
    const serving = authctlServices().filter(([, s]) => (s.command ?? ['serve'])[0] === 'serve');
    expect(servers.map((s) => s.host)).to.have.members(serving.map(([name]) => name));
    for (const server of servers) expect(server.port).to.equal(services[server.host]!.environment!.AUTHCTL_PORT);
    expect(nginx).to.match(/proxy_pass http:\/\/authctl;/);
    expect(nginx).to.match(/location ~\* \^\/metrics\/\?\$ \{\s*return 404;/);
    expect(services.nginx!.volumes).to.include('./nginx.conf:/etc/nginx/conf.d/default.conf:ro');

    const prometheus = parse(read('prometheus.yml')) as { scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }> };
    const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    expect(targets.map((t) => t.split(':')[0])).to.have.members(serving.map(([name]) => name));
    expect(services.prometheus!.volumes).to.include('./prometheus.yml:/etc/prometheus/prometheus.yml:ro');
  });

  describe('Dockerfile', function () {
    const dockerfile = () => read('Dockerfile');
    const finalStage = () =>
      dockerfile()
        .split(/^FROM /m)
        .pop()!;

    it('is multi-stage; the runtime has production dependencies only and runs as a non-root user', function () {
      expect(dockerfile().match(/^FROM /gm)!.length).to.be.at.least(2);
      expect(dockerfile()).to.match(/npm ci --omit=dev/);
      const runtime = finalStage();
      const user = /^USER\s+(\S+)/m.exec(runtime)?.[1];
      expect(user).to.be.a('string');
      expect(['root', '0']).not.to.include(user);
      // node_modules of the runtime come from the production-only stage, never from the build stage.
      const modules = /^COPY --from=(\S+) \/app\/node_modules/m.exec(runtime)?.[1];
      expect(modules).to.equal('deps');
      expect(runtime).not.to.match(/COPY --from=build \/app\/node_modules/);
      expect(/^ENTRYPOINT \["node", "bin\/run\.js"\]/m.test(runtime)).to.equal(true);
    });

    it('copies only paths that exist', function () {
      for (const match of dockerfile().matchAll(/^COPY (?!--from)(.+)$/gm)) {
        const parts = match[1]!.trim().split(/\s+/);
        for (const source of parts.slice(0, -1)) expect(existsSync(join(repoRoot, source)), `COPY ${source}`).to.equal(true);
      }
    });

    describe('HEALTHCHECK', function () {
      let app: TestApp;
      before(async function () {
        app = await startTestApp('docker_health');
      });
      after(async function () {
        await app?.close();
      });

      it('nginx hides every spelling of /metrics that the server answers with metrics', async function () {
        const pattern = /location ~\* (\S+) \{\s*return 404;/.exec(read('nginx.conf'))?.[1];
        expect(pattern, 'a case-insensitive location for /metrics').to.be.a('string');
        const hidden = new RegExp(pattern!, 'i');
        const serving: string[] = [];
        for (const spelling of ['/metrics', '/metrics/', '/METRICS', '/Metrics/']) {
          const res = await fetch(`${app.url}${spelling}`);
          const body = await res.text();
          if (res.status === 200 && body.includes('# TYPE')) serving.push(spelling);
        }
        expect(serving, 'the server answers /metrics itself').to.include('/metrics');
        for (const spelling of serving) expect(hidden.test(spelling), `${spelling} serves metrics: nginx must hide it`).to.equal(true);
        expect(hidden.test('/v1/me')).to.equal(false);
      });

      it('asks for a path the server answers 200 on', async function () {
        const check = /^HEALTHCHECK[\s\S]*?CMD (.+)$/m.exec(finalStage())?.[1] ?? '';
        const path = /\/healthz\b/.exec(check)?.[0];
        expect(path, check).to.equal('/healthz');
        const res = await fetch(`${app.url}${path}`);
        expect(res.status).to.equal(200);
      });
    });
  });
});
