import { providerSettings } from '../../src/core/oidc/provider-settings.js';
import type { LinkingPolicy } from '../../src/model/identity.js';
import { BaseCommand } from '../_base.js';
import { table } from '../_io.js';
import { callbackUrl } from '../../src/cli/providers.js';

interface ProviderView {
  id: string;
  displayName: string;
  issuer: string;
  clientId: string;
  /** Whether a client secret is configured (never the secret): false is a public client, PKCE only. */
  secretSet: boolean;
  scopes: string[];
  linking: LinkingPolicy;
  /** What to register at the provider as the authorized redirect URI. */
  redirectUri: string;
}

export default class ProvidersList extends BaseCommand<typeof ProvidersList> {
  static override summary = 'List the OpenID Connect providers users may sign in with (never their client secrets).';
  static override description =
    "Reads the configuration only (no database, no network): each provider of identity.providers with its preset applied — id, display name, issuer, client id, scopes, linking policy — and the redirect URI to register at the provider (this region's public URL, else the token issuer, + /v1/auth/oidc/<id>/callback). Client secrets are never shown; `secretSet` says whether one is configured. `authctl providers check <id>` asks the provider itself.";
  static override examples = ['<%= config.bin %> providers list', '<%= config.bin %> providers list --json'];

  run(): Promise<{ providers: ProviderView[]; redirectUrls: string[] }> {
    const config = this.settings;
    const providers = providerSettings(config).map((p): ProviderView => ({
      id: p.id,
      displayName: p.displayName,
      issuer: p.issuer,
      clientId: p.clientId,
      secretSet: p.clientSecret !== undefined,
      scopes: p.scopes,
      linking: p.linking,
      redirectUri: callbackUrl(config, p.id),
    }));
    const redirectUrls = [...config.identity.redirectUrls];
    if (providers.length === 0) {
      this.say('No providers: add one under identity.providers (README "Sign in with Google and other providers"), or set AUTHCTL_GOOGLE_CLIENT_ID.');
    } else {
      this.say(
        table(
          providers.map((p) => ({ ...p, scopes: p.scopes.join(' ') })),
          ['id', 'displayName', 'issuer', 'clientId', 'secretSet', 'scopes', 'linking', 'redirectUri'],
        ),
      );
      this.say(`\nApps may be sent back to: ${redirectUrls.join(', ') || '(none: set identity.redirectUrls)'}`);
    }
    return Promise.resolve({ providers, redirectUrls });
  }
}
