import { Args } from '@oclif/core';
import type { ProviderEndpoints } from '../../src/core/oidc/oidc-flows.js';
import { BaseCommand } from '../_base.js';
import { PROVIDER_ARG, providerById } from '../../src/cli/providers.js';

export default class ProvidersCheck extends BaseCommand<typeof ProvidersCheck> {
  static override summary = "Fetch a provider's discovery document and print its endpoints.";
  static override description =
    "Runs OpenID Connect discovery for the provider exactly as sign-in does (<issuer>/.well-known/openid-configuration, within identity.providerTimeoutMs) and prints the issuer, the authorization, token and userinfo endpoints, the jwks_uri, and the redirect URI to register at the provider. Exit 69 when the provider cannot be reached or its answer is not an OpenID Provider's for the configured issuer (provider_unavailable, provider_error); exit 3 for an id that is not configured. Nothing secret is sent or printed.";
  static override examples = ['<%= config.bin %> providers check google', '<%= config.bin %> providers check okta --json'];
  static override args = { id: Args.string({ description: PROVIDER_ARG, required: true }) };

  async run(): Promise<{ provider: string; endpoints: ProviderEndpoints }> {
    const provider = providerById(this.settings, this.args.id);
    const endpoints = await this.container.oidc.discover(provider.id);
    this.say(
      [
        `✔ ${provider.displayName} (${provider.id}) answers discovery.`,
        `issuer:                 ${endpoints.issuer}`,
        `authorization endpoint: ${endpoints.authorizationEndpoint}`,
        `token endpoint:         ${endpoints.tokenEndpoint}`,
        `userinfo endpoint:      ${endpoints.userinfoEndpoint ?? '(none)'}`,
        `jwks_uri:               ${endpoints.jwksUri}`,
        '',
        `Register this redirect URI at the provider: ${endpoints.redirectUri}`,
      ].join('\n'),
    );
    return { provider: provider.id, endpoints };
  }
}
