import { AppError } from '../../platform/errors.js';

/** Longer than this is refused: the URL travels inside the sealed state, which travels in a URL. */
export const REDIRECT_TO_MAX_LENGTH = 1024;

/**
 * `identity.redirectUrls`, the only places a provider sign-in sends the browser back to: an entry
 * is an exact URL, or — ending in `*` — an origin and a path prefix (`https://app.example.com/auth/*`
 * allows `https://app.example.com/auth/done?x=1`). A `redirect_to` is parsed with the WHATWG URL
 * parser and must already be in the form the parser writes: anything the parser would rewrite
 * (dot segments, backslashes, an upper-case host, a default port, encoded dots or slashes) is
 * refused rather than normalized, because the browser resolving such a URL is where open
 * redirects come from. No userinfo, no fragment, http(s) only.
 */
export class RedirectAllowList {
  private readonly exact = new Set<string>();
  private readonly prefixes: Array<{ origin: string; path: string }> = [];

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      if (entry.endsWith('*')) {
        const url = new URL(entry.slice(0, -1));
        this.prefixes.push({ origin: url.origin, path: url.pathname });
      } else {
        this.exact.add(new URL(entry).href);
      }
    }
  }

  /** The allowed URL `raw` names; `redirect_not_allowed` (400) for anything else. */
  check(raw: unknown): URL {
    const url = typeof raw === 'string' ? canonical(raw) : undefined;
    if (!url || !this.allows(url)) {
      throw new AppError('redirect_not_allowed', 'redirect_to is not one of the URLs this server may send the browser back to (identity.redirectUrls)');
    }
    return url;
  }

  private allows(url: URL): boolean {
    if (this.exact.has(url.href)) return true;
    return this.prefixes.some((p) => url.origin === p.origin && url.pathname.startsWith(p.path));
  }
}

/** `raw` as a URL when it is an http(s) URL in the parser's own spelling, with nothing that could redirect elsewhere. */
function canonical(raw: string): URL | undefined {
  if (raw.length === 0 || raw.length > REDIRECT_TO_MAX_LENGTH) return undefined;
  // Control characters, spaces, backslashes and fragments: the parser strips or rewrites them.
  if ([...raw].some((ch) => ch <= ' ' || ch === '\u007f' || ch === '\\' || ch === '#')) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '') return undefined;
  // `https://app.example.com` and `https://app.example.com/` are the same URL; nothing else may differ.
  if (url.href !== raw && !(url.pathname === '/' && url.search === '' && url.href === `${raw}/`)) return undefined;
  // Encoded dots, slashes and backslashes, and empty segments (`//evil`), in the path.
  if (/%2e|%2f|%5c/i.test(url.pathname) || url.pathname.includes('//')) return undefined;
  return url;
}
