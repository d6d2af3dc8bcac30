import { expect } from 'chai';
import type { AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { createAccount, expectInvalidToken, expectProblem, expectTokenResponse, login } from '../helpers/http-assert.js';
import { eventually, startRegions, type RegionNode } from '../regions/support.js';
import { PASSKEY_CHROMIUM_ARGS, PasskeyTab, startPageServer, webauthnConfig, type PageServer } from './support.js';

/**
 * A travelling user's passkey: registered in one region, it signs in at the other once the
 * passkey has replicated; a ceremony started in one region finishes in the other (the challenge is
 * sealed, not stored); a challenge spent in one region is refused in the other once the use
 * arrives; a removal in one region ends the passkey in both, and the sessions it signed in.
 */
describe('passkeys across regions', function () {
  this.timeout(120_000);
  let browser: Browser | undefined;
  let pages: PageServer;
  let a: RegionNode;
  let b: RegionNode;
  let tab: PasskeyTab;

  const post = (node: RegionNode, path: string, json: unknown, token?: string) => node.request(path, { method: 'POST', json, ...(token ? { token } : {}) });

  async function requestOptions(node: RegionNode, body: Record<string, unknown> = {}): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const res = await post(node, '/v1/auth/passkey/options', body);
    expect(res.status, await res.clone().text()).to.equal(200);
    return (await res.json()) as PublicKeyCredentialRequestOptionsJSON;
  }

  const verify = (node: RegionNode, response: AuthenticationResponseJSON) => post(node, '/v1/auth/passkey/verify', { response });
  const passkeyAt = (node: RegionNode, userId: string) => async () =>
    (await node.query<{ counter: string; removed_at: Date | null }>('select counter, removed_at from passkeys where user_id = ?', [userId]))[0];

  before(async function () {
    const launched = await launchChromium(PASSKEY_CHROMIUM_ARGS);
    if (!launched.browser) this.skip();
    browser = launched.browser;
    pages = await startPageServer();
    [a, b] = (await startRegions(['pka', 'pkb'], () => ({ identity: { webauthn: webauthnConfig([pages.origin()]) } }))) as [RegionNode, RegionNode];
    tab = await PasskeyTab.open(browser, pages.origin());
  });

  after(async function () {
    await tab?.close();
    await Promise.all([a?.close(), b?.close()]);
    await browser?.close();
    await pages?.close();
  });

  it('registered in one region, the passkey signs in at the other, usernameless and by username, and the tokens work there', async function () {
    const user = await createAccount(a, 'pk_travel');
    const token = (await login(a, user.username, user.password)).accessToken;
    const options = await post(a, '/v1/me/passkeys/options', {}, token);
    const response = await tab.register((await options.json()) as PublicKeyCredentialCreationOptionsJSON);
    expect((await post(a, '/v1/me/passkeys', { response, name: 'laptop' }, token)).status).to.equal(201);

    await eventually('the passkey at pkb', passkeyAt(b, user.user.id));
    const usernameless = await expectTokenResponse(await verify(b, await tab.authenticate(await requestOptions(b))));
    expect(usernameless.user.id).to.equal(user.user.id);
    expect((await b.request('/v1/me', { token: usernameless.accessToken })).status).to.equal(200);

    const byName = await requestOptions(b, { username: user.username });
    expect(byName.allowCredentials?.map((c) => c.id)).to.deep.equal([response.id]);
    await expectTokenResponse(await verify(b, await tab.authenticate(byName)));

    // The list at pkb names the passkey as it was registered at pka.
    const list = (await (await b.request('/v1/me/passkeys', { token: usernameless.accessToken })).json()) as { passkeys: Array<{ name: string }> };
    expect(list.passkeys.map((p) => p.name)).to.deep.equal(['laptop']);
  });

  it('a ceremony started at one region finishes at the other; its challenge, spent there, is refused back at the first once the use arrives', async function () {
    const user = await createAccount(a, 'pk_cross');
    const token = (await login(a, user.username, user.password)).accessToken;
    const extra = await PasskeyTab.open(browser!, pages.origin());
    try {
      // Registration: options from pka, the passkey stored at pkb.
      await eventually('the user at pkb', async () => ((await b.query('select 1 from users where id = ?', [user.user.id])).length > 0 ? true : undefined));
      const options = await post(a, '/v1/me/passkeys/options', {}, token);
      const registration = await extra.register((await options.json()) as PublicKeyCredentialCreationOptionsJSON);
      expect((await post(b, '/v1/me/passkeys', { response: registration }, token)).status).to.equal(201);
      await eventually('the passkey at pka', passkeyAt(a, user.user.id));

      // Sign-in: options from pkb, the answer at pka; then the same answer at pkb, after the use replicated.
      const assertion = await extra.authenticate(await requestOptions(b, { username: user.username }));
      await expectTokenResponse(await verify(a, assertion));
      await eventually('the counter at pkb', async () => {
        const row = await passkeyAt(b, user.user.id)();
        return row && Number(row.counter) > 1 ? row : undefined;
      });
      // pkb holds the registration's challenge (spent there) and, once it arrives, the sign-in's.
      await eventually('the challenge use at pkb', async () =>
        (await b.query('select 1 from mfa_token_uses where user_id = ?', [user.user.id])).length >= 2 ? true : undefined,
      );
      await expectProblem(await verify(b, assertion), 400, 'invalid_passkey_challenge');
    } finally {
      await extra.close();
    }
  });

  it('removed in one region, the passkey no longer signs in at the other, and the sessions it signed in there end', async function () {
    const user = await createAccount(a, 'pk_removed');
    const token = (await login(a, user.username, user.password)).accessToken;
    const extra = await PasskeyTab.open(browser!, pages.origin());
    try {
      const options = await post(a, '/v1/me/passkeys/options', {}, token);
      const registration = await extra.register((await options.json()) as PublicKeyCredentialCreationOptionsJSON);
      const created = await post(a, '/v1/me/passkeys', { response: registration }, token);
      const { id } = (await created.json()) as { id: string };
      await eventually('the passkey at pkb', passkeyAt(b, user.user.id));
      // A session the passkey signed in at pkb: pka learns which passkey signed it in with the row.
      const atB = await expectTokenResponse(await verify(b, await extra.authenticate(await requestOptions(b))));
      const sessionAt = (node: RegionNode) => async () =>
        (
          await node.query<{ passkey_id: string | null; revoke_reason: string | null }>('select passkey_id, revoke_reason from sessions where id = ?', [
            atB.sessionId,
          ])
        )[0];
      await eventually('the session at pka, with its passkey', async () => ((await sessionAt(a)())?.passkey_id === id ? true : undefined));

      expect((await a.request(`/v1/me/passkeys/${id}`, { method: 'DELETE', token })).status).to.equal(204);
      await eventually('the removal at pkb', async () => ((await passkeyAt(b, user.user.id)())?.removed_at ? true : undefined));
      await eventually('the revocation at pkb', async () => ((await sessionAt(b)())?.revoke_reason === 'passkey_removed' ? true : undefined));
      await expectInvalidToken(await b.request('/v1/me', { token: atB.accessToken }));
      await expectProblem(await verify(b, await extra.authenticate(await requestOptions(b))), 401, 'passkey_rejected');
    } finally {
      await extra.close();
    }
  });
});
