import { expect } from 'chai';
import fc from 'fast-check';
import type { ReplicatedChallenge, ReplicatedPasskey, ReplicatedSession, ReplicatedUser } from '../../src/model/replication.js';
import {
  becameRevoked,
  clashName,
  clientWins,
  cutOffRevokes,
  cutoffAdvances,
  emailClashName,
  foldSessions,
  keepsFirstCreated,
  keepsUsername,
  mergeChallenge,
  mergePasskey,
  mergeSession,
  resolveClash,
  resolveEmailClash,
  userWins,
  type ClashRank,
  type EmailClashSide,
  type SessionFold,
} from '../../src/core/replication/merge.js';
import { normalizeUsername } from '../../src/core/users/username.js';

const T0 = Date.UTC(2030, 0, 1);
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const SID = '01900000-0000-7000-8000-000000000001';

function session(overrides: Partial<ReplicatedSession> = {}): ReplicatedSession {
  return {
    id: SID,
    userId: '01900000-0000-7000-8000-00000000000a',
    homeRegion: 'eu',
    counter: 1,
    createdAt: at(0),
    lastUsedAt: at(0),
    rotatedAt: at(0),
    expiresAt: at(86_400),
    revokedAt: null,
    revokeReason: null,
    userAgent: null,
    ip: null,
    authTime: at(0),
    amr: ['pwd'],
    idp: null,
    passkeyId: null,
    version: 1,
    ...overrides,
  };
}

function user(overrides: Partial<ReplicatedUser> = {}): ReplicatedUser {
  return {
    id: '01900000-0000-7000-8000-00000000000a',
    username: 'alice',
    email: null,
    emailVerifiedAt: null,
    passwordHash: 'hash',
    status: 'active',
    homeRegion: 'eu',
    createdAt: at(0),
    updatedAt: at(0),
    passwordChangedAt: at(0),
    sessionsRevokedBefore: null,
    sessionsRevokedKeep: null,
    version: 1,
    ...overrides,
  };
}

function challenge(overrides: Partial<ReplicatedChallenge> = {}): ReplicatedChallenge {
  return {
    id: '01900000-0000-7000-8000-0000000000c1',
    userId: '01900000-0000-7000-8000-00000000000a',
    purpose: 'reset',
    email: 'alice@example.com',
    homeRegion: 'eu',
    createdAt: at(0),
    expiresAt: at(1_800),
    attempts: 0,
    endedAt: null,
    endReason: null,
    version: 1,
    ...overrides,
  };
}

/** Folds challenge states in order into a first one, by the rule the apply uses. */
function foldChallenges(first: ReplicatedChallenge, changes: readonly ReplicatedChallenge[]): ReplicatedChallenge {
  return changes.reduce((local, incoming) => mergeChallenge(local, incoming).state, first);
}

/** Applies user changes in order, by the rule the apply uses: the incoming row replaces the current one if it wins. */
function applyUsers(initial: ReplicatedUser | undefined, changes: readonly ReplicatedUser[]): ReplicatedUser | undefined {
  let current = initial;
  for (const change of changes) if (!current || userWins(change, current)) current = change;
  return current;
}

/** The fold's outcome for one session: its final state and whether a fork was seen. */
function finalState(locals: ReplicatedSession[], changes: readonly ReplicatedSession[]): { state: ReplicatedSession | undefined; fold: SessionFold } {
  const fold = foldSessions(new Map(locals.map((s) => [s.id, s])), changes);
  return { state: fold.inserted.get(SID) ?? fold.updated.get(SID), fold };
}

/** A list and a permutation of it. */
function withPermutation<T>(items: fc.Arbitrary<T[]>): fc.Arbitrary<[T[], T[]]> {
  return items.chain((list) => fc.tuple(fc.constant(list), fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length })));
}

/**
 * A session change as a region ships it. The rotation time is a function of the counter (each
 * counter reached once: no fork), and every revocation carries the same time and reason (one
 * region revoked the session, the others learn of it): the conditions under which the fold is
 * claimed to be commutative.
 */
const forkFreeChange = fc
  .record({
    counter: fc.integer({ min: 1, max: 8 }),
    used: fc.integer({ min: 0, max: 1_000 }),
    revoked: fc.boolean(),
    // A reauthentication: each time comes with one amr (one region authenticated the user then).
    auth: fc.integer({ min: 0, max: 3 }),
    version: fc.integer({ min: 1, max: 12 }),
  })
  .map((c) =>
    session({
      counter: c.counter,
      rotatedAt: at(c.counter * 10),
      lastUsedAt: at(c.used),
      revokedAt: c.revoked ? at(5_000) : null,
      revokeReason: c.revoked ? 'logout' : null,
      authTime: at(c.auth * 100),
      amr: c.auth % 2 === 0 ? ['pwd'] : ['pwd', 'otp', 'mfa'],
      version: c.version,
    }),
  );

/** Any session change, forks included (two rotation times for one counter, several revocation times). */
const anyChange = fc
  .record({
    counter: fc.integer({ min: 1, max: 5 }),
    rotated: fc.integer({ min: 0, max: 3 }),
    used: fc.integer({ min: 0, max: 1_000 }),
    revoked: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    version: fc.integer({ min: 1, max: 12 }),
  })
  .map((c) =>
    session({
      counter: c.counter,
      rotatedAt: at(c.counter * 10 + c.rotated),
      lastUsedAt: at(c.used),
      revokedAt: c.revoked === undefined ? null : at(5_000 + c.revoked),
      revokeReason: c.revoked === undefined ? null : (['logout', 'reuse', 'admin', 'replicated'] as const)[c.revoked]!,
      version: c.version,
    }),
  );

describe('replication merge rules', () => {
  describe('users: version wins; equal versions: a disable is never lost, else the later change', () => {
    it('the higher version wins whatever the status or time', () => {
      expect(userWins(user({ version: 3, updatedAt: at(0) }), user({ version: 2, updatedAt: at(99), status: 'disabled' }))).to.equal(true);
      expect(userWins(user({ version: 2, status: 'disabled', updatedAt: at(99) }), user({ version: 3 }))).to.equal(false);
    });

    it('equal versions: a disable wins over a later change elsewhere, in both directions', () => {
      const disabled = user({ version: 4, status: 'disabled', updatedAt: at(1) });
      const laterActive = user({ version: 4, status: 'active', updatedAt: at(60) });
      expect(userWins(disabled, laterActive)).to.equal(true);
      expect(userWins(laterActive, disabled)).to.equal(false);
    });

    it('equal versions and status: the later updatedAt wins; a full tie keeps the local row (a redelivery is a no-op)', () => {
      expect(userWins(user({ version: 2, updatedAt: at(2) }), user({ version: 2, updatedAt: at(1) }))).to.equal(true);
      expect(userWins(user({ version: 2, updatedAt: at(1) }), user({ version: 2, updatedAt: at(2) }))).to.equal(false);
      const same = user({ version: 2, updatedAt: at(1) });
      expect(userWins(same, same)).to.equal(false);
      const otherContent: ReplicatedUser = { ...same, passwordHash: 'other' };
      expect(userWins(otherContent, same)).to.equal(false);
    });

    it('property: any order of the same changes ends with the same user (distinct version, status, time)', () => {
      const versions = fc.uniqueArray(fc.record({ version: fc.integer({ min: 1, max: 4 }), disabled: fc.boolean(), updated: fc.integer({ min: 0, max: 4 }) }), {
        minLength: 1,
        maxLength: 8,
        selector: (v) => `${v.version}/${v.disabled}/${v.updated}`,
      });
      fc.assert(
        fc.property(
          withPermutation(
            versions.map((vs) => vs.map((v) => user({ version: v.version, status: v.disabled ? 'disabled' : 'active', updatedAt: at(v.updated) }))),
          ),
          ([changes, shuffled]) => {
            expect(applyUsers(undefined, shuffled)).to.equal(applyUsers(undefined, changes));
          },
        ),
      );
    });

    it('property: among concurrent edits (one version), a disable is never lost, whatever the order', () => {
      const edits = fc.array(fc.record({ disabled: fc.boolean(), updated: fc.integer({ min: 0, max: 100 }) }), { minLength: 1, maxLength: 8 });
      fc.assert(
        fc.property(
          withPermutation(edits.map((es) => es.map((e) => user({ version: 7, status: e.disabled ? 'disabled' : 'active', updatedAt: at(e.updated) })))),
          ([changes, shuffled]) => {
            const anyDisabled = changes.some((c) => c.status === 'disabled');
            expect(applyUsers(undefined, shuffled)!.status).to.equal(anyDisabled ? 'disabled' : 'active');
          },
        ),
      );
    });

    it('property: applying a change twice is applying it once', () => {
      const anyUser = fc
        .record({ version: fc.integer({ min: 1, max: 4 }), disabled: fc.boolean(), updated: fc.integer({ min: 0, max: 4 }) })
        .map((v) => user({ version: v.version, status: v.disabled ? 'disabled' : 'active', updatedAt: at(v.updated) }));
      fc.assert(
        fc.property(fc.option(anyUser, { nil: undefined }), anyUser, (local, change) => {
          expect(applyUsers(local, [change, change])).to.equal(applyUsers(local, [change]));
        }),
      );
    });
  });

  describe('username clashes: created first, then the lower home region, then the lower id', () => {
    const rank = (created: number, homeRegion: string, id: string): ClashRank & { username: string } => ({
      createdAt: at(created),
      homeRegion,
      id,
      username: 'bob',
    });

    it('ranks by creation, then home region, then id', () => {
      expect(keepsUsername(rank(1, 'us', 'b'), rank(2, 'eu', 'a'))).to.equal(true);
      expect(keepsUsername(rank(2, 'eu', 'a'), rank(1, 'us', 'b'))).to.equal(false);
      expect(keepsUsername(rank(1, 'eu', 'b'), rank(1, 'us', 'a'))).to.equal(true);
      expect(keepsUsername(rank(1, 'us', 'a'), rank(1, 'us', 'b'))).to.equal(true);
      expect(keepsUsername(rank(1, 'us', 'b'), rank(1, 'us', 'a'))).to.equal(false);
    });

    it('renames the loser <name>.<its home region>, within 64 characters', () => {
      expect(clashName('alice', 'eu-west')).to.equal('alice.eu-west');
      const long = 'x'.repeat(64);
      expect(clashName(long, 'us')).to.have.length(64);
      expect(clashName(long, 'us').endsWith('.us')).to.equal(true);
      expect(resolveClash(rank(2, 'us', 'b'), rank(1, 'eu', 'a'))).to.deep.equal({
        incomingWins: false,
        winnerId: 'a',
        loserId: 'b',
        from: 'bob',
        to: 'bob.us',
      });
    });

    it('property: both regions decide alike, whichever of the two users each of them received first', () => {
      const ranks = fc
        .record({ created: fc.integer({ min: 0, max: 3 }), home: fc.constantFrom('eu', 'us', 'ap'), id: fc.constantFrom('a', 'b', 'c', 'd') })
        .map((r) => rank(r.created, r.home, r.id));
      fc.assert(
        fc.property(ranks, ranks, ranks, (a, b, c) => {
          fc.pre(a.id !== b.id);
          // Exactly one of the two keeps the name (a strict total order on distinct users) …
          expect(keepsUsername(a, b)).to.not.equal(keepsUsername(b, a));
          const here = resolveClash(a, b);
          const there = resolveClash(b, a);
          expect([here.winnerId, here.loserId, here.to]).to.deep.equal([there.winnerId, there.loserId, there.to]);
          // … and it is transitive, so three-way clashes settle alike too.
          if (c.id !== a.id && c.id !== b.id && keepsUsername(a, b) && keepsUsername(b, c)) expect(keepsUsername(a, c)).to.equal(true);
        }),
      );
    });
  });

  describe('address clashes: the username ranking decides; the loser loses the address, and gets a username if it has none', () => {
    const side = (created: number, homeRegion: string, id: string, username: string | null, email = 'Bob@Example.com'): EmailClashSide => ({
      createdAt: at(created),
      homeRegion,
      id,
      username,
      email,
    });
    const A = '01900000-0000-7000-8000-0000000000aa';
    const B = '01900000-0000-7000-8000-0000000000bb';

    it('the user created first keeps the address; a loser with a username keeps its username', () => {
      expect(resolveEmailClash(side(2, 'us', B, 'bob2'), side(1, 'eu', A, 'bob1'))).to.deep.equal({
        incomingWins: false,
        winnerId: A,
        loserId: B,
        assignUsername: null,
      });
      expect(resolveEmailClash(side(1, 'us', B, 'bob2'), side(2, 'eu', A, 'bob1'))).to.deep.include({ incomingWins: true, winnerId: B, loserId: A });
      // Created at once: the lower home region, then the lower id.
      expect(resolveEmailClash(side(1, 'us', A, null), side(1, 'eu', B, null)).winnerId).to.equal(B);
      expect(resolveEmailClash(side(1, 'eu', B, null), side(1, 'eu', A, null)).winnerId).to.equal(A);
    });

    it('a loser without a username gets one made from the local part, its id and its home region', () => {
      const outcome = resolveEmailClash(side(2, 'us', B, null, 'Bob.Smith+news@Example.com'), side(1, 'eu', A, 'bob'));
      expect(outcome).to.deep.include({ winnerId: A, loserId: B, assignUsername: 'bob.smithnews-000000bb.us' });
      expect(emailClashName('Bob.Smith+x@example.com', '01900000-0000-7000-8000-0123456789ab', 'eu')).to.equal('bob.smithx-456789ab.eu');
      // Nothing usable left of the local part: "user".
      expect(emailClashName('+++@example.com', A, 'eu')).to.equal('user-000000aa.eu');
      // Letters of any script stay, folded like a username; quotes and the like go.
      expect(emailClashName('Ünïcode!#$%&*=?^`{|}~@example.com', A, 'eu')).to.equal('ünïcode-000000aa.eu');
      // Within 64 characters, whatever the local part and region.
      const long = emailClashName(`${'x'.repeat(64)}@example.com`, A, 'a-rather-long-region-name');
      expect([...long].length).to.be.at.most(64);
      expect(long.endsWith('-000000aa.a-rather-long-region-name')).to.equal(true);
    });

    it('property: the name given is a valid, normalized username, a function of the user alone', () => {
      const local = fc.string({ minLength: 1, maxLength: 64, unit: 'grapheme' }).filter((l) => !l.includes('@'));
      fc.assert(
        fc.property(local, fc.constantFrom('eu', 'us-east', 'ap'), fc.uuid(), (l, region, id) => {
          const name = emailClashName(`${l}@example.com`, id, region);
          expect(normalizeUsername(name)).to.equal(name);
          expect(emailClashName(`${l}@example.com`, id, region)).to.equal(name);
        }),
      );
    });

    it('property: both regions end alike, whichever of the two users each held', () => {
      const sides = fc
        .record({
          created: fc.integer({ min: 0, max: 3 }),
          home: fc.constantFrom('eu', 'us', 'ap'),
          id: fc.constantFrom(A, B, '01900000-0000-7000-8000-0000000000cc'),
          username: fc.option(fc.constantFrom('bob', 'robert'), { nil: null }),
        })
        .map((r) => side(r.created, r.home, r.id, r.username));
      /** The two users' identifiers after a region holding `held` receives `incoming`. */
      const settle = (incoming: EmailClashSide, held: EmailClashSide) => {
        const c = resolveEmailClash(incoming, held);
        const after = (u: EmailClashSide) =>
          u.id === c.loserId ? { id: u.id, email: null, username: u.username ?? c.assignUsername } : { id: u.id, email: u.email, username: u.username };
        return [after(incoming), after(held)].sort((x, y) => x.id.localeCompare(y.id));
      };
      fc.assert(
        fc.property(sides, sides, (x, y) => {
          fc.pre(x.id !== y.id);
          const here = settle(x, y);
          expect(settle(y, x)).to.deep.equal(here);
          // Exactly one keeps the address, and both still have an identifier.
          expect(here.filter((u) => u.email !== null)).to.have.length(1);
          for (const u of here) expect(u.email ?? u.username).to.not.equal(null);
        }),
      );
    });
  });

  describe('e-mail challenges: an ended challenge never comes back to life; wrong tries are the larger count', () => {
    it('an end arrives with its time and reason, and stays against a live state arriving later', () => {
      const ended = mergeChallenge(challenge({ attempts: 1 }), challenge({ endedAt: at(60), endReason: 'used', attempts: 1, version: 3 }));
      expect(ended.changed).to.equal(true);
      expect(ended.state).to.deep.include({ endedAt: at(60), endReason: 'used', version: 3 });
      const revived = mergeChallenge(ended.state, challenge({ attempts: 2, version: 4 }));
      expect(revived.state).to.deep.include({ endedAt: at(60), endReason: 'used', attempts: 2, version: 4 });
      // A second end keeps the first one's time and reason.
      expect(mergeChallenge(ended.state, challenge({ endedAt: at(90), endReason: 'exhausted', version: 9 })).state).to.deep.include({
        endedAt: at(60),
        endReason: 'used',
      });
    });

    it('takes the larger count of wrong tries and the higher version; what the challenge is stays from the local row', () => {
      const local = challenge({ attempts: 3, version: 4 });
      const merged = mergeChallenge(local, challenge({ attempts: 1, version: 6, email: 'other@example.com', expiresAt: at(9_999) }));
      expect(merged.state).to.deep.equal({ ...local, version: 6 });
      expect(mergeChallenge(local, challenge({ attempts: 4, version: 2 })).state).to.deep.include({ attempts: 4, version: 4 });
      // An older state changes nothing.
      expect(mergeChallenge(local, challenge({ attempts: 2, version: 3 }))).to.deep.equal({ state: local, changed: false });
    });

    const anyState = fc
      .record({
        attempts: fc.integer({ min: 0, max: 5 }),
        end: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
        version: fc.integer({ min: 1, max: 9 }),
      })
      .map((c) =>
        challenge({
          attempts: c.attempts,
          endedAt: c.end === undefined ? null : at(100 + c.end),
          endReason: c.end === undefined ? null : (['used', 'replaced', 'exhausted', 'superseded'] as const)[c.end]!,
          version: c.version,
        }),
      );

    it('property: once ended, ended whatever arrives; tries, version and ended-or-not are order-independent', () => {
      fc.assert(
        fc.property(anyState, withPermutation(fc.array(anyState, { minLength: 1, maxLength: 8 })), (first, [changes, shuffled]) => {
          const one = foldChallenges(first, changes);
          const other = foldChallenges(first, shuffled);
          const key = (c: ReplicatedChallenge) => ({ attempts: c.attempts, version: c.version, ended: c.endedAt !== null });
          expect(key(other)).to.deep.equal(key(one));
          expect(one.attempts).to.equal(Math.max(first.attempts, ...changes.map((c) => c.attempts)));
          if (first.endedAt !== null) expect([one.endedAt, one.endReason]).to.deep.equal([first.endedAt, first.endReason]);
          expect(one.endedAt !== null).to.equal([first, ...changes].some((c) => c.endedAt !== null));
        }),
      );
    });

    it('property: applying a change twice is applying it once', () => {
      fc.assert(
        fc.property(anyState, anyState, (local, change) => {
          const once = mergeChallenge(local, change).state;
          expect(mergeChallenge(once, change)).to.deep.equal({ state: once, changed: false });
        }),
      );
    });
  });

  describe('session cut-offs (password change, logout-all)', () => {
    it('a cut-off advances when newer than the local one, or where there was none', () => {
      expect(cutoffAdvances(at(2), at(1))).to.equal(true);
      expect(cutoffAdvances(at(2), null)).to.equal(true);
      expect(cutoffAdvances(at(2), undefined)).to.equal(true);
      expect(cutoffAdvances(at(1), at(1))).to.equal(false);
      expect(cutoffAdvances(at(1), at(2))).to.equal(false);
      expect(cutoffAdvances(null, at(2))).to.equal(false);
    });

    it('revokes a live session created before it, but the kept one, an already revoked one, or one created at or after it', () => {
      const cutoff = { before: at(10), keep: 'kept' };
      expect(cutOffRevokes(session({ createdAt: at(9) }), cutoff)).to.equal(true);
      expect(cutOffRevokes(session({ createdAt: at(10) }), cutoff)).to.equal(false);
      expect(cutOffRevokes(session({ createdAt: at(11) }), cutoff)).to.equal(false);
      expect(cutOffRevokes(session({ id: 'kept', createdAt: at(9) }), cutoff)).to.equal(false);
      expect(cutOffRevokes(session({ createdAt: at(9), revokedAt: at(9) }), cutoff)).to.equal(false);
      expect(cutOffRevokes(session({ createdAt: at(9) }), { before: null, keep: null })).to.equal(false);
    });
  });

  describe('sessions: the higher counter wins with its rotation time; a revocation is never undone', () => {
    it('takes the higher counter with its rotation time, the later use and the higher version', () => {
      const { state, revoked, fork } = mergeSession(
        session({ counter: 2, rotatedAt: at(20), lastUsedAt: at(30), version: 5 }),
        session({ counter: 4, rotatedAt: at(40), lastUsedAt: at(25), version: 3 }),
      );
      expect(state).to.deep.include({ counter: 4, rotatedAt: at(40), lastUsedAt: at(30), version: 5 });
      expect([revoked, fork]).to.deep.equal([false, false]);
    });

    it('an older state changes nothing but the use and version it may bring', () => {
      const local = session({ counter: 5, rotatedAt: at(50), lastUsedAt: at(50), version: 5 });
      expect(mergeSession(local, session({ counter: 3, rotatedAt: at(30), lastUsedAt: at(30), version: 3 })).state).to.deep.equal(local);
    });

    it('a revocation arrives with its time and reason, and stays against a later live state with a higher counter', () => {
      const revoked = mergeSession(session({ counter: 5 }), session({ counter: 6, rotatedAt: at(60), revokedAt: at(61), revokeReason: 'logout', version: 7 }));
      expect(revoked.revoked).to.equal(true);
      expect(revoked.state).to.deep.include({ counter: 6, revokedAt: at(61), revokeReason: 'logout' });
      const later = mergeSession(revoked.state, session({ counter: 8, rotatedAt: at(80), version: 9 }));
      expect(later.revoked).to.equal(false);
      expect(later.state).to.deep.include({ counter: 8, revokedAt: at(61), revokeReason: 'logout', version: 9 });
      // A second revocation keeps the first one's time and reason.
      expect(mergeSession(revoked.state, session({ revokedAt: at(99), revokeReason: 'admin' })).state).to.deep.include({
        revokedAt: at(61),
        revokeReason: 'logout',
      });
    });

    it('keeps the later authentication with its amr, whichever side brings it and whatever the counters', () => {
      const stepUp = { authTime: at(500), amr: ['pwd', 'otp', 'mfa'] as ReplicatedSession['amr'] };
      // A reauthentication here meets a later rotation from a region that had not seen it.
      const here = mergeSession(session({ counter: 2, ...stepUp }), session({ counter: 3, rotatedAt: at(30) }));
      expect(here.state).to.deep.include({ counter: 3, ...stepUp });
      // And the other way round: it arrives at a region that rotated meanwhile.
      const there = mergeSession(session({ counter: 3, rotatedAt: at(30) }), session({ counter: 2, ...stepUp }));
      expect(there.state).to.deep.include({ counter: 3, ...stepUp });
    });

    it('detects a fork: the same counter reached with two rotation times, both live', () => {
      const local = session({ counter: 2, rotatedAt: at(20) });
      expect(mergeSession(local, session({ counter: 2, rotatedAt: at(21) })).fork).to.equal(true);
      // A redelivery of the same rotation is no fork; nor is anything involving a revoked side.
      expect(mergeSession(local, session({ counter: 2, rotatedAt: at(20) })).fork).to.equal(false);
      expect(mergeSession(local, session({ counter: 2, rotatedAt: at(21), revokedAt: at(22) })).fork).to.equal(false);
      expect(mergeSession(session({ counter: 2, rotatedAt: at(20), revokedAt: at(20) }), session({ counter: 2, rotatedAt: at(21) })).fork).to.equal(false);
      expect(mergeSession(local, session({ counter: 3, rotatedAt: at(21) })).fork).to.equal(false);
      const { fold } = finalState([local], [session({ counter: 3, rotatedAt: at(30) }), session({ counter: 3, rotatedAt: at(31) })]);
      expect([...fold.forks]).to.deep.equal([SID]);
    });

    it('folds a session new here as it first comes, later changes of the same batch merged into it', () => {
      const { state, fold } = finalState(
        [],
        [session({ counter: 1 }), session({ counter: 2, rotatedAt: at(20), revokedAt: at(21), revokeReason: 'logout', version: 3 })],
      );
      expect(fold.updated.size).to.equal(0);
      expect(fold.inserted.size).to.equal(1);
      expect(state).to.deep.include({ counter: 2, revokedAt: at(21), revokeReason: 'logout', version: 3 });
      // Logged out right after login, before either change shipped: it must be published as revoked.
      expect(becameRevoked(undefined, state!)).to.equal(true);
    });

    it('reports a session as newly revoked when it went from live or unknown to revoked, never when it was revoked already', () => {
      const live = session();
      const revoked = session({ revokedAt: at(1), revokeReason: 'logout' });
      expect(becameRevoked(undefined, revoked)).to.equal(true);
      expect(becameRevoked(live, revoked)).to.equal(true);
      expect(becameRevoked(revoked, revoked)).to.equal(false);
      expect(becameRevoked(undefined, live)).to.equal(false);
      expect(becameRevoked(live, live)).to.equal(false);
    });

    it('property: without forks, any order of the same changes converges to the same state', () => {
      fc.assert(
        fc.property(
          fc.option(forkFreeChange, { nil: undefined }),
          withPermutation(fc.array(forkFreeChange, { minLength: 1, maxLength: 10 })),
          (local, [changes, shuffled]) => {
            const locals = local ? [local] : [];
            const one = finalState(locals, changes);
            const other = finalState(locals, shuffled);
            expect(other.state).to.deep.equal(one.state);
            expect(one.fold.forks.size + other.fold.forks.size).to.equal(0);
          },
        ),
      );
    });

    it('property: with forks too, counter, last use, version and revoked-or-not are order-independent', () => {
      fc.assert(
        fc.property(
          fc.option(anyChange, { nil: undefined }),
          withPermutation(fc.array(anyChange, { minLength: 1, maxLength: 10 })),
          (local, [changes, shuffled]) => {
            const locals = local ? [local] : [];
            const key = (s: ReplicatedSession | undefined) =>
              s && { counter: s.counter, lastUsedAt: s.lastUsedAt, version: s.version, revoked: s.revokedAt !== null };
            expect(key(finalState(locals, shuffled).state)).to.deep.equal(key(finalState(locals, changes).state));
          },
        ),
      );
    });

    it('property: a revocation is never undone, by any later change', () => {
      fc.assert(
        fc.property(anyChange, fc.array(anyChange, { maxLength: 10 }), (local, changes) => {
          const revoked = { ...local, revokedAt: at(4_000), revokeReason: 'logout' };
          const { state } = finalState([revoked], changes);
          expect(state?.revokedAt ?? revoked.revokedAt).to.deep.equal(at(4_000));
          // And once any change of a batch revokes it, the batch's end state is revoked.
          const all = [...changes, { ...local, revokedAt: at(4_001) }, ...changes];
          expect(finalState([], all).state!.revokedAt).to.not.equal(null);
        }),
      );
    });

    it('property: applying a change, or a whole batch, twice is applying it once', () => {
      fc.assert(
        fc.property(anyChange, anyChange, (local, change) => {
          const once = mergeSession(local, change).state;
          expect(mergeSession(once, change).state).to.deep.equal(once);
        }),
      );
      fc.assert(
        fc.property(fc.option(anyChange, { nil: undefined }), fc.array(anyChange, { minLength: 1, maxLength: 10 }), (local, changes) => {
          const locals = local ? [local] : [];
          const once = finalState(locals, changes);
          const twice = finalState(locals, [...changes, ...changes]);
          expect(twice.state).to.deep.equal(once.state);
          expect([...twice.fold.forks]).to.deep.equal([...once.fold.forks]);
        }),
      );
    });
  });
});

describe('replication merge rules: service clients', () => {
  const version = fc.record({
    version: fc.integer({ min: 1, max: 5 }),
    updatedAt: fc.integer({ min: 0, max: 3 }).map(at),
    secretHash: fc.constantFrom('AAA', 'BBB', 'CCC'),
  });

  it('the higher version wins, then the later update, then the greater hash', () => {
    expect(clientWins({ version: 3, updatedAt: at(0), secretHash: 'A' }, { version: 2, updatedAt: at(9), secretHash: 'Z' })).to.equal(true);
    expect(clientWins({ version: 2, updatedAt: at(1), secretHash: 'A' }, { version: 2, updatedAt: at(0), secretHash: 'Z' })).to.equal(true);
    expect(clientWins({ version: 2, updatedAt: at(0), secretHash: 'Z' }, { version: 2, updatedAt: at(0), secretHash: 'A' })).to.equal(true);
    expect(clientWins({ version: 2, updatedAt: at(0), secretHash: 'A' }, { version: 2, updatedAt: at(0), secretHash: 'A' })).to.equal(false);
  });

  it('is a strict order: of two different versions exactly one wins, so every region keeps the same one', () => {
    fc.assert(
      fc.property(version, version, (x, y) => {
        const same = x.version === y.version && x.updatedAt.getTime() === y.updatedAt.getTime() && x.secretHash === y.secretHash;
        const wins = [clientWins(x, y), clientWins(y, x)].filter(Boolean).length;
        expect(wins).to.equal(same ? 0 : 1);
      }),
    );
  });
});

describe('replication merge rules: passkeys', () => {
  function passkey(overrides: Partial<ReplicatedPasskey> = {}): ReplicatedPasskey {
    return {
      id: '01900000-0000-7000-8000-0000000000f1',
      userId: '01900000-0000-7000-8000-00000000000a',
      credentialId: 'Y3JlZGVudGlhbA',
      publicKey: 'pQECAyYgASFYIA',
      counter: 1,
      transports: ['internal', 'hybrid'],
      aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd',
      backupEligible: true,
      backedUp: false,
      name: 'Laptop',
      homeRegion: 'eu',
      createdAt: at(0),
      updatedAt: at(0),
      lastUsedAt: null,
      removedAt: null,
      version: 1,
      ...overrides,
    };
  }
  const fold = (first: ReplicatedPasskey, changes: readonly ReplicatedPasskey[]) =>
    changes.reduce((local, incoming) => mergePasskey(local, incoming).state, first);

  it('takes the higher counter, and the later use with the backup state it reported, whichever side brings them', () => {
    const local = passkey({ counter: 5, lastUsedAt: at(10), backedUp: false, version: 3 });
    const merged = mergePasskey(local, passkey({ counter: 9, lastUsedAt: at(20), backedUp: true, version: 4 }));
    expect(merged.changed).to.equal(true);
    expect(merged.state).to.deep.include({ counter: 9, lastUsedAt: at(20), backedUp: true, version: 4 });
    // An older use (a region that had not seen the newer one) moves nothing back.
    const older = mergePasskey(merged.state, passkey({ counter: 6, lastUsedAt: at(15), backedUp: false, version: 4 }));
    expect(older).to.deep.equal({ state: merged.state, changed: false });
    // A later use with a lower counter (another region accepted it before this counter arrived there):
    // the use and its backup state count, the counter stays the higher one.
    expect(mergePasskey(merged.state, passkey({ counter: 7, lastUsedAt: at(30), backedUp: false, version: 5 })).state).to.deep.include({
      counter: 9,
      lastUsedAt: at(30),
      backedUp: false,
      version: 5,
    });
    // A first use arriving at a passkey never used here.
    expect(mergePasskey(passkey(), passkey({ counter: 2, lastUsedAt: at(5), backedUp: true })).state).to.deep.include({
      counter: 2,
      lastUsedAt: at(5),
      backedUp: true,
    });
    expect(mergePasskey(passkey({ lastUsedAt: at(5) }), passkey()).state.lastUsedAt).to.deep.equal(at(5));
  });

  it('takes the name of the later update, then of the higher version, then the greater name; an identical state changes nothing', () => {
    const local = passkey({ name: 'Laptop', updatedAt: at(10), version: 3 });
    expect(mergePasskey(local, passkey({ name: 'Work laptop', updatedAt: at(20), version: 2 })).state).to.deep.include({
      name: 'Work laptop',
      updatedAt: at(20),
      version: 3,
    });
    expect(mergePasskey(local, passkey({ name: 'Old name', updatedAt: at(5), version: 9 })).state).to.deep.include({
      name: 'Laptop',
      updatedAt: at(10),
      version: 9,
    });
    expect(mergePasskey(local, passkey({ name: 'Higher', updatedAt: at(10), version: 4 })).state.name).to.equal('Higher');
    expect(mergePasskey(local, passkey({ name: 'Desk', updatedAt: at(10), version: 3 }))).to.deep.equal({ state: local, changed: false });
    expect(mergePasskey(local, passkey({ name: 'Newer', updatedAt: at(10), version: 3 })).state.name).to.equal('Newer');
    expect(mergePasskey(local, { ...local })).to.deep.equal({ state: local, changed: false });
  });

  it('a removal arrives with its time and stays against any live state arriving later; the first removal applied stays', () => {
    const removed = mergePasskey(passkey({ counter: 4 }), passkey({ removedAt: at(60), updatedAt: at(60), version: 2 })).state;
    expect(removed).to.deep.include({ removedAt: at(60), counter: 4, version: 2 });
    const revived = mergePasskey(removed, passkey({ counter: 8, lastUsedAt: at(90), name: 'Renamed', updatedAt: at(90), version: 5 })).state;
    expect(revived).to.deep.include({ removedAt: at(60), counter: 8, version: 5 });
    expect(mergePasskey(removed, passkey({ removedAt: at(120), version: 3 })).state.removedAt).to.deep.equal(at(60));
  });

  it('what the passkey is (user, credential, key, AAGUID, backup eligibility, creation, home region, transports) stays from the local row', () => {
    const local = passkey({ counter: 3, version: 2 });
    const other = passkey({
      userId: '01900000-0000-7000-8000-00000000000b',
      credentialId: 'b3RoZXI',
      publicKey: 'b3RoZXIga2V5',
      aaguid: '00000000-0000-0000-0000-000000000000',
      backupEligible: false,
      createdAt: at(99),
      homeRegion: 'us',
      transports: ['usb'],
      counter: 1,
      version: 1,
    });
    expect(mergePasskey(local, other)).to.deep.equal({ state: local, changed: false });
  });

  /**
   * A passkey state as a region ships it: each update time comes with one name, and each use time
   * with one backup state (one region made each write); a removal is the one every region learns
   * of. The conditions under which the fold is claimed to be order-independent.
   */
  const anyState = fc
    .record({
      counter: fc.integer({ min: 0, max: 6 }),
      used: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
      updated: fc.integer({ min: 0, max: 3 }),
      removed: fc.boolean(),
      version: fc.integer({ min: 1, max: 6 }),
    })
    .map((c) =>
      passkey({
        counter: c.counter,
        lastUsedAt: c.used === undefined ? null : at(100 + c.used),
        backedUp: c.used !== undefined && c.used % 2 === 1,
        name: `name-${c.updated}`,
        updatedAt: at(c.updated),
        removedAt: c.removed ? at(500) : null,
        version: c.version,
      }),
    );

  it('property: any order of the same changes ends with the same passkey, the highest counter and the latest use', () => {
    fc.assert(
      fc.property(anyState, withPermutation(fc.array(anyState, { minLength: 1, maxLength: 8 })), (first, [changes, shuffled]) => {
        const one = fold(first, changes);
        expect(fold(first, shuffled)).to.deep.equal(one);
        const all = [first, ...changes];
        expect(one.counter).to.equal(Math.max(...all.map((c) => c.counter)));
        expect(one.version).to.equal(Math.max(...all.map((c) => c.version)));
        expect(one.removedAt !== null).to.equal(all.some((c) => c.removedAt !== null));
        const uses = all.flatMap((c) => (c.lastUsedAt ? [c.lastUsedAt.getTime()] : []));
        expect(one.lastUsedAt?.getTime() ?? null).to.equal(uses.length > 0 ? Math.max(...uses) : null);
      }),
    );
  });

  it('property: two regions renaming at the same time, from any versions, agree on the name', () => {
    const rename = fc.record({ name: fc.constantFrom('A', 'B', 'C'), updated: fc.integer({ min: 0, max: 2 }), version: fc.integer({ min: 1, max: 3 }) });
    fc.assert(
      fc.property(rename, rename, (x, y) => {
        const [p, q] = [
          passkey({ name: x.name, updatedAt: at(x.updated), version: x.version }),
          passkey({ name: y.name, updatedAt: at(y.updated), version: y.version }),
        ];
        expect(mergePasskey(p, q).state.name).to.equal(mergePasskey(q, p).state.name);
      }),
    );
  });

  it('property: a removal is never undone, and applying a change twice is applying it once', () => {
    fc.assert(
      fc.property(anyState, fc.array(anyState, { maxLength: 6 }), anyState, (first, changes, change) => {
        const removedAt = at(42);
        expect(fold({ ...first, removedAt }, changes).removedAt).to.deep.equal(removedAt);
        const once = mergePasskey(first, change).state;
        expect(mergePasskey(once, change)).to.deep.equal({ state: once, changed: false });
      }),
    );
  });

  it('one credential live twice: the passkey created first stays, then the lower id, the same whichever each region held', () => {
    const a = { id: '01900000-0000-7000-8000-000000000001', createdAt: at(0) };
    const b = { id: '01900000-0000-7000-8000-000000000002', createdAt: at(0) };
    expect(keepsFirstCreated(a, b)).to.equal(true);
    expect(keepsFirstCreated(b, a)).to.equal(false);
    expect(keepsFirstCreated({ ...b, createdAt: at(-1) }, a)).to.equal(true);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), (x, y) => {
        const [p, q] = [
          { ...a, createdAt: at(x) },
          { ...b, createdAt: at(y) },
        ];
        expect(keepsFirstCreated(p, q)).to.equal(!keepsFirstCreated(q, p));
      }),
    );
  });
});
