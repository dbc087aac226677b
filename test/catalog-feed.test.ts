// The catalog cache is fed from the capture helper's own `file_closed` reports (min_ns, max_ns,
// sorted), so a query never reads a closed file back to learn its span: `capture --read` and the
// daemon (catalog-feed.ts) put every file they close into `.qe-catalog.json`. What they put there
// must be what a walk of the file finds, for files in time order and out of it, written as runs of
// verbatim records or packet by packet.
import { execa } from 'execa';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IDX_H } from '../daemon/src/index/format.js';
import { beforeEach, describe, expect, it } from 'vitest';
import { parseHelperLine, type FileClosedMessage } from '../daemon/src/capture/protocol.js';
import { buildPcap } from '../daemon/src/pcap/format.js';
import { CatalogFeed } from '../daemon/src/store/catalog-feed.js';
import { cachePath, loadCache } from '../daemon/src/store/catalog-cache.js';
import { scanCatalog } from '../daemon/src/store/catalog.js';
import { cli, helperPath, tempDir, writeConfig } from './lib/cli.js';
import { testFrames } from './lib/frames.js';

let dir: string;
let store: string;
const frames = testFrames({ count: 3000, seed: 5 });
const ts0 = 1_764_000_000_000_000_000n;

beforeEach(async () => {
  dir = await tempDir();
  store = join(dir, 'store');
  await mkdir(store);
});

/** Times in order, or with every seventh record 5 ms early (out of order within a file). */
function input(nanos: boolean, shuffled: boolean): Buffer {
  return buildPcap(
    frames.map((data, i) => ({ tsNs: ts0 + BigInt(i) * 1_000_000n - (shuffled && i % 7 === 3 ? 5_000_000n : 0n) + (nanos ? BigInt(i % 1000) : 0n), data })),
    { nanos },
  );
}

/** The store's catalog as a scan sees it, and how it got it. */
async function scan() {
  const c = await scanCatalog([store]);
  return { entries: c.entries, stats: c.stats };
}

describe('catalog cache fed by the helper', () => {
  for (const [name, nanos, shuffled] of [
    ['nanosecond records in order (verbatim runs)', true, false],
    ['nanosecond records out of order (verbatim runs)', true, true],
    ['microsecond records out of order (one by one)', false, true],
  ] as const) {
    it(`capture --read caches every file it wrote: ${name}`, async () => {
      const file = join(dir, 'in.pcap');
      await writeFile(file, input(nanos, shuffled));
      const config = await writeConfig(dir, { paths: [store], file_size: '256KiB', capacity: '64MiB' });
      const r = await cli(['capture', '--read', file, '--config', config]);
      expect(r.exitCode, r.all).toBe(0);
      const fed = await scan();
      expect(fed.entries.length).toBeGreaterThan(3);
      // Nothing read: every file came from the cache.
      expect(fed.stats).toMatchObject({ files: fed.entries.length, cached: fed.entries.length, readWhole: 0, readOnward: 0 });
      await rm(cachePath(store));
      const walked = await scan();
      expect(walked.stats.readWhole).toBe(walked.entries.length);
      expect(fed.entries).toEqual(walked.entries);
      // The case is what it says (so the comparison compares something).
      if (shuffled) expect(walked.entries.some((e) => !e.sorted)).toBe(true);
      else expect(walked.entries.every((e) => e.sorted)).toBe(true);
      // Each file's first record time is the one its index names (what the planner checks it by).
      for (const e of fed.entries) expect(e.firstRecordNs).toBe(readFileSync(e.path + '.qeidx').readBigUInt64LE(IDX_H.pcapFirstNs));
    });
  }

  it('the daemon side: a file_closed with its span goes into the cache after a flush; one without (a write failed in the file) does not', async () => {
    const file = join(dir, 'in.pcap');
    await writeFile(file, input(true, true));
    const r = await execa(helperPath, ['--read', file, '--iface', 'x', '--dir', store, '--file-size', '200000']);
    const closed = r.stdout.split('\n').filter(Boolean).map(parseHelperLine).filter((m): m is FileClosedMessage => m.type === 'file_closed');
    expect(closed.length).toBeGreaterThan(3);
    for (const m of closed) expect(m).toMatchObject({ min_ns: expect.any(BigInt), max_ns: expect.any(BigInt), sorted: expect.any(Boolean) });
    const warnings: string[] = [];
    const feed = new CatalogFeed((_l, t) => warnings.push(t), 60_000);
    const [first, ...rest] = closed;
    const { min_ns: _a, max_ns: _b, sorted: _c, ...bare } = first!;
    feed.add(bare);
    for (const m of rest) feed.add(m);
    expect(loadCache(store).size).toBe(0); // waits for its delay
    feed.flush();
    const cache = loadCache(store);
    expect([...cache.keys()].sort()).toEqual(rest.map((m) => m.path.split('/').pop()).sort());
    const fed = await scan();
    expect(fed.stats).toMatchObject({ cached: rest.length, readWhole: 1 });
    await rm(cachePath(store));
    expect((await scan()).entries).toEqual(fed.entries);
    expect(warnings).toEqual([]);
  });
});
