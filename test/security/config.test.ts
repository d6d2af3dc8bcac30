import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.js';
import { isAppError } from '../../src/platform/errors.js';

const load = (env: Record<string, string>) => loadConfig({ env, cwd: '/nonexistent' });

function badConfigDetail(env: Record<string, string>): string {
  try {
    load(env);
  } catch (err) {
    expect(isAppError(err, 'bad_config'), String(err)).to.equal(true);
    return (err as Error).message;
  }
  return expect.fail('expected bad_config');
}

describe('security configuration (rateLimit, http.trustProxy, http.corsOrigins)', function () {
  it('defaults: throttling on, no proxy trusted, no CORS origin', function () {
    const config = load({});
    expect(config.rateLimit).to.deep.equal({
      enabled: true,
      freeFailures: 5,
      maxFailures: 100,
      failureWindow: 86_400,
      maxBackoff: 900,
      ipFailures: 100,
      ipWindow: 900,
      registerPerIp: 20,
      registerWindow: 3_600,
      introspectPerClient: 2_000,
    });
    expect(config.http.trustProxy).to.equal(false);
    expect(config.http.proxyHops).to.equal(1);
    expect(config.http.corsOrigins).to.deep.equal([]);
  });

  it('environment: AUTHCTL_CORS_ORIGINS is a comma list; the other variables land where README says', function () {
    const config = load({
      AUTHCTL_CORS_ORIGINS: ' https://app.example.com, http://localhost:3000 ,',
      AUTHCTL_TRUST_PROXY: 'true',
      AUTHCTL_PROXY_HOPS: '2',
      AUTHCTL_RATE_LIMIT: 'false',
      AUTHCTL_RATE_LIMIT_MAX_FAILURES: '50',
      AUTHCTL_RATE_LIMIT_IP_FAILURES: '500',
      AUTHCTL_RATE_LIMIT_REGISTER_PER_IP: '5',
    });
    expect(config.http.corsOrigins).to.deep.equal(['https://app.example.com', 'http://localhost:3000']);
    expect(config.http).to.include({ trustProxy: true, proxyHops: 2 });
    expect(config.rateLimit).to.include({ enabled: false, maxFailures: 50, ipFailures: 500, registerPerIp: 5 });
  });

  it('refuses more than 100 failures per account, a non-URL origin, and names the variable', function () {
    expect(badConfigDetail({ AUTHCTL_RATE_LIMIT_MAX_FAILURES: '101' })).to.include('AUTHCTL_RATE_LIMIT_MAX_FAILURES');
    expect(badConfigDetail({ AUTHCTL_CORS_ORIGINS: 'https://ok.example,javascript:alert(1)' })).to.include('AUTHCTL_CORS_ORIGINS');
    expect(badConfigDetail({ AUTHCTL_TRUST_PROXY: 'maybe' })).to.include('AUTHCTL_TRUST_PROXY');
  });
});
