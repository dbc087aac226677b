// mapLimit: what read-plan.ts plans a query's files with, so a query over thousands of files keeps
// a bounded number of index descriptors open while their reads overlap.
import { describe, expect, it } from 'vitest';
import { mapLimit } from '../daemon/src/util/map-limit.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('mapLimit', () => {
  it('keeps at most `limit` calls in flight, overlaps them, and returns results in list order', async () => {
    let inFlight = 0;
    let most = 0;
    const items = Array.from({ length: 50 }, (_, i) => i);
    const out = await mapLimit(items, 8, async (i) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await tick((i * 7) % 5); // finish out of order
      inFlight--;
      return i * 2;
    });
    expect(out).toEqual(items.map((i) => i * 2));
    expect(most).toBe(8);
  });

  it('handles an empty list and a limit above the list', async () => {
    expect(await mapLimit([], 8, async (x: number) => x)).toEqual([]);
    expect(await mapLimit([1, 2], 8, async (x) => x + 1)).toEqual([2, 3]);
  });

  it('rejects with the first error', async () => {
    await expect(mapLimit([1, 2, 3], 2, async (x) => {
      if (x === 2) throw new Error('boom');
      return x;
    })).rejects.toThrow('boom');
  });
});
