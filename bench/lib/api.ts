/** The few HTTP calls the bench makes outside autocannon: seeding users and sessions. */

export const PASSWORD = 'bench password 0123';

export interface TokenResponse {
  accessToken: string;
  refreshToken: string;
  sessionId: string;
  user: { id: string; username: string };
}

export interface Seeded {
  username: string;
  tokens: TokenResponse;
}

export const JSON_HEADERS = { 'content-type': 'application/json' } as const;

export async function postJson(url: string, body: unknown, token?: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
}

async function expectOk(res: Response, what: string): Promise<unknown> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return text ? (JSON.parse(text) as unknown) : undefined;
}

export async function register(base: string, username: string): Promise<void> {
  await expectOk(await postJson(`${base}/v1/auth/register`, { username, password: PASSWORD }), `register ${username}`);
}

export async function login(base: string, username: string): Promise<TokenResponse> {
  return (await expectOk(await postJson(`${base}/v1/auth/login`, { username, password: PASSWORD }), `login ${username}`)) as TokenResponse;
}

/** Runs `fn` over `items` with at most `concurrency` in flight. */
export async function inParallel<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** Registers `count` users named `<prefix><i>` and logs each in once (argon2 twice per user). */
export async function seedUsers(base: string, prefix: string, count: number, concurrency: number): Promise<Seeded[]> {
  const names = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  await inParallel(names, concurrency, (u) => register(base, u));
  return inParallel(names, concurrency, async (username) => ({ username, tokens: await login(base, username) }));
}
