import { expect } from 'chai';
import { Batcher } from '../../src/store/pg/batcher.js';

interface Item {
  key: string;
  value: number;
}

/** A run function whose batches the test releases by hand, recording what each batch held. */
function controlledRun() {
  const batches: Item[][] = [];
  const releases: Array<(fail?: Error) => void> = [];
  const run = (items: Item[]) =>
    new Promise<number[]>((resolve, reject) => {
      batches.push(items);
      releases.push((fail) => (fail ? reject(fail) : resolve(items.map((i) => i.value * 10))));
    });
  return { batches, releases, run };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('Batcher (group commit)', function () {
  it('sends the first item alone, then everything that queued meanwhile as one batch', async function () {
    const { batches, releases, run } = controlledRun();
    const batcher = new Batcher<Item, number>({ maxInFlight: 1, maxBatch: 64, key: (i) => i.key, run });
    const results = [1, 2, 3, 4].map((value) => batcher.submit({ key: `k${value}`, value }));
    await tick();
    expect(batches.map((b) => b.map((i) => i.value))).to.deep.equal([[1]]);
    releases[0]!();
    await tick();
    expect(batches.map((b) => b.map((i) => i.value))).to.deep.equal([[1], [2, 3, 4]]);
    releases[1]!();
    expect(await Promise.all(results)).to.deep.equal([10, 20, 30, 40]);
  });

  it('never puts two items with the same key in one batch', async function () {
    const { batches, releases, run } = controlledRun();
    const batcher = new Batcher<Item, number>({ maxInFlight: 1, maxBatch: 64, key: (i) => i.key, run });
    const results = [
      batcher.submit({ key: 'a', value: 1 }),
      batcher.submit({ key: 'a', value: 2 }),
      batcher.submit({ key: 'b', value: 3 }),
      batcher.submit({ key: 'a', value: 4 }),
    ];
    for (let i = 0; i < 3; i++) {
      await tick();
      releases[i]?.();
    }
    await Promise.all(results);
    expect(batches.map((b) => b.map((i) => i.value))).to.deep.equal([[1], [2, 3], [4]]);
  });

  it('respects maxInFlight and maxBatch', async function () {
    const { batches, releases, run } = controlledRun();
    const batcher = new Batcher<Item, number>({ maxInFlight: 2, maxBatch: 3, key: (i) => i.key, run });
    const results = Array.from({ length: 10 }, (_, value) => batcher.submit({ key: `k${value}`, value }));
    await tick();
    // Two go out at once (one each), the remaining eight wait for a free slot.
    expect(batches.map((b) => b.length)).to.deep.equal([1, 1]);
    releases[0]!();
    await tick();
    expect(batches.map((b) => b.length)).to.deep.equal([1, 1, 3]);
    for (let i = 1; i < 6; i++) {
      releases[i]?.();
      await tick();
    }
    expect(await Promise.all(results)).to.deep.equal(Array.from({ length: 10 }, (_, v) => v * 10));
    expect(batches.every((b) => b.length <= 3)).to.equal(true);
  });

  it('fails every item of a failed batch and nothing else, then keeps going', async function () {
    const { releases, run } = controlledRun();
    const batcher = new Batcher<Item, number>({ maxInFlight: 1, maxBatch: 64, key: (i) => i.key, run });
    const first = batcher.submit({ key: 'a', value: 1 });
    const second = [batcher.submit({ key: 'b', value: 2 }), batcher.submit({ key: 'c', value: 3 })];
    await tick();
    releases[0]!();
    await tick();
    releases[1]!(new Error('database went away'));
    expect(await first).to.equal(10);
    for (const p of second) {
      const outcome = await p.then(
        () => 'resolved',
        (err: Error) => err.message,
      );
      expect(outcome).to.equal('database went away');
    }
    const third = batcher.submit({ key: 'd', value: 4 });
    await tick();
    releases[2]!();
    expect(await third).to.equal(40);
  });
});
