import type { Config } from '../config/schema.js';
import { providerSettings, type ProviderSettings } from '../core/oidc/provider-settings.js';
import { AppError } from '../platform/errors.js';

/** The description of every `<id>` argument of `authctl providers …`. */
export const PROVIDER_ARG = 'Provider id (identity.providers[].id; see `authctl providers list`).';

/**
 * The redirect URI to register at the provider: this region's public URL (else the token issuer)
 * and the provider's callback route. Every region of a deployment registers its own.
 */
export function callbackUrl(config: Pick<Config, 'publicUrl' | 'tokens'> | string, id: string): string {
  const base = typeof config === 'string' ? config : (config.publicUrl ?? config.tokens.issuer);
  return `${base.replace(/\/+$/, '')}/v1/auth/oidc/${encodeURIComponent(id)}/callback`;
}

/** One configured provider by id; `not_found` (exit 3) naming the configured ones otherwise. */
export function providerById(config: Config, id: string): ProviderSettings {
  const providers = providerSettings(config);
  const found = providers.find((p) => p.id === id);
  if (found) return found;
  const known = providers.map((p) => p.id).join(', ');
  throw new AppError('not_found', `no provider "${id}" in identity.providers (${known ? `configured: ${known}` : 'none is configured'})`);
}
