import { expect } from 'chai';
import { calibrateArgon2 } from '../../src/core/users/calibrate.js';
import { OWASP_ARGON2_MINIMUM, type Argon2Params } from '../../src/core/users/password-hasher.js';
import { describeRun, expectJson, runCli } from '../cli/run-cli.js';

// A machine model where a hash costs 2 ms per MiB: the search must land on the largest memory
// whose time stays within the target.
const linear = (msPerMiB: number) => (params: Argon2Params) => Promise.resolve((params.memoryCost / 1024) * msPerMiB);

describe('argon2id calibration', function () {
  it('raises memory until a hash takes the target time, within ~5 % below it', async function () {
    const result = await calibrateArgon2({ targetMs: 100, measure: linear(2) });
    // 100 ms at 2 ms/MiB = 50 MiB.
    expect(result.medianMs).to.be.at.most(100);
    expect(result.params.memoryCost).to.be.within(47 * 1024, 50 * 1024);
    expect(result.params.timeCost).to.equal(OWASP_ARGON2_MINIMUM.timeCost);
    expect(result.minimumExceedsTarget).to.equal(false);
    expect(result.trials.every((t) => t.memoryCost >= OWASP_ARGON2_MINIMUM.memoryCost)).to.equal(true);
  });

  it('never goes below the OWASP minimum, and says so when the minimum is already slower than the target', async function () {
    const result = await calibrateArgon2({ targetMs: 10, measure: linear(2) });
    expect(result.params).to.deep.equal({ ...OWASP_ARGON2_MINIMUM });
    expect(result.minimumExceedsTarget).to.equal(true);
    expect(result.trials).to.have.length(1);
  });

  it('stops at the memory cap', async function () {
    const result = await calibrateArgon2({ targetMs: 10_000, maxMemoryKiB: 64 * 1024, measure: linear(1) });
    expect(result.params.memoryCost).to.equal(64 * 1024);
  });

  it('authctl hash calibrate --json times real hashes and prints the config lines', async function () {
    const result = await runCli(['hash', 'calibrate', '--target-ms', '1', '--json']);
    const body = expectJson<{ params: Argon2Params; medianMs: number; minimumExceedsTarget: boolean; env: Record<string, string> }>(result, 0);
    expect(body.minimumExceedsTarget, describeRun(result)).to.equal(true);
    expect(body.params).to.deep.equal({ ...OWASP_ARGON2_MINIMUM });
    expect(body.medianMs).to.be.above(0);
    expect(body.env).to.deep.equal({ AUTHCTL_HASH_MEMORY_COST: '19456', AUTHCTL_HASH_TIME_COST: '2', AUTHCTL_HASH_PARALLELISM: '1' });
  });
});
