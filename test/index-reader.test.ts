// The index reader: candidates a lookup yields, and what it refuses to trust (a newer version, a
// damaged or truncated index, an index of another file). Indexes here come from the test-side
// writer (test/lib/index-build.ts), written to the format's description independently of the reader.
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IndexReader, IndexUnusable } from '../daemon/src/index/reader.js';
import { planFilter } from '../daemon/src/index/plan.js';
import { buildPcap, decodeGlobalHeader, records } from '../daemon/src/pcap/format.js';
import { BASE_NS, MS, frame, rng, tempDir } from './lib/fixture.js';
import { buildIndex, referenceKeys, type Key } from './lib/index-build.js';
import { IDX_BT_GROUP, IDX_KEY, IDX_VERSION, fenceLen, type IndexField } from '../daemon/src/index/format.js';

const { dir, cleanup } = tempDir('index-reader');
afterAll(cleanup);

const FIELDS: IndexField[] = ['ip', 'port', 'proto', 'vlan'];

/** Many hosts and ports, so the directory is large and a lookup must not read it whole. */
function store(name: string, count: number, seed: number): { path: string; pcap: Buffer } {
  const r = rng(seed);
  const packets = Array.from({ length: count }, (_, i) => ({
    tsNs: BASE_NS + BigInt(i) * MS,
    data: frame({
      src: `10.${Math.floor(r() * 4)}.${Math.floor(r() * 250)}.${1 + Math.floor(r() * 250)}`,
      dst: r() < 0.05 ? '192.168.0.1' : `172.16.${Math.floor(r() * 250)}.${1 + Math.floor(r() * 250)}`,
      proto: r() < 0.5 ? 'udp' : 'tcp',
      sport: 1024 + Math.floor(r() * 60000),
      dport: [53, 80, 443][Math.floor(r() * 3)]!,
      payload: Math.floor(r() * 300),
    }),
  }));
  const pcap = buildPcap(packets);
  const path = join(dir, name);
  writeFileSync(path, pcap);
  return { path, pcap };
}

/**
 * For each block holding a record that carries a key the predicate accepts, the first record
 * starting in that block within the segment (of `every` records) of the first such record: what
 * a lookup must give.
 */
function expected(pcap: Buffer, blockSize: number, pred: (keys: Key[]) => boolean, every = Infinity): number[] {
  const out: number[] = [];
  const first = new Map<string, number>();
  let i = 0;
  for (const r of records(pcap, decodeGlobalHeader(pcap))) {
    const blk = Math.floor(r.offset / blockSize);
    const id = `${Math.floor(i++ / every)}:${blk}`;
    if (!first.has(id)) first.set(id, r.offset);
    if (!pred(referenceKeys(r.data, new Set(FIELDS)))) continue;
    const last = out[out.length - 1];
    if (last === undefined || Math.floor(last / blockSize) !== blk) out.push(first.get(id)!);
  }
  return out;
}

const has = (type: number, hex: string) => (keys: Key[]) => keys.some(([t, v]) => t === type && v.toString('hex') === hex);

describe('index reader', () => {
  const { path, pcap } = store('a.pcap', 6000, 7);
  writeFileSync(path + '.qeidx', buildIndex(pcap, { fields: FIELDS, blockSize: 4096 }));

  it('opens a complete index and reads its header', async () => {
    const ix = IndexReader.open(path + '.qeidx', path);
    expect(ix.complete).toBe(true);
    expect(ix.blockSize).toBe(4096);
    expect([...ix.fields].sort()).toEqual([...FIELDS].sort());
    expect(ix.coveredEnd).toBe(pcap.length);
    expect(ix.records).toBe(6000);
    ix.close();
  });

  it('gives, per block holding the key, the first record starting in it, reading a small part of the index', async () => {
    const ix = IndexReader.open(path + '.qeidx', path);
    const before = ix.bytesRead;
    const readsBefore = ix.reads;
    const c = await ix.lookup(planFilter('host 192.168.0.1', FIELDS));
    expect(c.all).toBe(false);
    expect(c.all ? [] : c.starts).toEqual(expected(pcap, 4096, has(IDX_KEY.ipv4, 'c0a80001')));
    const size = readFileSync(path + '.qeidx').length;
    expect(size).toBeGreaterThan(200_000);
    // One binary search over ~20k entries (log2 ~ 15 probes, read by 4 KiB directory page: the
    // last probes share a page), one posting list and the block table groups of its blocks.
    expect(ix.reads - readsBefore).toBeLessThan(15);
    expect(ix.bytesRead - before).toBeLessThan(15 * 4096);
    ix.close();
  });

  it('reads the block table groups of many candidate blocks in one read, not one a group', async () => {
    const ix = IndexReader.open(path + '.qeidx', path);
    const first = await ix.lookup(planFilter('port 53', FIELDS));
    // Again: the directory pages are kept, so what is read is the posting list and the table.
    const readsBefore = ix.reads;
    const c = await ix.lookup(planFilter('port 53', FIELDS));
    expect(c).toEqual(first);
    const starts = c.all ? [] : c.starts;
    expect(starts).toEqual(expected(pcap, 4096, has(IDX_KEY.port, '0035')));
    expect(new Set(starts.map((o) => Math.floor(o / 4096 / IDX_BT_GROUP))).size).toBeGreaterThan(3);
    expect(ix.reads - readsBefore).toBe(2);
    ix.close();
  });

  it('intersects and unites by block, each read from its first record', async () => {
    const ix = IndexReader.open(path + '.qeidx', path);
    const p53 = has(IDX_KEY.port, '0035');
    const h = has(IDX_KEY.ipv4, 'c0a80001');
    const and = await ix.lookup(planFilter('host 192.168.0.1 and port 53', FIELDS));
    const a = expected(pcap, 4096, h);
    const b = expected(pcap, 4096, p53);
    const blocks = new Set(b.map((o) => Math.floor(o / 4096)));
    expect(and.all ? [] : and.starts).toEqual(a.filter((o) => blocks.has(Math.floor(o / 4096))));
    const or = await ix.lookup(planFilter('port 53 or host 192.168.0.1', FIELDS));
    expect(or.all ? [] : or.starts).toEqual(expected(pcap, 4096, (k) => h(k) || p53(k)));
    const range = await ix.lookup(planFilter('net 10.1.0.0/16', FIELDS));
    expect(range.all ? [] : range.starts).toEqual(expected(pcap, 4096, (k) => k.some(([t, v]) => t === IDX_KEY.ipv4 && v[0] === 10 && v[1] === 1)));
    expect(await ix.lookup(planFilter('not port 53', FIELDS))).toEqual({ all: true });
    expect(await ix.lookup(planFilter('host 192.168.9.9', FIELDS))).toEqual({ all: false, starts: [] });
    ix.close();
  });

  it('reads every whole segment of an open file and drops a torn last one', async () => {
    const { path: p, pcap: pc } = store('b.pcap.part', 900, 9);
    const full = buildIndex(pc, { fields: FIELDS, blockSize: 4096, segmentEvery: 300 });
    const recs = [...records(pc, decodeGlobalHeader(pc))];
    writeFileSync(p + '.qeidx', full);
    let ix = IndexReader.open(p + '.qeidx', p);
    expect(ix.complete).toBe(false);
    expect(ix.segments.length).toBe(3);
    expect(ix.coveredEnd).toBe(pc.length);
    ix.close();
    truncateSync(p + '.qeidx', full.length - 5);
    ix = IndexReader.open(p + '.qeidx', p);
    expect(ix.segments.length).toBe(2);
    expect(ix.droppedSegments).toBe(1);
    expect(ix.coveredEnd).toBe(recs[600]!.offset);
    const c = await ix.lookup(planFilter('port 53', FIELDS));
    expect(c.all ? [] : c.starts).toEqual(expected(pc.subarray(0, recs[600]!.offset), 4096, has(IDX_KEY.port, '0035'), 300));
    ix.close();
  });

  it('refuses an index of a newer version, naming both versions', async () => {
    const { path: p, pcap: pc } = store('c.pcap', 50, 3);
    writeFileSync(p + '.qeidx', buildIndex(pc, { version: IDX_VERSION + 1 }));
    const e = catchUnusable(() => IndexReader.open(p + '.qeidx', p));
    expect(e.kind).toBe('version');
    expect(e.message).toMatch(new RegExp(`version ${IDX_VERSION + 1}.*version ${IDX_VERSION}`));
  });

  it('refuses a damaged header, a cut directory, a damaged posting list, and another file\'s index', async () => {
    const { path: p, pcap: pc } = store('d.pcap', 2000, 4);
    const good = buildIndex(pc, { fields: FIELDS, blockSize: 4096 });
    const flip = (at: number) => {
      const b = Buffer.from(good);
      b[at]! ^= 0x10;
      writeFileSync(p + '.qeidx', b);
    };
    flip(20);
    expect(catchUnusable(() => IndexReader.open(p + '.qeidx', p)).kind).toBe('damaged');
    // A complete index cut inside its only segment: its header says complete, its segment is torn.
    writeFileSync(p + '.qeidx', good.subarray(0, good.length - 100));
    expect(catchUnusable(() => IndexReader.open(p + '.qeidx', p)).message).toMatch(/complete/);
    writeFileSync(p + '.qeidx', good.subarray(0, 30));
    expect(catchUnusable(() => IndexReader.open(p + '.qeidx', p)).message).toMatch(/shorter than/);
    // The last byte is the block table's last group CRC: the body CRC catches it, and so does the group's.
    flip(good.length - 1);
    const ix = IndexReader.open(p + '.qeidx', p);
    expect(catchUnusable(() => ix.verify()).message).toMatch(/checksum/);
    ix.close();
    // Another pcap file under the same name (its first record differs).
    const other = store('e.pcap', 10, 5);
    writeFileSync(other.path + '.qeidx', good);
    const m = catchUnusable(() => IndexReader.open(other.path + '.qeidx', other.path));
    expect(m.kind).toBe('mismatch');
    expect(catchUnusable(() => IndexReader.open(join(dir, 'none.qeidx'), p)).kind).toBe('missing');
  });

  it('detects a posting list that breaks its own structure while reading it', async () => {
    const { path: p, pcap: pc } = store('f.pcap', 2000, 6);
    const good = buildIndex(pc, { fields: ['port'], blockSize: 4096 });
    const b = Buffer.from(good);
    // Make the first posting list's first offset huge: outside the segment's range.
    const seg = 64;
    const nkeys = b.readUInt32LE(seg + 4);
    const dir = seg + 64 + fenceLen(nkeys);
    const postings = dir + nkeys * 40;
    b[postings] = 0xff;
    b[postings + 1] = 0xff;
    writeFileSync(p + '.qeidx', b);
    const ix = IndexReader.open(p + '.qeidx', p);
    const firstPort = b.readUInt16BE(dir + 24);
    expect(await ix.lookup(planFilter(`port ${firstPort}`, ['port'])).then(() => undefined, (e: unknown) => (e instanceof IndexUnusable ? e.kind : e))).toBe('damaged');
    ix.close();
  });
});

function catchUnusable(f: () => unknown): IndexUnusable {
  try {
    f();
  } catch (e) {
    if (e instanceof IndexUnusable) return e;
    throw e;
  }
  throw new Error('expected IndexUnusable');
}
