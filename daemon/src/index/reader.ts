// Reads a capture file's index (docs/INDEX.md) to answer a plan (./plan.ts): the blocks of the
// pcap file where a candidate record starts, and from which offset in each (the first record
// starting in the block, from the segment's block table). A query's files are planned by the
// native reader (daemon/native/index-read.c, `qe-extract --plan`), which keeps every rule below;
// this one serves verify() (`qe-packets index`, the store's checks) and is the reference the tests
// hold the native one to (test/index-plan-wire.test.ts). Only the file's first 16 KiB (headers,
// and a complete index's fence), the run of directory entries the fence points a lookup to, the
// posting lists it needs and the block table groups of its candidate blocks are read, with
// positioned reads: a store is tens of terabytes and its indexes are never read whole for a query.
//
// An index is trusted only after its file header and every segment header pass their CRCs, its
// version is the one this reader knows and it names its pcap file's first record; a torn last
// segment (a crash while the .part file was open) is dropped and what it covered is scanned.
// Whatever the index covers ends at `coveredEnd`; the records past that are read in full.
// A query never reads a segment body whole, so it cannot check the body's CRC; instead the fence
// is checked against its CRC and order, each fence key it decides by against the entry it copies,
// every directory entry it reads against its key_crc (each probe of a search included), every posting list it decodes with its entry against the entry's CRC, and then by
// structure: entries sorted and
// inside the body, posting lists that decode to exactly `count` ascending blocks within the
// segment's range; each block table group it reads is checked against its CRC. verify() (`qe-packets index`) reads everything and checks it all.
import { closeSync, fstatSync, openSync, read, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { decodeGlobalHeader, decodeRecordHeader, GLOBAL_HEADER_LEN, PcapFormatError, RECORD_HEADER_LEN } from '../pcap/format.js';
import {
  IDX_BLOCK_SIZE_MAX,
  IDX_BLOCK_SIZE_MIN,
  IDX_BT_GROUP,
  IDX_BT_NONE,
  IDX_E,
  IDX_ENTRY_LEN,
  IDX_FIELDS,
  IDX_FENCE_KEY_LEN,
  IDX_FENCE_STRIDE,
  IDX_FIELDS_KNOWN,
  IDX_FLAG_COMPLETE,
  IDX_H,
  IDX_HEADER_LEN,
  IDX_KEY,
  IDX_MAGIC,
  IDX_S,
  IDX_SEGMENT_HEADER_LEN,
  IDX_SEGMENT_MAGIC,
  IDX_VALUE_LEN,
  IDX_VERSION,
  type IndexField,
  blockTableBlocks,
  blockTableLen,
  fenceKeys,
  fenceLen,
} from './format.js';
import type { KeyType, Lookup } from './plan.js';

/** Why an index is not used: the file falls back to a scan. */
export class IndexUnusable extends Error {
  constructor(
    readonly kind: 'missing' | 'version' | 'damaged' | 'mismatch',
    message: string,
  ) {
    super(message);
  }
}

export interface Segment {
  /** File offset of the segment header. */
  at: number;
  nkeys: number;
  bodyLen: number;
  offLo: number;
  offHi: number;
  records: number;
  firstNs: bigint;
  lastNs: bigint;
  /** The first block the segment touches, and how many (its block table's entries). */
  block0: number;
  nblocks: number;
  /** File offset of its block table (the end of its body). */
  tableAt: number;
  /** File offset of its first directory entry (after the fence). */
  dirAt: number;
}

/** A segment's blocks, ascending (a posting list, or what a plan makes of several). */
type Blocks = number[];

/** Candidate record starts, one per block, ascending: read from each to the end of the last record starting in its block. */
export type Postings = number[];

/** A lookup's answer: `all` (the plan cannot narrow) or the candidate starts. */
export type Candidates = { all: true } | { all: false; starts: Postings };

export class IndexReader {
  /** Bytes of the index read so far (headers, directory pages, postings, block table groups). */
  bytesRead = 0;
  /** Reads (preads) of the index so far. */
  reads = 0;
  /** Directory pages read, by page number: the next lookup of the file often falls in one. */
  private pages = new Map<number, Buffer>();
  /** Each segment's fence once read and checked. */
  private fences = new Map<Segment, Buffer>();

  private constructor(
    readonly path: string,
    private fd: number,
    readonly blockSize: number,
    readonly fields: ReadonlySet<IndexField>,
    readonly linktype: number,
    readonly builder: number,
    readonly pcapFirstNs: bigint,
    readonly complete: boolean,
    readonly segments: readonly Segment[],
    /** Segments dropped (torn or past what the header promised): what they covered is scanned. */
    readonly droppedSegments: number,
    readonly fileSize: number,
    /** The file's first bytes, read whole at open: the headers and a complete index's fence. */
    private head: Buffer,
  ) {}

  /** The pcap offset up to which the index answers; records starting at or after it are scanned. */
  get coveredEnd(): number {
    return this.segments.length ? this.segments[this.segments.length - 1]!.offHi : GLOBAL_HEADER_LEN;
  }

  get records(): number {
    return this.segments.reduce((n, s) => n + s.records, 0);
  }

  /**
   * Opens the index at `path` for the pcap file at `pcapPath`. Throws IndexUnusable (with a
   * message naming the file, what is wrong and what happens) when it must not be trusted.
   */
  static open(path: string, pcapPath: string): IndexReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new IndexUnusable(code === 'ENOENT' ? 'missing' : 'damaged', `${path}: ${code === 'ENOENT' ? 'no index' : (e as Error).message}`);
    }
    try {
      return IndexReader.read(path, fd, pcapPath);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  private static read(path: string, fd: number, pcapPath: string): IndexReader {
    const damaged = (why: string) => new IndexUnusable('damaged', `${path}: ${why}: the index is not used, its pcap file is scanned (qe-packets index --rebuild rebuilds it)`);
    // One read for the header, the first segment's header and a complete index's fence (as
    // index-read.c does: a cold read costs a disk trip, whatever its size up to a few pages).
    const statSize = fstatSync(fd).size;
    const head = pread(fd, 0, Math.min(statSize, HEAD_READ));
    const size = head.length < Math.min(statSize, HEAD_READ) ? head.length : statSize; // cut since the fstat: as short
    const h = head.subarray(0, IDX_HEADER_LEN);
    if (h.length < IDX_HEADER_LEN) throw damaged(`${size} bytes, shorter than the ${IDX_HEADER_LEN}-byte header`);
    if (!h.subarray(0, IDX_MAGIC.length).equals(IDX_MAGIC)) throw damaged(`bad magic ${h.subarray(0, 8).toString('hex')}`);
    // The version is read before the CRC: a newer writer may lay out the header differently.
    const version = h.readUInt16LE(IDX_H.version);
    if (version !== IDX_VERSION) {
      throw new IndexUnusable('version', `${path}: index format version ${version}, this qe-packets reads version ${IDX_VERSION}: the pcap file is scanned instead (qe-packets index --rebuild writes a version ${IDX_VERSION} index)`);
    }
    if (crc32(h.subarray(0, IDX_H.crc)) !== h.readUInt32LE(IDX_H.crc)) throw damaged('file header fails its checksum');
    const headerLen = h.readUInt16LE(IDX_H.headerLen);
    const flags = h.readUInt32LE(IDX_H.flags);
    const blockSize = h.readUInt32LE(IDX_H.blockSize);
    const fieldBits = h.readUInt32LE(IDX_H.fields);
    if (headerLen < IDX_HEADER_LEN) throw damaged(`header_len ${headerLen} < ${IDX_HEADER_LEN}`);
    if (blockSize < IDX_BLOCK_SIZE_MIN || blockSize > IDX_BLOCK_SIZE_MAX || (blockSize & (blockSize - 1)) !== 0) throw damaged(`block_size ${blockSize} is not a power of two in [${IDX_BLOCK_SIZE_MIN}, ${IDX_BLOCK_SIZE_MAX}]`);
    if ((fieldBits & ~IDX_FIELDS_KNOWN) !== 0) throw damaged(`unknown field bits 0x${fieldBits.toString(16)}`);
    const fields = new Set((Object.keys(IDX_FIELDS) as IndexField[]).filter((f) => fieldBits & IDX_FIELDS[f]));
    const pcapFirstNs = h.readBigUInt64LE(IDX_H.pcapFirstNs);
    const linktype = h.readUInt32LE(IDX_H.linktype);

    const pcap = pcapFacts(pcapPath);
    if (pcap.linktype !== linktype) throw new IndexUnusable('mismatch', `${path}: index of link type ${linktype}, its pcap file has ${pcap.linktype}: not this file's index, the file is scanned`);
    if (pcap.firstNs !== pcapFirstNs) {
      throw new IndexUnusable('mismatch', `${path}: index of a pcap file whose first record is at ${pcapFirstNs} ns, ${pcapPath} starts at ${pcap.firstNs} ns: not this file's index, the file is scanned`);
    }

    const segments: Segment[] = [];
    let at = headerLen;
    let dropped = 0;
    let expectLo = GLOBAL_HEADER_LEN;
    let extraBytes = 0;
    let extraReads = 0;
    while (at + IDX_SEGMENT_HEADER_LEN <= size) {
      let s: Buffer;
      if (at + IDX_SEGMENT_HEADER_LEN <= head.length) s = head.subarray(at, at + IDX_SEGMENT_HEADER_LEN);
      else {
        s = pread(fd, at, IDX_SEGMENT_HEADER_LEN);
        if (s.length < IDX_SEGMENT_HEADER_LEN) {
          dropped = 1; // cut since the fstat: as torn
          break;
        }
        extraBytes += s.length;
        extraReads++;
      }
      const ok = s.readUInt32LE(IDX_S.magic) === IDX_SEGMENT_MAGIC && crc32(s.subarray(0, IDX_S.crc)) === s.readUInt32LE(IDX_S.crc);
      const seg: Segment = {
        at,
        nkeys: s.readUInt32LE(IDX_S.nkeys),
        bodyLen: Number(s.readBigUInt64LE(IDX_S.bodyLen)),
        offLo: Number(s.readBigUInt64LE(IDX_S.offLo)),
        offHi: Number(s.readBigUInt64LE(IDX_S.offHi)),
        records: Number(s.readBigUInt64LE(IDX_S.records)),
        firstNs: s.readBigUInt64LE(IDX_S.firstNs),
        lastNs: s.readBigUInt64LE(IDX_S.lastNs),
        block0: 0,
        nblocks: 0,
        tableAt: 0,
        dirAt: 0,
      };
      const end = at + IDX_SEGMENT_HEADER_LEN + seg.bodyLen;
      // A header that fails, or a body cut short, is a torn write: only ever the last segment.
      if (!ok || end > size) {
        dropped = 1;
        break;
      }
      seg.block0 = Math.floor(seg.offLo / blockSize);
      seg.nblocks = blockTableBlocks(seg.offLo, seg.offHi, blockSize);
      seg.tableAt = end - blockTableLen(seg.nblocks);
      seg.dirAt = at + IDX_SEGMENT_HEADER_LEN + fenceLen(seg.nkeys);
      if (seg.bodyLen < fenceLen(seg.nkeys) + seg.nkeys * IDX_ENTRY_LEN + blockTableLen(seg.nblocks)) {
        throw damaged(`segment at ${at}: body of ${seg.bodyLen} bytes cannot hold its fence, ${seg.nkeys} entries and the block table of [${seg.offLo}, ${seg.offHi})`);
      }
      if (seg.offLo !== expectLo || seg.offHi < seg.offLo) throw damaged(`segment at ${at} covers [${seg.offLo}, ${seg.offHi}), expected to start at ${expectLo}`);
      // An index may reach the disk before the packets it covers (an open file): what the pcap
      // file does not hold yet is not trusted, it is scanned when it is there.
      if (seg.offHi > pcap.size) {
        if (flagsComplete(h)) throw new IndexUnusable('mismatch', `${path}: covers up to offset ${seg.offHi}, past the end of ${pcapPath} (${pcap.size} bytes): not this file's index, the file is scanned`);
        dropped = 1;
        break;
      }
      segments.push(seg);
      expectLo = seg.offHi;
      at = end;
    }
    if (dropped === 0 && at !== size && at + IDX_SEGMENT_HEADER_LEN > size) dropped = 1; // a torn header
    const complete = (flags & IDX_FLAG_COMPLETE) !== 0;
    if (complete && (segments.length !== 1 || dropped)) throw damaged(`marked complete but holds ${segments.length} whole segment(s)${dropped ? ' and a torn one' : ''}`);
    const r = new IndexReader(path, fd, blockSize, fields, linktype, h.readUInt32LE(IDX_H.builder), pcapFirstNs, complete, segments, dropped, size, head);
    r.bytesRead = head.length + extraBytes;
    r.reads = 1 + extraReads;
    return r;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /**
   * Reads the whole index and checks everything a query could meet: each segment body against its
   * CRC, then each directory entry (order, bounds, its own CRC) and each posting list as a query
   * decodes it. Throws IndexUnusable.
   */
  verify(): void {
    for (const s of this.segments) {
      const body = this.pread(s.at + IDX_SEGMENT_HEADER_LEN, s.bodyLen);
      const want = this.pread(s.at + IDX_S.bodyCrc, 4).readUInt32LE(0);
      if (crc32(body) !== want) throw new IndexUnusable('damaged', `${this.path}: segment at ${s.at} fails its checksum: the index is not used, its pcap file is scanned (qe-packets index --rebuild rebuilds it)`);
      // The body is in memory now: the fence, entries and the table are checked from it, not read again.
      const fence = this.checkFence(s, body.subarray(0, fenceLen(s.nkeys)));
      const dirOff = fenceLen(s.nkeys);
      const area = s.nkeys * IDX_ENTRY_LEN;
      const tableOff = s.tableAt - s.at - IDX_SEGMENT_HEADER_LEN;
      const table = new Map<number, Buffer>();
      for (let g = 0; g * IDX_BT_GROUP < s.nblocks; g++) {
        const group = this.checkGroup(s, g, body.subarray(tableOff + g * (IDX_BT_GROUP + 1) * 4, tableOff + g * (IDX_BT_GROUP + 1) * 4 + groupLen(s, g)));
        for (let j = 0; j < group.length / 4; j++) this.tableEntry(s, s.block0 + g * IDX_BT_GROUP + j, group);
        table.set(g, group);
      }
      let prev: Buffer | undefined;
      for (let i = 0; i < s.nkeys; i++) {
        const at = s.dirAt + i * IDX_ENTRY_LEN;
        const e = decodeEntry(body.subarray(dirOff + i * IDX_ENTRY_LEN, dirOff + (i + 1) * IDX_ENTRY_LEN));
        if (e.valueLen > IDX_VALUE_LEN || e.off + e.len > tableOff - dirOff - area || e.count === 0 || e.len < e.count) {
          throw this.damaged(s, `directory entry ${i} (at ${at}) is malformed (value_len ${e.valueLen}, count ${e.count}, list of ${e.len} bytes at ${e.off})`);
        }
        const list = body.subarray(dirOff + area + e.off, dirOff + area + e.off + e.len);
        if (keyCrc(e.raw) !== e.keyCrc || entryCrc(e.raw, list) !== e.crc) throw this.damaged(s, `directory entry ${i} (at ${at}) or its posting list fails its checksum`);
        const k = sortKey(e.type, e.value);
        if (i % IDX_FENCE_STRIDE === 0) this.fenceAgrees(s, fence, k, i);
        if (prev && Buffer.compare(prev, k) >= 0) throw this.damaged(s, `directory entry ${i} is out of order`);
        prev = k;
        for (const blk of this.postingList(s, { ...e, list }, i)) this.blockStart(s, blk, table);
      }
    }
  }

  /** The candidate record starts for a plan, over every segment (what index-read.c's qe_ir_lookup gives). */
  async lookup(plan: Lookup): Promise<Candidates> {
    if (plan.op === 'all') return { all: true };
    const starts: Postings = [];
    // A block cut by a segment boundary may be a candidate in each: the earlier segment's start
    // reads it to its end, the later segment's records included.
    for (const s of this.segments) {
      const blocks = await this.evaluate(plan, s);
      const groups = await this.readGroups(s, blocks);
      for (const blk of blocks) {
        const last = starts[starts.length - 1];
        if (last === undefined || Math.floor(last / this.blockSize) !== blk) starts.push(this.blockStart(s, blk, groups));
      }
    }
    return { all: false, starts };
  }

  /**
   * The block table groups of `blocks` (ascending), checked: read in as few preads as the gaps
   * between them allow (a group is 260 bytes; candidates of a rare key are spread over the whole
   * table), not one pread a group, each a disk trip from a cold cache.
   */
  private async readGroups(s: Segment, blocks: Blocks): Promise<Map<number, Buffer>> {
    const out = new Map<number, Buffer>();
    const stride = (IDX_BT_GROUP + 1) * 4;
    const wanted: number[] = [];
    for (const blk of blocks) {
      const g = Math.floor((blk - s.block0) / IDX_BT_GROUP);
      if (wanted[wanted.length - 1] !== g) wanted.push(g);
    }
    for (let i = 0; i < wanted.length; ) {
      let j = i + 1;
      while (j < wanted.length && (wanted[j]! - wanted[j - 1]! - 1) * stride <= GROUP_GAP) j++;
      const first = wanted[i]!;
      const span = await this.preadAsync(s.tableAt + first * stride, (wanted[j - 1]! - first) * stride + groupLen(s, wanted[j - 1]!));
      for (let k = i; k < j; k++) {
        const at = (wanted[k]! - first) * stride;
        out.set(wanted[k]!, this.checkGroup(s, wanted[k]!, span.subarray(at, at + groupLen(s, wanted[k]!))));
      }
      i = j;
    }
    return out;
  }

  /** Where the first record of segment `s` in block `blk` starts: the block table's entry, from its group (read by readGroups, or whole by verify). */
  private blockStart(s: Segment, blk: number, groups: Map<number, Buffer>): number {
    const group = groups.get(Math.floor((blk - s.block0) / IDX_BT_GROUP));
    if (!group) throw new Error(`block table group of block ${blk} not read`);
    const v = this.tableEntry(s, blk, group);
    if (v === IDX_BT_NONE) throw this.damaged(s, `a posting for block ${blk}, where its block table has no record start`);
    return blk * this.blockSize + v;
  }

  /** Block `blk`'s entry in its (checked) group, checked: NONE or a start within the segment and the block. */
  private tableEntry(s: Segment, blk: number, group: Buffer): number {
    const v = group.readUInt32LE(((blk - s.block0) % IDX_BT_GROUP) * 4);
    const at = blk * this.blockSize + v;
    if (v !== IDX_BT_NONE && (v >= this.blockSize || at < s.offLo || at >= s.offHi)) throw this.damaged(s, `block table entry of block ${blk} is ${v}, not a start inside the block and [${s.offLo}, ${s.offHi})`);
    return v;
  }

  /**
   * A block table group (its entries, then their CRC), checked against its CRC; its entries are
   * checked as they are used (a query uses a few of a group's 64, `verify` all of them).
   */
  private checkGroup(s: Segment, g: number, b: Buffer): Buffer {
    const n = b.length / 4 - 1;
    if (crc32(b.subarray(0, n * 4)) !== b.readUInt32LE(n * 4)) throw this.damaged(s, `block table group ${g} fails its checksum`);
    return b.subarray(0, n * 4);
  }

  private async evaluate(l: Lookup, s: Segment): Promise<Blocks> {
    switch (l.op) {
      case 'all':
        throw new Error('ALL inside a plan: the planner folds it away');
      case 'key':
        return this.postingsOf(s, l.type, l.value, l.value);
      case 'range':
        return this.postingsOf(s, l.type, l.lo, l.hi);
      case 'and':
        return (await this.evaluateAll(l.args, s)).reduce((x, y) => this.intersect(x, y));
      case 'or':
        return (await this.evaluateAll(l.args, s)).reduce((x, y) => this.union(x, y));
    }
  }

  /** Each of `args`, one after another (their reads share directory pages). */
  private async evaluateAll(args: readonly Lookup[], s: Segment): Promise<Blocks[]> {
    const out: Blocks[] = [];
    for (const a of args) out.push(await this.evaluate(a, s));
    return out;
  }

  /** The union of the posting lists of every key of `type` in [lo, hi]. */
  private async postingsOf(s: Segment, type: KeyType, lo: Buffer, hi: Buffer): Promise<Blocks> {
    const t = IDX_KEY[type];
    const loKey = sortKey(t, lo);
    const hiKey = sortKey(t, hi);
    // The fence, in memory, gives the run of IDX_FENCE_STRIDE entries where the first entry >= lo
    // is (or the one just after the run): the run's pages are read in one pread.
    const fence = await this.fenceOf(s);
    let gLo = 0;
    let gHi = fenceKeys(s.nkeys);
    while (gLo < gHi) {
      const m = (gLo + gHi) >>> 1;
      if (Buffer.compare(fence.subarray(m * IDX_FENCE_KEY_LEN, (m + 1) * IDX_FENCE_KEY_LEN), loKey) <= 0) gLo = m + 1;
      else gHi = m;
    }
    let a = 0;
    let b = 0;
    if (gLo > 0) {
      a = (gLo - 1) * IDX_FENCE_STRIDE;
      b = Math.min(a + IDX_FENCE_STRIDE, s.nkeys);
      await this.pagesIn(Math.floor((s.dirAt + a * IDX_ENTRY_LEN) / DIR_PAGE), Math.floor((s.dirAt + b * IDX_ENTRY_LEN - 1) / DIR_PAGE));
      const first = await this.entryHead(s, a);
      this.fenceAgrees(s, fence, sortKey(first.type, first.value), a);
    }
    // Binary search in the run for the first entry >= lo, each probe checked against its key_crc:
    // its CRC proper covers its posting list too, and the probes land on popular keys (a common
    // port, a busy server) whose lists are tens of kilobytes.
    while (a < b) {
      const m = (a + b) >>> 1;
      const e = await this.entryHead(s, m);
      if (Buffer.compare(sortKey(e.type, e.value), loKey) < 0) a = m + 1;
      else b = m;
    }
    let out: Blocks = [];
    let prev: Buffer | undefined;
    for (let i = a; i < s.nkeys; i++) {
      const head = await this.entryHead(s, i);
      const k = sortKey(head.type, head.value);
      if (i % IDX_FENCE_STRIDE === 0) this.fenceAgrees(s, fence, k, i);
      if (Buffer.compare(k, hiKey) > 0) break;
      if (prev && Buffer.compare(prev, k) >= 0) throw this.damaged(s, `directory entry ${i} is out of order`);
      prev = k;
      const list = this.postingList(s, await this.withList(s, head, i), i);
      out = out.length ? this.union(out, list) : list;
    }
    return out;
  }

  /** The fence of `s` (format.ts), read (from the file's first read when it is there) and checked once. */
  private async fenceOf(s: Segment): Promise<Buffer> {
    let f = this.fences.get(s);
    if (!f) {
      const at = s.at + IDX_SEGMENT_HEADER_LEN;
      const len = fenceLen(s.nkeys);
      f = this.checkFence(s, at + len <= this.head.length ? this.head.subarray(at, at + len) : await this.preadAsync(at, len));
      this.fences.set(s, f);
    }
    return f;
  }

  /** A fence checked against its CRC, its keys strictly ascending (as the entries they copy are): its keys. */
  private checkFence(s: Segment, b: Buffer): Buffer {
    const n = fenceKeys(s.nkeys) * IDX_FENCE_KEY_LEN;
    if (crc32(b.subarray(0, n)) !== b.readUInt32LE(n)) throw this.damaged(s, `the fence (at ${s.at + IDX_SEGMENT_HEADER_LEN}) fails its checksum`);
    for (let g = 1; g * IDX_FENCE_KEY_LEN < n; g++) {
      if (Buffer.compare(b.subarray((g - 1) * IDX_FENCE_KEY_LEN, g * IDX_FENCE_KEY_LEN), b.subarray(g * IDX_FENCE_KEY_LEN, (g + 1) * IDX_FENCE_KEY_LEN)) >= 0) {
        throw this.damaged(s, `fence key ${g} is out of order`);
      }
    }
    return b.subarray(0, n);
  }

  /** Entry `i`'s key (i a multiple of the stride) against the fence key that copies it. */
  private fenceAgrees(s: Segment, fence: Buffer, key: Buffer, i: number): void {
    const g = i / IDX_FENCE_STRIDE;
    if (!key.equals(fence.subarray(g * IDX_FENCE_KEY_LEN, (g + 1) * IDX_FENCE_KEY_LEN))) throw this.damaged(s, `directory entry ${i} differs from its fence key`);
  }

  /** Entry `i`, checked against its key_crc: enough to trust its key, not its list. */
  private async entryHead(s: Segment, i: number): Promise<Omit<Entry, 'list'>> {
    const at = s.dirAt + i * IDX_ENTRY_LEN;
    const e = decodeEntry(await this.entryBytes(at));
    if (keyCrc(e.raw) !== e.keyCrc) throw this.damaged(s, `directory entry ${i} (at ${at}) fails its checksum`);
    return e;
  }

  /** The entry's posting list, checked with the entry against its CRC before anything in either is used. */
  private async withList(s: Segment, e: Omit<Entry, 'list'>, i: number): Promise<Entry> {
    const at = s.dirAt + i * IDX_ENTRY_LEN;
    const area = s.nkeys * IDX_ENTRY_LEN;
    // Bounds first: a flipped offset or length must not make us read (or allocate) past the segment.
    if (e.valueLen > IDX_VALUE_LEN || e.off + e.len > s.tableAt - s.dirAt - area || e.count === 0 || e.len < e.count) {
      throw this.damaged(s, `directory entry ${i} (at ${at}) is malformed (value_len ${e.valueLen}, count ${e.count}, list of ${e.len} bytes at ${e.off})`);
    }
    const list = await this.preadAsync(s.dirAt + area + e.off, e.len);
    if (entryCrc(e.raw, list) !== e.crc) throw this.damaged(s, `directory entry ${i} (at ${at}) or its posting list fails its checksum`);
    return { ...e, list };
  }

  /**
   * The 40 bytes of the entry at file offset `at`, from the directory pages around it (read whole,
   * aligned, and kept): a search's probes narrow to one page after about 10 of them, and its last
   * probes, and the next lookup's first ones, cost no read.
   */
  private async entryBytes(at: number): Promise<Buffer> {
    const p0 = Math.floor(at / DIR_PAGE);
    const p1 = Math.floor((at + IDX_ENTRY_LEN - 1) / DIR_PAGE);
    const a = await this.page(p0);
    if (p0 === p1) return a.subarray(at - p0 * DIR_PAGE, at - p0 * DIR_PAGE + IDX_ENTRY_LEN);
    return Buffer.concat([a.subarray(at - p0 * DIR_PAGE), await this.page(p1)]).subarray(0, IDX_ENTRY_LEN);
  }

  /** Page `n` if it is in memory: read before, or part of the file's first read. */
  private cachedPage(n: number): Buffer | undefined {
    const b = this.pages.get(n);
    if (b) return b;
    const h = this.head;
    if ((n + 1) * DIR_PAGE <= h.length || (n * DIR_PAGE < h.length && h.length === this.fileSize)) return h.subarray(n * DIR_PAGE, Math.min((n + 1) * DIR_PAGE, h.length));
    return undefined;
  }

  /** Pages [p0, p1] in memory, those not there yet read in one pread (a run of entries the fence points to may straddle two pages). */
  private async pagesIn(p0: number, p1: number): Promise<void> {
    while (p0 <= p1 && this.cachedPage(p0)) p0++;
    if (p0 > p1) return;
    while (p1 > p0 && this.cachedPage(p1)) p1--;
    // Entries lie inside the file (the segment's body was checked whole at open): a page is cut
    // only by the file's end, after them.
    const end = Math.min((p1 + 1) * DIR_PAGE, this.fileSize);
    const b = await this.preadAsync(p0 * DIR_PAGE, end - p0 * DIR_PAGE);
    for (let n = p0; n * DIR_PAGE < end; n++) {
      if (!this.cachedPage(n)) this.pages.set(n, Buffer.from(b.subarray((n - p0) * DIR_PAGE, Math.min((n - p0 + 1) * DIR_PAGE, b.length))));
    }
  }

  private async page(n: number): Promise<Buffer> {
    await this.pagesIn(n, n);
    return this.cachedPage(n)!;
  }

  private postingList(s: Segment, e: Entry, i: number): Blocks {
    const b = e.list;
    const out: Blocks = [];
    let p = 0;
    let v = 0;
    for (let n = 0; n < e.count; n++) {
      let x = 0;
      let mul = 1;
      for (;;) {
        if (p >= b.length || mul > 2 ** 56) throw this.damaged(s, `posting list of entry ${i} is cut short`);
        const byte = b[p++]!;
        x += (byte & 0x7f) * mul;
        mul *= 128;
        if ((byte & 0x80) === 0) break;
      }
      v = n === 0 ? x : v + x;
      if (v < s.block0 || v >= s.block0 + s.nblocks || (n > 0 && x === 0)) {
        throw this.damaged(s, `posting list of entry ${i} holds block ${v}, out of order or outside blocks [${s.block0}, ${s.block0 + s.nblocks})`);
      }
      out.push(v);
    }
    if (p !== b.length) throw this.damaged(s, `posting list of entry ${i} is longer than its ${e.count} postings`);
    return out;
  }

  /** Blocks in both. */
  private intersect(x: Blocks, y: Blocks): Blocks {
    const out: Blocks = [];
    let i = 0;
    let j = 0;
    while (i < x.length && j < y.length) {
      if (x[i]! < y[j]!) i++;
      else if (y[j]! < x[i]!) j++;
      else {
        out.push(x[i++]!);
        j++;
      }
    }
    return out;
  }

  /** Blocks in either. */
  private union(x: Blocks, y: Blocks): Blocks {
    const out: Blocks = [];
    let i = 0;
    let j = 0;
    while (i < x.length || j < y.length) {
      if (j >= y.length) out.push(x[i++]!);
      else if (i >= x.length) out.push(y[j++]!);
      else if (x[i]! < y[j]!) out.push(x[i++]!);
      else if (y[j]! < x[i]!) out.push(y[j++]!);
      else {
        out.push(x[i++]!);
        j++;
      }
    }
    return out;
  }

  private damaged(s: Segment, why: string): IndexUnusable {
    return new IndexUnusable('damaged', `${this.path}: segment at ${s.at}: ${why}: the index is not used, its pcap file is scanned (qe-packets index --rebuild rebuilds it)`);
  }

  private pread(pos: number, len: number): Buffer {
    return this.counted(pos, len, pread(this.fd, pos, len));
  }

  private async preadAsync(pos: number, len: number): Promise<Buffer> {
    return this.counted(pos, len, await preadAsync(this.fd, pos, len));
  }

  private counted(pos: number, len: number, b: Buffer): Buffer {
    this.bytesRead += b.length;
    this.reads++;
    if (b.length < len) throw new IndexUnusable('damaged', `${this.path}: cut short at ${pos + b.length} bytes: the index is not used, its pcap file is scanned`);
    return b;
  }
}

interface Entry {
  type: number;
  valueLen: number;
  value: Buffer;
  count: number;
  off: number;
  len: number;
  crc: number;
  keyCrc: number;
  /** The entry's 40 bytes as read. */
  raw: Buffer;
  /** Its posting list, once checked. */
  list: Buffer;
}

function decodeEntry(b: Buffer): Omit<Entry, 'list'> {
  const valueLen = b[IDX_E.valueLen]!;
  return {
    type: b[IDX_E.type]!,
    valueLen,
    value: Buffer.from(b.subarray(IDX_E.value, IDX_E.value + Math.min(valueLen, IDX_VALUE_LEN))),
    count: b.readUInt32LE(IDX_E.count),
    off: Number(b.readBigUInt64LE(IDX_E.off)),
    len: b.readUInt32LE(IDX_E.len),
    crc: b.readUInt32LE(IDX_E.crc),
    keyCrc: b.readUInt16LE(IDX_E.keyCrc),
    raw: b,
  };
}

/** An entry's key_crc: the low 16 bits of the CRC-32 of the entry with key_crc and crc as 0 (docs/INDEX.md). */
export function keyCrc(entry: Buffer): number {
  const e = Buffer.from(entry);
  e.writeUInt16LE(0, IDX_E.keyCrc);
  e.writeUInt32LE(0, IDX_E.crc);
  return crc32(e) & 0xffff;
}

/** An entry's CRC: the entry with its crc field as 0, then its posting list (docs/INDEX.md). */
export function entryCrc(entry: Buffer, list: Buffer): number {
  const e = Buffer.from(entry);
  e.writeUInt32LE(0, IDX_E.crc);
  return crc32(list, crc32(e));
}

// The directory is read by aligned pages of this size (the page cache's unit: a cold probe costs
// one disk trip whether it reads 40 bytes or 4096).
const DIR_PAGE = 4096;
/** The first read of an index (index-read.c's HEAD_READ): headers and a complete index's fence in one disk trip. */
const HEAD_READ = 16384;

// Block table groups this close (bytes between them) are read in one pread: from a cold cache a
// disk trip costs about as much as reading 16 KiB more.
const GROUP_GAP = 16384;

/** Bytes of block table group `g` of a segment: its entries and their CRC. */
function groupLen(s: Segment, g: number): number {
  return (Math.min(IDX_BT_GROUP, s.nblocks - g * IDX_BT_GROUP) + 1) * 4;
}

function flagsComplete(h: Buffer): boolean {
  return (h.readUInt32LE(IDX_H.flags) & IDX_FLAG_COMPLETE) !== 0;
}

/** Entries sort by (type, value) as bytes, values left-aligned and zero-padded to 16 bytes. */
function sortKey(type: number, value: Buffer): Buffer {
  const k = Buffer.alloc(1 + IDX_VALUE_LEN);
  k[0] = type;
  value.copy(k, 1, 0, Math.min(value.length, IDX_VALUE_LEN));
  return k;
}

function pread(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, b, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got === len ? b : b.subarray(0, got);
}

async function preadAsync(fd: number, pos: number, len: number): Promise<Buffer> {
  const b = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = await new Promise<number>((resolve, reject) => read(fd, b, got, len - got, pos + got, (e, k) => (e ? reject(e) : resolve(k))));
    if (n === 0) break;
    got += n;
  }
  return got === len ? b : b.subarray(0, got);
}

/** What an index is checked against: its pcap file's link type, size and first record. */
export function pcapFacts(pcapPath: string): { linktype: number; size: number; firstNs: bigint } {
  let fd: number;
  try {
    fd = openSync(pcapPath, 'r');
  } catch (e) {
    // A .part renamed on close since the catalog was read: qe-extract finds it under its closed
    // name and reads it whole, as for any file without an index.
    const code = (e as NodeJS.ErrnoException).code;
    throw new IndexUnusable(code === 'ENOENT' ? 'missing' : 'mismatch', `${pcapPath}: ${(e as Error).message}`);
  }
  try {
    const size = fstatSync(fd).size;
    const b = pread(fd, 0, GLOBAL_HEADER_LEN + RECORD_HEADER_LEN);
    let g;
    try {
      g = decodeGlobalHeader(b);
    } catch (e) {
      if (e instanceof PcapFormatError) throw new IndexUnusable('mismatch', `${pcapPath}: ${e.message}`);
      throw e;
    }
    const firstNs = b.length === GLOBAL_HEADER_LEN + RECORD_HEADER_LEN ? decodeRecordHeader(b, GLOBAL_HEADER_LEN, g).tsNs : 0n;
    return { linktype: g.linktype, size, firstNs };
  } finally {
    closeSync(fd);
  }
}
