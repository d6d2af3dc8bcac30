import type { ProviderIdentity } from '../../model/identity.js';
import type { SignInResult } from '../auth/auth-service.js';
import type { ClientMeta } from '../sessions/session-service.js';
import type { ProviderSettings } from './provider-settings.js';

/** What a provider dance is for: signing in (the callback finds or creates the user), or linking to a signed-in user. */
export type OidcPurpose = 'login' | 'link';

/** `GET …/authorize`'s input, checked by the route. */
export interface AuthorizeRequest {
  provider: string;
  redirectTo: string;
  /** The app's PKCE challenge (S256): the one-time code is redeemed with its verifier. */
  codeChallenge: string;
  purpose: OidcPurpose;
  /** The signed-in user, for `link`. */
  userId?: string;
}

/** What discovery found for a provider. */
export interface ProviderEndpoints {
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  jwksUri: string;
  userinfoEndpoint: string | undefined;
  /** The redirect URI to register at the provider: `<publicUrl>/v1/auth/oidc/<id>/callback`. */
  redirectUri: string;
}

/**
 * The relying-party side of sign-in through OpenID Connect providers (README "Sign in with Google
 * and other providers"): discovery, the sealed flow state, the callback, the one-time code and
 * the native ID-token sign-in. Built on openid-client.
 */
export class OidcFlows {
  /** The configured providers, presets applied. */
  providers(): ProviderSettings[] {
    throw new Error('not implemented');
  }

  /**
   * The provider's discovery document as the relying party uses it (`authctl providers check`):
   * `provider_unavailable` when it does not answer in time, `provider_error` when its answer is not
   * an OpenID Provider's for the configured issuer.
   */
  discover(provider: string): Promise<ProviderEndpoints> {
    void provider;
    throw new Error('not implemented');
  }

  /** The provider's authorization URL to send the browser to. */
  authorize(request: AuthorizeRequest): Promise<URL> {
    void request;
    throw new Error('not implemented');
  }

  /** The provider's callback: where to send the browser (the app's `redirect_to` with a code or an error). */
  callback(provider: string, query: URLSearchParams, meta: ClientMeta): Promise<URL> {
    void provider, query, meta;
    throw new Error('not implemented');
  }

  /** `POST /v1/auth/oidc/token`: a login's one-time code and the app's verifier → the login's first step's end. */
  exchange(code: unknown, codeVerifier: unknown, meta: ClientMeta): Promise<SignInResult> {
    void code, codeVerifier, meta;
    throw new Error('not implemented');
  }

  /** A link's one-time code, redeemed by the user who started it: the provider account to link. */
  redeemLink(code: unknown, codeVerifier: unknown, userId: string): Promise<ProviderIdentity> {
    void code, codeVerifier, userId;
    throw new Error('not implemented');
  }

  /** `POST /v1/auth/oidc/{provider}/id-token`: a native app's ID token and the nonce it asked for. */
  signInWithIdToken(provider: string, idToken: unknown, nonce: unknown, meta: ClientMeta): Promise<SignInResult> {
    void provider, idToken, nonce, meta;
    throw new Error('not implemented');
  }
}
