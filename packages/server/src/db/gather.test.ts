import { describe, expect, it } from 'vitest';
import { type Gather, gathered } from './gather.ts';
import type { Tx } from './pool.ts';

/** The gathering on its own: which requests share a read (the read itself is a stand-in). */
function recorder(fail_on?: number) {
  const reads: number[][] = [];
  const kind: Gather<number, string> = {
    async read(_tx, items) {
      reads.push([...items]);
      if (items.includes(fail_on ?? Number.NaN)) throw new Error('read failed');
      return items.map((i) => `row ${i}`);
    },
  };
  return { reads, kind };
}

describe('gathered reads', () => {
  it('requests made in one burst of promise callbacks share one read, each getting its own result', async () => {
    const { reads, kind } = recorder();
    const tx = {} as Tx;
    const results = await Promise.all(
      [1, 2, 3].map(async (i) => {
        await Promise.resolve(); // each "phase" reaches its read in a callback of its own
        return gathered(tx, kind, i);
      }),
    );
    expect(results).toEqual(['row 1', 'row 2', 'row 3']);
    expect(reads).toEqual([[1, 2, 3]]);
    // A later burst is a read of its own; another transaction's requests never join this one's.
    const other = {} as Tx;
    expect(await Promise.all([gathered(tx, kind, 4), gathered(other, kind, 5)])).toEqual(['row 4', 'row 5']);
    expect(reads).toEqual([[1, 2, 3], [4], [5]]);
  });

  it('a failed read fails every request it held', async () => {
    const { kind } = recorder(2);
    const tx = {} as Tx;
    const settled = await Promise.allSettled([1, 2, 3].map((i) => gathered(tx, kind, i)));
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
  });
});
