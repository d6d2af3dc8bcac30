import { execFile, spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { discoverySchema } from '../../src/http/routes/discovery.js';
import type { TestApp } from '../helpers/app.js';
import { createAccount, JSON_CONTENT_TYPE, login } from '../helpers/http-assert.js';
import { eventually, startRegions, type RegionNode } from '../regions/support.js';
import { startIssuerApp } from './support.js';

const PYTHON = '/usr/bin/python3';

/**
 * Fetches the discovery document, then the JWKS it names, with PyJWT alone, and verifies the
 * token as a Python service would. Prints the verified claims as JSON.
 */
const PYJWT_VERIFY = `
import json, sys, urllib.request
import jwt
discovery_url, token, audience = sys.argv[1], sys.argv[2], sys.argv[3]
meta = json.load(urllib.request.urlopen(discovery_url))
key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token)
claims = jwt.decode(token, key.key, algorithms=meta["id_token_signing_alg_values_supported"], audience=audience, issuer=meta["issuer"])
print(json.dumps(claims))
`;

function pythonHasJwt(): boolean {
  return spawnSync(PYTHON, ['-c', 'import jwt, cryptography'], { stdio: 'ignore' }).status === 0;
}

/** Runs the script in a child process, asynchronously: the server it asks runs in this process. */
function pyjwtVerify(discoveryUrl: string, token: string, audience: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(PYTHON, ['-c', PYJWT_VERIFY, discoveryUrl, token, audience], { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function accessToken(app: TestApp): Promise<string> {
  const account = await createAccount(app, 'disco');
  return (await login(app, account.username, account.password)).accessToken;
}

for (const alg of ['EdDSA', 'ES256'] as const) {
  describe(`discovery (RFC 8414, OIDC Discovery) with ${alg} keys, read by clients written elsewhere`, function () {
    let app: TestApp;
    let token: string;

    before(async function () {
      app = await startIssuerApp(`oauth_discovery_${alg}`, { overrides: () => ({ tokens: { alg } }) });
      token = await accessToken(app);
    });
    after(async function () {
      await app?.close();
    });

    it('serves one document at both well-known paths, cacheable for 300 s like the JWKS, matching its schema', async function () {
      const bodies: unknown[] = [];
      for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
        const res = await app.request(path);
        expect(res.status).to.equal(200);
        expect(res.headers.get('content-type')).to.match(JSON_CONTENT_TYPE);
        expect(res.headers.get('cache-control')).to.equal('public, max-age=300');
        bodies.push(await res.json());
      }
      expect(bodies[0]).to.deep.equal(bodies[1]);
      const doc = discoverySchema.strict().parse(bodies[0]);
      expect(doc).to.deep.include({
        issuer: app.url,
        jwks_uri: `${app.url}/.well-known/jwks.json`,
        introspection_endpoint: `${app.url}/oauth/introspect`,
        revocation_endpoint: `${app.url}/oauth/revoke`,
        introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
        id_token_signing_alg_values_supported: [alg],
        access_token_signing_alg_values_supported: [alg],
        subject_types_supported: ['public'],
        // No authorization or token endpoint exists: no flow is claimed.
        response_types_supported: [],
        grant_types_supported: [],
      });
      expect(doc).not.to.have.property('authorization_endpoint');
      expect(doc).not.to.have.property('token_endpoint');
      // http.docs is off here: no link to a page that would 404.
      expect(doc).not.to.have.property('service_documentation');
      for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'sid', 'region', 'preferred_username', 'email', 'email_verified', 'auth_time', 'amr', 'acr']) {
        expect(doc.claims_supported).to.include(claim);
      }
    });

    it('openid-client discovery() (OIDC and OAuth 2.0 paths) accepts it, and jose verifies a real access token with the JWKS it names', async function () {
      for (const algorithm of ['oidc', 'oauth2'] as const) {
        const config = await oidc.discovery(new URL(app.url), 'any-client', undefined, undefined, { algorithm, execute: [oidc.allowInsecureRequests] });
        const meta = config.serverMetadata();
        expect(meta.issuer).to.equal(app.url);
        expect(meta.introspection_endpoint).to.equal(`${app.url}/oauth/introspect`);
        const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(meta.jwks_uri!)), {
          issuer: meta.issuer,
          audience: app.container.config.tokens.audience,
          algorithms: meta.id_token_signing_alg_values_supported as string[],
          typ: 'at+jwt',
        });
        expect(protectedHeader.alg).to.equal(alg);
        // The issuer the document announces is the one the tokens carry.
        expect(payload.iss).to.equal(meta.issuer);
      }
    });

    it('openid-client refuses the document when it is asked for another issuer (the check is real)', async function () {
      const elsewhere = new URL(app.url.replace('127.0.0.1', 'localhost'));
      let failure: unknown;
      try {
        await oidc.discovery(elsewhere, 'any-client', undefined, undefined, { execute: [oidc.allowInsecureRequests] });
      } catch (err) {
        failure = err;
      }
      expect(failure, 'discovery of a mismatched issuer must fail').to.be.instanceOf(Error);
      expect((failure as Error).message).to.match(/issuer/);
    });

    it('PyJWT (Debian python3-jwt) verifies a real access token from the discovery document alone', async function () {
      if (!pythonHasJwt()) {
        // .ci/run installs it: under CI a missing checker is a broken setup, not a reason to pass.
        if (process.env.CI) throw new Error(`${PYTHON} has no jwt/cryptography module; .ci/run installs python3-jwt python3-cryptography`);
        console.log(`      skipped: ${PYTHON} has no jwt/cryptography module (apt-get install python3-jwt python3-cryptography)`);
        this.skip();
      }
      const ok = await pyjwtVerify(`${app.url}/.well-known/openid-configuration`, token, app.container.config.tokens.audience);
      expect(ok.status, ok.stderr).to.equal(0);
      const claims = JSON.parse(ok.stdout) as Record<string, unknown>;
      expect(claims.iss).to.equal(app.url);
      expect(claims.region).to.equal('local');
      // The same script refuses a token whose signature is not the key's, and a wrong audience.
      const [head, body, sig] = token.split('.') as [string, string, string];
      const flipped = `${head}.${body}.${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
      const forged = await pyjwtVerify(`${app.url}/.well-known/openid-configuration`, flipped, app.container.config.tokens.audience);
      expect(forged.status).to.not.equal(0);
      expect(forged.stderr).to.match(/InvalidSignatureError|Signature verification failed/);
      const wrongAudience = await pyjwtVerify(`${app.url}/.well-known/openid-configuration`, token, 'someone-else');
      expect(wrongAudience.stderr).to.match(/InvalidAudienceError/);
    });
  });
}

describe('discovery in two regions: each its own issuer, the same JWKS once keys have replicated', function () {
  let regions: RegionNode[];

  before(async function () {
    regions = await startRegions(['eu', 'us'], (name) => ({ tokens: { issuer: `https://${name}.auth.example.test` } }));
  });
  after(async function () {
    for (const region of regions ?? []) await region.close();
  });

  it('publishes its own issuer and endpoints under its own publicUrl', async function () {
    for (const region of regions) {
      const config = await oidc.discovery(new URL(`${region.url}/.well-known/openid-configuration`), 'any-client', undefined, undefined, {
        execute: [oidc.allowInsecureRequests],
      });
      const meta = config.serverMetadata();
      expect(meta.issuer).to.equal(`https://${region.name}.auth.example.test`);
      expect(meta.jwks_uri).to.equal(`${region.url}/.well-known/jwks.json`);
      expect(meta.introspection_endpoint).to.equal(`${region.url}/oauth/introspect`);
    }
  });

  it("lists every region's keys in every JWKS, so a token of one region verifies with the other's discovered JWKS and names its own issuer", async function () {
    const [eu, us] = regions as [RegionNode, RegionNode];
    const kids = async (node: RegionNode) =>
      ((await (await node.request('/.well-known/jwks.json')).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid).sort();
    const same = await eventually('both regions publish the same keys', async () => {
      const [a, b] = [await kids(eu), await kids(us)];
      return a.length >= 2 && JSON.stringify(a) === JSON.stringify(b) ? a : undefined;
    });
    expect(same.length).to.be.at.least(2);
    const euToken = await accessToken(eu);
    const meta = (
      await oidc.discovery(new URL(`${us.url}/.well-known/openid-configuration`), 'c', undefined, undefined, { execute: [oidc.allowInsecureRequests] })
    ).serverMetadata();
    const { payload } = await jwtVerify(euToken, createRemoteJWKSet(new URL(meta.jwks_uri!)), { audience: 'authctl' });
    // Verified with us's keys, issued by eu: the token says where it came from.
    expect(payload.iss).to.equal('https://eu.auth.example.test');
    expect(payload.iss).to.not.equal(meta.issuer);
  });
});
