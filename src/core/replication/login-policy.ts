import { AppError } from '../../platform/errors.js';
import type { PeerRegistry } from './peers.js';

export interface LoginPolicyOptions {
  region: string;
  /** `regions.loginPolicy`: `home` sends users homed in another region there; `any` lets travellers in. */
  policy: 'any' | 'home';
  peers: Pick<PeerRegistry, 'find'>;
}

/** Where a user may sign in (`regions.loginPolicy`). */
export class LoginPolicy {
  constructor(private readonly opts: LoginPolicyOptions) {}

  /** With `home`: refuses a login that belongs to a known other region (421 `wrong_region`, with where to go). */
  assertHome(homeRegion: string): void {
    if (this.opts.policy !== 'home' || homeRegion === this.opts.region) return;
    const peer = this.opts.peers.find(homeRegion);
    if (!peer) return;
    throw new AppError('wrong_region', `this account signs in at region ${homeRegion}`, {
      extensions: { region: homeRegion, location: new URL('/v1/auth/login', peer.url).toString() },
    });
  }
}
