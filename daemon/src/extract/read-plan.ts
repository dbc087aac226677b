// Which bytes of each file `extract` reads: from the file's index when it has a usable one that
// holds the fields the filter's plan needs, else all of it. Ranges go to qe-extract (--ranges),
// which reads the records starting in them and applies the exact filter to each: an index only
// narrows, so the result is the scan's whatever this module decides.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { CatalogEntry } from '../store/catalog.js';
import { mapLimit } from '../util/map-limit.js';
import { indexPathFor } from '../index/format.js';
import { IndexReader, IndexUnusable } from '../index/reader.js';
import { describePlan, fieldsNeeded, planFilter, type Lookup } from '../index/plan.js';
import { GLOBAL_HEADER_LEN } from '../pcap/format.js';

/** Reads to the end of the file (qe-extract's "no stop"). */
export const TO_END = 2n ** 64n - 1n;

export type Range = [start: number, stop: number | 'end'];

export type Why =
  /** Read through the index. */
  | 'index'
  /** --no-index, or no filter to narrow by. */
  | 'scan-asked'
  | 'no-index'
  /** Version, damage, another file's index: said in `note`. */
  | 'index-unusable'
  /** The index lacks a field the plan needs. */
  | 'fields'
  /** The expression cannot be narrowed (`not X`, `len > 100`, a host name...). */
  | 'not-narrowed'
  /** The index narrows this file too little to beat reading it whole. */
  | 'dense';

// Gaps up to this many blocks between candidate ranges are read through rather than sought over
// (two 16 KiB blocks take about as long to read as an SSD takes to seek).
const MERGE_GAP_BLOCKS = 2;
// A file whose candidates cover more than this share of it is read whole.
const DENSE = 0.5;
// Files planned at once: twice libuv's pool of 4 keeps it busy while a file's next read waits for
// the JavaScript of its last; each holds an index descriptor open until its plan is done.
const PLAN_CONCURRENCY = 8;

export interface FileRead {
  file: CatalogEntry;
  why: Why;
  note?: string;
  /** Only with an index: what to read. */
  ranges?: Range[];
  plan?: string;
  /** Candidate blocks from the index. */
  blocks: number;
  /** Bytes qe-extract reads (an estimate for a growing file). */
  bytes: number;
  /** Records those bytes hold (estimated from the index's records per byte). */
  records: number;
  /** Bytes of the index read to plan. */
  indexBytes: number;
}

/** When reading through an index stops paying (the defaults above); tests set both to hold every read to the index. */
export interface ReadPolicy {
  mergeGapBlocks?: number;
  /** Share of a file above which it is read whole (>= 1: never). */
  dense?: number;
}

/**
 * The read of each file, planned for all files at once: from a cold cache each file's plan is a
 * chain of disk trips (the index's header, the pcap file's first record, a binary search's pages,
 * posting lists, the block table), and the chains of different files overlap (PLAN_CONCURRENCY at a time).
 */
export async function planReads(files: readonly CatalogEntry[], filter: string | undefined, useIndex: boolean, policy: ReadPolicy = {}): Promise<FileRead[]> {
  return mapLimit(files, PLAN_CONCURRENCY, (f) => planFile(f, filter, useIndex, policy));
}

async function planFile(file: CatalogEntry, filter: string | undefined, useIndex: boolean, policy: ReadPolicy): Promise<FileRead> {
  const scan = (why: Why, note?: string): FileRead => ({ file, why, ...(note ? { note } : {}), blocks: 0, bytes: file.size, records: file.packets, indexBytes: 0 });
  if (!useIndex || filter === undefined || filter.trim() === '') return scan('scan-asked');
  // IndexReader.open reads synchronously: the pages it reads (the index's first, the pcap
  // file's first) are fetched first for every file at once.
  await Promise.all([warmFirstPage(indexPathFor(file.path)), warmFirstPage(file.path)]);
  let ix: IndexReader;
  try {
    ix = IndexReader.open(indexPathFor(file.path), file.path);
  } catch (e) {
    if (!(e instanceof IndexUnusable)) throw e;
    return e.kind === 'missing' ? scan('no-index') : scan('index-unusable', e.message);
  }
  try {
    const full = planFilter(filter, ['mac', 'vlan', 'ip', 'port', 'proto', 'tunnel']);
    const plan: Lookup = planFilter(filter, ix.fields);
    if (plan.op === 'all') {
      if (full.op === 'all') return scan('not-narrowed');
      const missing = [...fieldsNeeded(full)].filter((f) => !ix.fields.has(f));
      return scan('fields', `its index holds ${[...ix.fields].join(', ') || 'no fields'}, the filter needs ${missing.join(', ')}`);
    }
    let c;
    try {
      c = await ix.lookup(plan);
    } catch (e) {
      if (!(e instanceof IndexUnusable)) throw e;
      return { ...scan('index-unusable', e.message), indexBytes: ix.bytesRead };
    }
    if (c.all) return scan('not-narrowed');
    const covered = ix.coveredEnd;
    const gap = (policy.mergeGapBlocks ?? MERGE_GAP_BLOCKS) * ix.blockSize;
    const ranges: Range[] = [];
    for (const start of c.starts) {
      const stop = Math.min((Math.floor(start / ix.blockSize) + 1) * ix.blockSize, covered);
      const last = ranges[ranges.length - 1];
      // Reading the records of a short gap costs less than a seek, and changes nothing: every
      // record read meets the exact filter.
      if (last && start - (last[1] as number) <= gap) last[1] = stop;
      else ranges.push([start, stop]);
    }
    // Past what the index covers (an open file's newest packets, a torn segment), everything is read.
    const tail = Math.max(0, file.size - covered);
    if (tail > 0 || file.partial) {
      const last = ranges[ranges.length - 1];
      if (last && covered - (last[1] as number) <= gap) last[1] = 'end';
      else ranges.push([Math.max(covered, GLOBAL_HEADER_LEN), 'end']);
    }
    const bytes = ranges.reduce((n, [a, b]) => n + (b === 'end' ? Math.max(0, file.size - a) : b - a), 0);
    // Candidates nearly everywhere: a plain sequential read (readahead, no seeks) is faster.
    if (bytes > file.size * (policy.dense ?? DENSE)) return { ...scan('dense'), plan: describePlan(plan), blocks: c.starts.length, indexBytes: ix.bytesRead };
    const perRecord = covered > GLOBAL_HEADER_LEN && ix.records > 0 ? (covered - GLOBAL_HEADER_LEN) / ix.records : 0;
    const records = perRecord > 0 ? Math.ceil(bytes / perRecord) : file.packets;
    return { file, why: 'index', ranges, plan: describePlan(plan), blocks: c.starts.length, bytes, records: Math.min(records, file.packets || records), indexBytes: ix.bytesRead };
  } finally {
    ix.close();
  }
}

/** Reads a file's first page into the page cache (nothing when it cannot: the open reports why). */
async function warmFirstPage(path: string): Promise<void> {
  try {
    // Non-blocking: a FIFO under an index's name must not hold a thread of the pool.
    const h = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      await h.read(Buffer.alloc(4096), 0, 4096, 0);
    } finally {
      await h.close();
    }
  } catch {
    // The synchronous open that follows meets the same problem and names it.
  }
}

/** The --ranges bytes and each ranged file's `:first+count` for the --list. */
export function encodeRanges(reads: readonly FileRead[]): { bytes: Buffer; spans: Map<string, [number, number]> } {
  const spans = new Map<string, [number, number]>();
  const pairs: number[] = [];
  for (const r of reads) {
    if (!r.ranges) continue;
    spans.set(r.file.path, [pairs.length / 2, r.ranges.length]);
    for (const [a, b] of r.ranges) pairs.push(a, b === 'end' ? -1 : b);
  }
  // Offsets are below 2^53: each u64 is written as two u32 halves (no BigInt per range).
  const bytes = Buffer.alloc(pairs.length * 8);
  pairs.forEach((v, i) => {
    if (v < 0) bytes.fill(0xff, i * 8, i * 8 + 8); // TO_END
    else {
      bytes.writeUInt32LE(v % 0x1_0000_0000, i * 8);
      bytes.writeUInt32LE(Math.floor(v / 0x1_0000_0000), i * 8 + 4);
    }
  });
  return { bytes, spans };
}
