// A bit flipped in an index (a bad disk, a stray write) that leaves its structure valid is caught by
// the query that reads it, through each directory entry's own checks (docs/INDEX.md: key_crc for
// the entry, checked on every entry read; crc for the entry and its list, checked with the list): the query warns
// naming the index and scans that file, so its answer is still the scan's; `qe-packets index`
// reports the index damaged and rebuilds it. The index is the native builder's (qe-index).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDX_BT_GROUP, IDX_E, IDX_ENTRY_LEN, IDX_HEADER_LEN, IDX_KEY, IDX_S, IDX_SEGMENT_HEADER_LEN, IDX_FENCE_KEY_LEN, IDX_FENCE_STRIDE, blockTableBlocks, blockTableLen, fenceKeys, fenceLen, indexPathFor } from '../daemon/src/index/format.js';
import { planFilter } from '../daemon/src/index/plan.js';
import { IndexReader, IndexUnusable, keyCrc } from '../daemon/src/index/reader.js';
import { parsePcap } from '../daemon/src/pcap/format.js';
import { formatIsoNs } from '../daemon/src/time/format-time.js';
import { cli, cliPath } from './lib/cli.js';
import { BASE_NS, MS, tempDir, writeCaptureFile } from './lib/fixture.js';
import { decodeIndex } from './lib/index-check.js';
import { mixedTraffic } from './lib/mixed-traffic.js';

let root: string;
let cleanup: () => void;
let cfg: string;
let pcap: string;
let ix: string;
let good: Buffer;
let n = 0;
const FROM = formatIsoNs(BASE_NS - 1000n * MS);
const TO = formatIsoNs(BASE_NS + 100_000n * MS);
const BLOCK = 4096;

beforeAll(() => {
  ({ dir: root, cleanup } = tempDir('index-crc'));
  const store = join(root, 'store');
  const frames = mixedTraffic(3000, 17, 0.95);
  pcap = writeCaptureFile(store, 'eth0', frames.map((data, i) => ({ tsNs: BASE_NS + BigInt(i) * MS, data }))).path;
  cfg = join(root, 'config.yaml');
  writeFileSync(cfg, `storage:\n  paths: [${store}]\n  capacity: 1GiB\n  file_size: 64MiB\nindex:\n  fields: [ip, port, proto, vlan]\n  block_size: ${BLOCK}\nmetrics: {listen: false}\n`);
  ix = indexPathFor(pcap);
  // Indexed by qe-index, as the store does it (small blocks: a host has postings in many).
  const r = spawnSync('node', [cliPath, 'index', '--config', cfg], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  good = readFileSync(ix);
});
afterAll(() => cleanup());

interface Found {
  /** Byte position of the entry in the index file. */
  at: number;
  /** Byte position of its posting list. */
  list: number;
  len: number;
  count: number;
  value: Buffer;
}

/** Every entry of the (one-segment, complete) index with where it lies. */
function entries(b: Buffer): Found[] {
  const seg = IDX_HEADER_LEN;
  const nkeys = b.readUInt32LE(seg + IDX_S.nkeys);
  const dir = seg + IDX_SEGMENT_HEADER_LEN + fenceLen(nkeys);
  const area = dir + nkeys * IDX_ENTRY_LEN;
  return Array.from({ length: nkeys }, (_, i) => {
    const at = dir + i * IDX_ENTRY_LEN;
    return {
      at,
      list: area + Number(b.readBigUInt64LE(at + IDX_E.off)),
      len: b.readUInt32LE(at + IDX_E.len),
      count: b.readUInt32LE(at + IDX_E.count),
      value: b.subarray(at + IDX_E.value, at + IDX_E.value + b[at + IDX_E.valueLen]!),
    };
  }).filter((e) => b[e.at + IDX_E.type] !== 0 && e.len > 0);
}

function hostOf(e: Found): string {
  return [...e.value].join('.');
}

/** An IPv4 host with a few postings whose neighbouring value (last bit flipped) is no key: a flip of that bit keeps the directory sorted. */
function pickHost(b: Buffer): Found {
  const all = entries(b).filter((e) => b[e.at + IDX_E.type] === IDX_KEY.ipv4);
  const values = new Set(all.map(hostOf));
  const e = all.find((x) => x.count >= 3 && x.count <= 40 && !values.has([...x.value.subarray(0, 3), x.value[3]! ^ 1].join('.')));
  if (!e) throw new Error('no host fits');
  return e;
}

function extract(filter: string, extra: string[] = []): { status: number | null; out: Buffer; stderr: string } {
  const out = join(root, `out-${++n}.pcap`);
  const r = spawnSync('node', [cliPath, 'extract', '--config', cfg, '--from', FROM, '--to', TO, '--filter', filter, '-w', out, ...extra], { encoding: 'utf8' });
  return { status: r.status, out: readFileSync(out), stderr: r.stderr };
}

/** The postings (blocks) a list decodes to, and whether the reader's structure checks would take them. */
function decodeList(b: Buffer, e: Found): { offs: number[]; wellFormed: boolean } {
  const offs: number[] = [];
  let p = e.list;
  let v = 0;
  while (p < e.list + e.len) {
    let x = 0;
    let mul = 1;
    for (;;) {
      const byte = b[p++]!;
      x += (byte & 0x7f) * mul;
      mul *= 128;
      if (!(byte & 0x80)) break;
    }
    v = offs.length ? v + x : x;
    offs.push(v);
  }
  const hi = Number(b.readBigUInt64LE(IDX_HEADER_LEN + IDX_S.offHi));
  const lo = Number(b.readBigUInt64LE(IDX_HEADER_LEN + IDX_S.offLo));
  const wellFormed = offs.length === e.count && offs.every((o, i) => o >= Math.floor(lo / BLOCK) && o <= Math.floor((hi - 1) / BLOCK) && (i === 0 || o > offs[i - 1]!));
  return { offs, wellFormed };
}

/** Byte position in the index of the block table entry of block `blk` (the one segment's). */
function tableEntryAt(b: Buffer, blk: number): number {
  const lo = Number(b.readBigUInt64LE(IDX_HEADER_LEN + IDX_S.offLo));
  const hi = Number(b.readBigUInt64LE(IDX_HEADER_LEN + IDX_S.offHi));
  const end = IDX_HEADER_LEN + IDX_SEGMENT_HEADER_LEN + Number(b.readBigUInt64LE(IDX_HEADER_LEN + IDX_S.bodyLen));
  const i = blk - Math.floor(lo / BLOCK);
  return end - blockTableLen(blockTableBlocks(lo, hi, BLOCK)) + Math.floor(i / IDX_BT_GROUP) * (IDX_BT_GROUP + 1) * 4 + (i % IDX_BT_GROUP) * 4;
}

describe('index: each directory entry and posting list carries its own check', () => {
  it('the native builder writes entry checksums that the test-side decoder holds', () => {
    expect(() => decodeIndex(good)).not.toThrow();
    const e = pickHost(good);
    const entry = Buffer.from(good.subarray(e.at, e.at + IDX_ENTRY_LEN));
    const want = entry.readUInt32LE(IDX_E.crc);
    entry.writeUInt32LE(0, IDX_E.crc);
    expect(crc32(good.subarray(e.list, e.list + e.len), crc32(entry))).toBe(want);
    const wantKey = entry.readUInt16LE(IDX_E.keyCrc);
    entry.writeUInt16LE(0, IDX_E.keyCrc);
    expect(crc32(entry) & 0xffff).toBe(wantKey);
  });

  it('key_crc catches a flip of any one bit of an entry outside its crc field (which covers the list and is checked with it)', () => {
    const e = pickHost(good);
    const entry = Buffer.from(good.subarray(e.at, e.at + IDX_ENTRY_LEN));
    expect(keyCrc(entry)).toBe(entry.readUInt16LE(IDX_E.keyCrc));
    let caught = 0;
    for (let bit = 0; bit < IDX_ENTRY_LEN * 8; bit++) {
      const byte = bit >> 3;
      if (byte >= IDX_E.crc && byte < IDX_E.crc + 4) continue;
      const bad = Buffer.from(entry);
      bad[byte]! ^= 1 << (bit & 7);
      if (keyCrc(bad) !== bad.readUInt16LE(IDX_E.keyCrc)) caught++;
    }
    expect(caught).toBe((IDX_ENTRY_LEN - 4) * 8);
  });

  it('a lookup reads the run of entries its fence points to and the list it uses, not a binary search\'s pages or the probes\' lists', async () => {
    const e = pickHost(good);
    const nkeys = good.readUInt32LE(IDX_HEADER_LEN + IDX_S.nkeys);
    // Enough keys that the directory runs past the file's first read and the fence has several keys.
    expect(fenceKeys(nkeys)).toBeGreaterThan(8);
    const r = IndexReader.open(ix, pcap);
    try {
      // The header, the segment header and the fence came in the one first read.
      expect(r.reads).toBe(1);
      const before = r.bytesRead;
      const readsBefore = r.reads;
      const c = await r.lookup(planFilter(`host ${hostOf(e)}`, r.fields));
      expect(c.all ? -1 : c.starts.length).toBe(e.count);
      // The run's pages (one read), the entry after the host's (the end of the range: the same
      // run, or the next page), the list, and the block table groups of its blocks (at most one
      // read each). A binary search over the directory would add a read per probe until the
      // probes share a page, and reading a probe's list tens of kilobytes.
      const groups = new Set(decodeList(good, e).offs.map((blk) => Math.floor(blk / IDX_BT_GROUP))).size;
      expect(r.reads - readsBefore).toBeLessThanOrEqual(3 + groups);
      expect(r.bytesRead - before).toBeLessThanOrEqual(3 * 4096 + e.len + groups * (IDX_BT_GROUP + 1) * 4 + 16384 * groups);
    } finally {
      r.close();
    }
  });

  const cases: [what: string, damage: (b: Buffer, e: Found) => void][] = [
    ['a directory entry value', (b, e) => void (b[e.at + IDX_E.value + 3]! ^= 0x01)],
    [
      'a posting list (still well formed)',
      (b, e) => {
        // The first posting moves by one block: still ascending, in range.
        b[e.list]! ^= 0x01;
        expect(decodeList(b, e).wellFormed).toBe(true);
        expect(decodeList(b, e).offs).not.toEqual(decodeList(good, e).offs);
      },
    ],
    ['an entry count', (b, e) => void (b[e.at + IDX_E.count]! ^= 0x01)],
    ['an entry offset', (b, e) => void (b[e.at + IDX_E.off]! ^= 0x01)],
    // Any fence key: every lookup reads and checks the whole fence.
    ['a fence key', (b) => void (b[IDX_HEADER_LEN + IDX_SEGMENT_HEADER_LEN + 3 * IDX_FENCE_KEY_LEN + 2]! ^= 0x01)],
    // The first record of a candidate block moves by one byte: still inside the block and the
    // segment, so only the group's CRC tells.
    ['a block table entry', (b, e) => void (b[tableEntryAt(b, decodeList(b, e).offs[0]!)]! ^= 0x01)],
  ];

  for (const [what, damage] of cases) {
    it(`a bit flipped in ${what}: the query warns naming the index and gives the scan's answer; qe-packets index rebuilds it`, async () => {
      const e = pickHost(good);
      const filter = `host ${hostOf(e)}`;
      const bad = Buffer.from(good);
      damage(bad, e);
      writeFileSync(ix, bad);
      try {
        const scan = extract(filter, ['--no-index']);
        expect(scan.status, scan.stderr).toBe(0);
        expect(parsePcap(scan.out).records.length).toBeGreaterThanOrEqual(e.count);
        const r = extract(filter);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).toMatch(new RegExp(`warning: ${ix}: segment at ${IDX_HEADER_LEN}: .*(entry|posting list|block table|fence).*: the index is not used, its pcap file is scanned`));
        expect(r.out.equals(scan.out)).toBe(true);
        // The full check `qe-packets index` makes finds it too, and the rebuilt index is the original.
        const idx = await cli(['index', '--config', cfg, '--json']);
        const summary = JSON.parse(idx.stdout) as { indexed: number; rebuilt: { path: string; reason: string }[] };
        expect(summary.indexed).toBe(1);
        expect(summary.rebuilt).toEqual([{ path: pcap, reason: expect.stringMatching(/^damaged index \(segment at 64/) as unknown as string }]);
        expect(readFileSync(ix).equals(good)).toBe(true);
        const again = extract(filter);
        expect(again.stderr).not.toMatch(/warning/);
        expect(again.out.equals(scan.out)).toBe(true);
      } finally {
        writeFileSync(ix, good);
      }
    }, 30_000);
  }

  // What the checksums cannot catch, because the damage was written with them (a bug in a
  // writer, not a flipped bit): the structure checks of the native planner see it.
  const structural: [string, (b: Buffer, e: Found) => void, RegExp][] = [
    [
      'a posting list holding one posting more than its count says',
      (b, e) => {
        b.writeUInt32LE(e.count - 1, e.at + IDX_E.count);
        b.writeUInt16LE(keyCrc(b.subarray(e.at, e.at + IDX_ENTRY_LEN)), e.at + IDX_E.keyCrc);
        const entry = Buffer.from(b.subarray(e.at, e.at + IDX_ENTRY_LEN));
        entry.writeUInt32LE(0, IDX_E.crc);
        b.writeUInt32LE(crc32(b.subarray(e.list, e.list + e.len), crc32(entry)), e.at + IDX_E.crc);
      },
      /posting list of entry \d+ is longer than its \d+ postings/,
    ],
    [
      'a posting for a block whose table says no record starts there',
      (b, e) => {
        const at = tableEntryAt(b, decodeList(b, e).offs[0]!);
        b.writeUInt32LE(0xffffffff, at);
        const lo = Number(b.readBigUInt64LE(IDX_HEADER_LEN + IDX_S.offLo));
        const hi = Number(b.readBigUInt64LE(IDX_HEADER_LEN + IDX_S.offHi));
        const nblocks = blockTableBlocks(lo, hi, BLOCK);
        const table = IDX_HEADER_LEN + IDX_SEGMENT_HEADER_LEN + Number(b.readBigUInt64LE(IDX_HEADER_LEN + IDX_S.bodyLen)) - blockTableLen(nblocks);
        const g = Math.floor((at - table) / ((IDX_BT_GROUP + 1) * 4));
        const start = table + g * (IDX_BT_GROUP + 1) * 4;
        const n = Math.min(IDX_BT_GROUP, nblocks - g * IDX_BT_GROUP);
        b.writeUInt32LE(crc32(b.subarray(start, start + n * 4)), start + n * 4);
      },
      /a posting for block \d+, where its block table has no record start/,
    ],
    [
      // A fence key just past the host's key (still ascending): the search picks the run before
      // the host's, finds nothing there, and must not conclude the host is absent.
      'a fence key that says its entry is later than it is',
      (b, e) => {
        const seg = IDX_HEADER_LEN;
        const i = (e.at - (seg + IDX_SEGMENT_HEADER_LEN + fenceLen(b.readUInt32LE(seg + IDX_S.nkeys)))) / IDX_ENTRY_LEN;
        const g = Math.floor(i / IDX_FENCE_STRIDE);
        const fence = seg + IDX_SEGMENT_HEADER_LEN;
        const key = Buffer.alloc(IDX_FENCE_KEY_LEN);
        key[0] = IDX_KEY.ipv4;
        e.value.copy(key, 1);
        key[IDX_FENCE_KEY_LEN - 1] = 1;
        key.copy(b, fence + g * IDX_FENCE_KEY_LEN);
        const n = fenceKeys(b.readUInt32LE(seg + IDX_S.nkeys)) * IDX_FENCE_KEY_LEN;
        b.writeUInt32LE(crc32(b.subarray(fence, fence + n)), fence + n);
      },
      /directory entry \d+ differs from its fence key/,
    ],
  ];

  for (const [what, damage, says] of structural) {
    it(`${what}, checksums made to agree: the query warns and gives the scan's answer`, () => {
      const e = pickHost(good);
      const filter = `host ${hostOf(e)}`;
      const bad = Buffer.from(good);
      damage(bad, e);
      writeFileSync(ix, bad);
      try {
        const scan = extract(filter, ['--no-index']);
        const r = extract(filter);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).toMatch(says);
        expect(r.stderr).toMatch(new RegExp(`warning: ${ix}: segment at ${IDX_HEADER_LEN}: .*: the index is not used, its pcap file is scanned`));
        expect(r.out.equals(scan.out)).toBe(true);
      } finally {
        writeFileSync(ix, good);
      }
    }, 30_000);
  }

  it('verify() checks every entry against its own checksum, even when the body checksum was made to agree', () => {
    const e = pickHost(good);
    const bad = Buffer.from(good);
    bad[e.at + IDX_E.crc + 1]! ^= 0x01;
    const seg = IDX_HEADER_LEN;
    const body = bad.subarray(seg + IDX_SEGMENT_HEADER_LEN, seg + IDX_SEGMENT_HEADER_LEN + Number(bad.readBigUInt64LE(seg + IDX_S.bodyLen)));
    bad.writeUInt32LE(crc32(body), seg + IDX_S.bodyCrc);
    bad.writeUInt32LE(crc32(bad.subarray(seg, seg + IDX_S.crc)), seg + IDX_S.crc);
    writeFileSync(ix, bad);
    try {
      const r = IndexReader.open(ix, pcap);
      try {
        expect(() => r.verify()).toThrow(IndexUnusable);
        expect(() => r.verify()).toThrow(new RegExp(`^${ix}: segment at 64: directory entry \\d+ \\(at ${e.at}\\) or its posting list fails its checksum`));
      } finally {
        r.close();
      }
    } finally {
      writeFileSync(ix, good);
    }
  });
});
