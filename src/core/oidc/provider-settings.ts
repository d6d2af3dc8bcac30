import type { Config } from '../../config/schema.js';
import type { LinkingPolicy } from '../../model/identity.js';

/** One provider of `identity.providers` with its preset filled in: what the relying party works with. */
export interface ProviderSettings {
  id: string;
  issuer: string;
  clientId: string;
  /** Absent: a public client (PKCE only). */
  clientSecret: string | undefined;
  scopes: string[];
  displayName: string;
  linking: LinkingPolicy;
}

/** What a preset fills in when the provider's own entry leaves it out. */
const PRESETS = {
  google: { issuer: 'https://accounts.google.com', scopes: ['openid', 'email', 'profile'], displayName: 'Google' },
} as const;

const DEFAULT_SCOPES = ['openid', 'email', 'profile'];

/**
 * The providers of a config, presets applied: `preset: "google"` (or the id `google` with no
 * issuer) gets Google's issuer, scopes and name. `openid` is always among the scopes (without it
 * there is no ID token).
 */
export function providerSettings(config: Pick<Config, 'identity'>): ProviderSettings[] {
  return config.identity.providers.map((p) => {
    const preset = p.preset ?? (p.id === 'google' && !p.issuer ? 'google' : undefined);
    const base = preset ? PRESETS[preset] : undefined;
    const issuer = p.issuer ?? base?.issuer;
    // The schema refuses a provider with neither an issuer nor a preset.
    if (!issuer) throw new Error(`identity.providers: "${p.id}" has no issuer`);
    const scopes = p.scopes ?? [...(base?.scopes ?? DEFAULT_SCOPES)];
    return {
      id: p.id,
      issuer,
      clientId: p.clientId,
      clientSecret: p.clientSecret,
      scopes: scopes.includes('openid') ? scopes : ['openid', ...scopes],
      displayName: p.displayName ?? base?.displayName ?? p.id,
      linking: p.linking,
    };
  });
}
