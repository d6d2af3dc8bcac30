import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { decodeBatch, encodeBatch, type OutgoingChange } from '../../src/core/replication/wire.js';
import { AppError } from '../../src/platform/errors.js';

/** Rows spelled as PostgreSQL's `to_jsonb` writes them, as every version of authctl has shipped them. */
const USER = {
  id: '0190f3c2-7a1b-7c3d-8e4f-a1b2c3d4e5f6',
  username: 'alice',
  password_hash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA',
  status: 'active',
  home_region: 'eu',
  created_at: '2030-01-01T10:00:00.123456+00:00',
  updated_at: '2030-01-02T10:00:00.5+00:00',
  password_changed_at: '2030-01-01T10:00:00+00:00',
  sessions_revoked_before: null,
  sessions_revoked_keep: null,
  version: 3,
};
const SESSION = {
  id: '0190f3c2-7a1b-7c3d-8e4f-000000000001',
  user_id: USER.id,
  home_region: 'eu',
  counter: 7,
  created_at: '2030-01-01T10:00:00.123+00:00',
  last_used_at: '2030-01-01T11:00:00.123+00:00',
  rotated_at: '2030-01-01T11:00:00.123+00:00',
  expires_at: '2030-01-31T10:00:00.123+00:00',
  revoked_at: null,
  revoke_reason: null,
  user_agent: null,
  ip: '192.0.2.7',
  auth_time: '2030-01-01T10:30:00.5+00:00',
  // `sc` (RFC 8176's smart card): a method a later version might record, unknown here.
  amr: ['fed', 'otp', 'sc', 'mfa'],
  idp: 'google',
  // A provider's first step, a passkey its second.
  passkey_id: '0190f3c2-7a1b-7c3d-8e4f-0000000000a7',
  version: 8,
};
const CHALLENGE = {
  id: '0190f3c2-7a1b-7c3d-8e4f-0000000000c1',
  user_id: USER.id,
  purpose: 'reset',
  email: 'Alice@example.com',
  home_region: 'eu',
  created_at: '2030-01-01T10:00:00.25+00:00',
  expires_at: '2030-01-01T10:30:00.25+00:00',
  attempts: 2,
  ended_at: null,
  end_reason: null,
  version: 3,
};
const KEY = {
  kid: 'kid-1',
  alg: 'EdDSA',
  public_jwk: { kty: 'OKP', crv: 'Ed25519', x: 'abc' },
  home_region: 'eu',
  created_at: '2030-01-01T10:00:00+00:00',
  activates_at: '2030-01-01T10:05:00+00:00',
  retires_at: null,
  version: 1,
};
const PASSKEY = {
  id: '0190f3c2-7a1b-7c3d-8e4f-0000000000f1',
  user_id: USER.id,
  credential_id: 'nD3dV6cD0ZQ0X1n9M4bY_w',
  public_key: 'pQECAyYgASFYIMq3xOJUpCnqyxR3JzCAf_l1S4f1n4PHmhL8Lk8ozvlj',
  counter: 12,
  // A text[] column, as to_jsonb writes it.
  transports: ['internal', 'hybrid'],
  aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd',
  backup_eligible: true,
  backed_up: true,
  name: 'MacBook',
  home_region: 'eu',
  created_at: '2030-01-01T10:00:00.123456+00:00',
  updated_at: '2030-01-02T10:00:00+00:00',
  last_used_at: '2030-01-03T10:00:00.5+00:00',
  removed_at: null,
  version: 4,
};

const body = (batch: unknown) => Buffer.from(JSON.stringify(batch));
const malformed = (batch: unknown) => {
  try {
    decodeBatch(body(batch));
  } catch (err) {
    return err instanceof AppError ? err.code : err;
  }
  return 'accepted';
};

describe('replication wire format', () => {
  it('encodes a batch exactly as earlier versions did: the captured rows as they are, named by their content', () => {
    const changes: OutgoingChange[] = [
      { entity: 'users', payload: USER },
      { entity: 'sessions', payload: SESSION },
    ];
    const { batchId, body: text } = encodeBatch('eu', changes);
    expect(batchId).to.equal(
      createHash('sha256')
        .update(`eu\n${JSON.stringify(changes)}`)
        .digest('base64url'),
    );
    expect(text).to.equal(JSON.stringify({ origin: 'eu', batchId, changes }));
    expect(encodeBatch('eu', changes).batchId, 'the same on redelivery').to.equal(batchId);
    expect(encodeBatch('us', changes).batchId, "never another region's").to.not.equal(batchId);
  });

  it('decodes every entity into typed records', () => {
    const batch = decodeBatch(
      body({
        origin: 'eu',
        batchId: 'b1',
        changes: [
          { entity: 'users', payload: USER },
          { entity: 'users_deleted', payload: { id: USER.id } },
          { entity: 'sessions', payload: SESSION },
          { entity: 'signing_keys', payload: KEY },
          { entity: 'email_challenges', payload: CHALLENGE },
        ],
      }),
    );
    expect(batch).to.deep.equal({
      origin: 'eu',
      batchId: 'b1',
      changes: [
        {
          entity: 'users',
          payload: {
            id: USER.id,
            username: 'alice',
            email: null,
            emailVerifiedAt: null,
            passwordHash: USER.password_hash,
            status: 'active',
            homeRegion: 'eu',
            createdAt: new Date('2030-01-01T10:00:00.123Z'),
            updatedAt: new Date('2030-01-02T10:00:00.500Z'),
            passwordChangedAt: new Date('2030-01-01T10:00:00Z'),
            sessionsRevokedBefore: null,
            sessionsRevokedKeep: null,
            version: 3,
          },
        },
        { entity: 'users_deleted', payload: { id: USER.id } },
        {
          entity: 'sessions',
          payload: {
            id: SESSION.id,
            userId: USER.id,
            homeRegion: 'eu',
            counter: 7,
            createdAt: new Date('2030-01-01T10:00:00.123Z'),
            lastUsedAt: new Date('2030-01-01T11:00:00.123Z'),
            rotatedAt: new Date('2030-01-01T11:00:00.123Z'),
            expiresAt: new Date('2030-01-31T10:00:00.123Z'),
            revokedAt: null,
            revokeReason: null,
            userAgent: null,
            ip: '192.0.2.7',
            authTime: new Date('2030-01-01T10:30:00.5Z'),
            amr: ['fed', 'otp', 'mfa'],
            idp: 'google',
            passkeyId: '0190f3c2-7a1b-7c3d-8e4f-0000000000a7',
            version: 8,
          },
        },
        {
          entity: 'signing_keys',
          payload: {
            kid: 'kid-1',
            alg: 'EdDSA',
            publicJwk: KEY.public_jwk,
            homeRegion: 'eu',
            createdAt: new Date('2030-01-01T10:00:00Z'),
            activatesAt: new Date('2030-01-01T10:05:00Z'),
            retiresAt: null,
            version: 1,
          },
        },
        {
          entity: 'email_challenges',
          payload: {
            id: CHALLENGE.id,
            userId: USER.id,
            purpose: 'reset',
            email: 'Alice@example.com',
            homeRegion: 'eu',
            createdAt: new Date('2030-01-01T10:00:00.250Z'),
            expiresAt: new Date('2030-01-01T10:30:00.250Z'),
            attempts: 2,
            endedAt: null,
            endReason: null,
            version: 3,
          },
        },
      ],
    });
  });

  it("decodes a user's address and verification, and a user from a peer before them (no such fields) to nulls", () => {
    const batch = decodeBatch(
      body({
        origin: 'eu',
        batchId: 'b-email',
        changes: [
          { entity: 'users', payload: { ...USER, username: null, email: 'Alice@example.com', email_verified_at: '2030-01-01T10:05:00+00:00' } },
          { entity: 'users', payload: USER },
        ],
      }),
    );
    const [withAddress, older] = batch.changes;
    expect(withAddress!.payload).to.deep.include({ username: null, email: 'Alice@example.com', emailVerifiedAt: new Date('2030-01-01T10:05:00Z') });
    expect(older!.payload).to.deep.include({ username: 'alice', email: null, emailVerifiedAt: null });
  });

  it('decodes an ended challenge, ignoring columns it does not know, with bigints spelled as strings', () => {
    const batch = decodeBatch(
      body({
        origin: 'eu',
        batchId: 'b-challenge',
        changes: [
          {
            entity: 'email_challenges',
            payload: { ...CHALLENGE, attempts: '5', version: '9', ended_at: '2030-01-01T10:07:00+00:00', end_reason: 'exhausted', some_later_column: 'x' },
          },
        ],
      }),
    );
    const [c] = batch.changes;
    expect(c!.entity).to.equal('email_challenges');
    expect(c!.payload).to.deep.include({ attempts: 5, version: 9, endedAt: new Date('2030-01-01T10:07:00Z'), endReason: 'exhausted' });
    expect(c!.payload).to.not.have.property('some_later_column');
    expect(c!.payload).to.not.have.property('user_id');
  });

  it('decodes a sign-in code without a user yet (identity.otpSignup) and an account without a password (0009-second-factors)', () => {
    const batch = decodeBatch(
      body({
        origin: 'eu',
        batchId: 'b-otp',
        changes: [
          { entity: 'email_challenges', payload: { ...CHALLENGE, purpose: 'login', user_id: null } },
          { entity: 'users', payload: { ...USER, username: null, email: 'alice@example.com', password_hash: null } },
        ],
      }),
    );
    const [challenge, user] = batch.changes;
    expect(challenge!.payload).to.deep.include({ purpose: 'login', userId: null });
    expect(user!.payload).to.deep.include({ passwordHash: null, email: 'alice@example.com' });
  });

  it('accepts rows from before the session cut-off, authentication, provider and passkey columns, with columns it does not know, and bigints spelled as strings', () => {
    const { sessions_revoked_before: _before, sessions_revoked_keep: _keep, ...older } = USER;
    const { auth_time: _authTime, amr: _amr, idp: _idp, passkey_id: _passkeyId, ...olderSession } = SESSION;
    const batch = decodeBatch(
      body({
        origin: 'eu',
        batchId: 'b2',
        changes: [
          { entity: 'users', payload: { ...older, some_later_column: 1 } },
          { entity: 'sessions', payload: { ...olderSession, counter: '12', version: '13', revoked_at: '2030-01-01T12:00:00+00:00', revoke_reason: 'logout' } },
        ],
      }),
    );
    const [u, s] = batch.changes;
    expect(u!.payload).to.include({ sessionsRevokedBefore: null, sessionsRevokedKeep: null });
    expect(u!.payload).to.not.have.property('some_later_column');
    expect(s!.payload).to.deep.include({ counter: 12, version: 13, revokedAt: new Date('2030-01-01T12:00:00Z'), revokeReason: 'logout' });
    // A session from a peer that does not record authentications: a password login when it began.
    expect(s!.payload).to.deep.include({ authTime: new Date('2030-01-01T10:00:00.123Z'), amr: ['pwd'], idp: null, passkeyId: null });
  });

  it('decodes a passkey: its transports from a JSON array (dropping one a later version knows), bigints as numbers or strings, timestamps as strings', () => {
    const batch = decodeBatch(
      body({
        origin: 'eu',
        batchId: 'b-passkey',
        changes: [
          { entity: 'passkeys', payload: PASSKEY },
          {
            entity: 'passkeys',
            payload: {
              ...PASSKEY,
              counter: '4294967295',
              version: '9',
              transports: ['usb', 'smoke-signal'],
              last_used_at: null,
              removed_at: '2030-01-04T10:00:00+00:00',
              later: 1,
            },
          },
        ],
      }),
    );
    const [live, removed] = batch.changes;
    expect(live).to.deep.equal({
      entity: 'passkeys',
      payload: {
        id: PASSKEY.id,
        userId: USER.id,
        credentialId: PASSKEY.credential_id,
        publicKey: PASSKEY.public_key,
        counter: 12,
        transports: ['internal', 'hybrid'],
        aaguid: PASSKEY.aaguid,
        backupEligible: true,
        backedUp: true,
        name: 'MacBook',
        homeRegion: 'eu',
        createdAt: new Date('2030-01-01T10:00:00.123Z'),
        updatedAt: new Date('2030-01-02T10:00:00Z'),
        lastUsedAt: new Date('2030-01-03T10:00:00.5Z'),
        removedAt: null,
        version: 4,
      },
    });
    expect(removed!.payload).to.deep.include({
      counter: 4_294_967_295,
      version: 9,
      transports: ['usb'],
      lastUsedAt: null,
      removedAt: new Date('2030-01-04T10:00:00Z'),
    });
    expect(removed!.payload).to.not.have.property('later');
  });

  it('refuses a malformed batch as invalid_request', () => {
    const ok = { origin: 'eu', batchId: 'b3', changes: [{ entity: 'sessions', payload: SESSION }] };
    expect(malformed(ok)).to.equal('accepted');
    expect(malformed({ ...ok, extra: 1 })).to.equal('invalid_request');
    expect(malformed({ ...ok, batchId: '' })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'sessions_deleted', payload: { id: SESSION.id } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'sessions', payload: { ...SESSION, rotated_at: 'yesterday' } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'sessions', payload: { ...SESSION, counter: 1.5 } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'users', payload: { ...USER, status: 'gone' } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'users', payload: USER, extra: true }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'email_challenges', payload: { ...CHALLENGE, purpose: 'magic' } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'email_challenges', payload: { ...CHALLENGE, end_reason: 'forgotten' } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'email_challenges', payload: { ...CHALLENGE, user_id: 7 } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'users', payload: { ...USER, password_hash: 7 } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'passkeys', payload: { ...PASSKEY, transports: '{internal}' } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'passkeys', payload: { ...PASSKEY, counter: 1.5 } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'passkeys', payload: { ...PASSKEY, public_key: null } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'passkeys', payload: { ...PASSKEY, backed_up: 'yes' } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: [{ entity: 'passkeys_deleted', payload: { id: PASSKEY.id } }] })).to.equal('invalid_request');
    expect(malformed({ ...ok, changes: Array.from({ length: 10_001 }, () => ok.changes[0]) })).to.equal('invalid_request');
    let notJson: unknown;
    try {
      decodeBatch(Buffer.from('{"origin":'));
    } catch (err) {
      notJson = (err as AppError).code;
    }
    expect(notJson).to.equal('invalid_request');
  });
});
