import type { Scenario } from '../lib/scenario.js';
import { forgot } from './forgot.js';
import { introspect } from './introspect.js';
import { login } from './login.js';
import { loginMfa } from './login-mfa.js';
import { logout } from './logout.js';
import { passkey } from './passkey.js';
import { refresh } from './refresh.js';
import { register } from './register.js';
import { verify } from './verify.js';

/** Every HTTP scenario, by name; `limits` (bench/limits.ts) is run by bench/run.ts itself. */
export const SCENARIOS: Readonly<Record<string, Scenario>> = { verify, introspect, refresh, login, 'login-mfa': loginMfa, passkey, register, logout, forgot };
