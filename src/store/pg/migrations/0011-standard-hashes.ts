import type { Knex } from 'knex';

/**
 * Password hashes as standard PHC strings (README "Secrets and keys"). The argon2 package writes
 * the parameters as `m=…,p=…,t=…`; the PHC string format, and libargon2's own decoder, libsodium,
 * argon2-cffi, Symfony and Spring Security, want `m=…,t=…,p=…`. New hashes are written in the
 * standard order (src/core/users/password-hasher.ts `standardPhc`); this rewrites the stored ones.
 * Reordering changes neither salt nor digest, so nothing else changes: not `version`, not
 * `updated_at`, and nothing is shipped to the peers (`authctl.applying`, as a replication apply):
 * each region rewrites its own rows when it migrates, and a row in the old order that still
 * arrives from a peer verifies as before and is rewritten at its user's next login.
 */
export async function up(knex: Knex): Promise<void> {
  // (No "?" in this SQL: knex.raw reads one as a binding.)
  await knex.raw(`set local authctl.applying = 'on'`);
  await knex.raw(
    String.raw`update users
       set password_hash = regexp_replace(password_hash, '^\$(argon2id|argon2i|argon2d)\$v=(\d+)\$m=(\d+),p=(\d+),t=(\d+)\$', '$\1$v=\2$m=\3,t=\5,p=\4$')
     where password_hash ~ '^\$argon2(id|i|d)\$v=\d+\$m=\d+,p=\d+,t=\d+\$'`,
  );
  await knex.raw(`set local authctl.applying = 'off'`);
}

/** Nothing to undo: the package that reads these hashes verifies either order. */
export async function down(): Promise<void> {}
