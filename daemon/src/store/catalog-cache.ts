// The catalog cache: one `.qe-catalog.json` per store directory holding what a scan learnt about
// each file, keyed by name and checked against size, mtime and inode, so that a rescan of
// unchanged files costs a readdir and a stat each. Losing or corrupting it only costs a re-read.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openRegular } from './pcap-summary.js';
import { readWireNs } from '../util/json.js';

export const CACHE_FILE_NAME = '.qe-catalog.json';
const FORMAT = 'qe-packets-catalog';
const VERSION = 1;

export interface CachedFile {
  size: number;
  mtimeMs: number;
  ino: number;
  /** Offset past the last whole record; a file that only grew is read on from here. */
  wholeEnd: number;
  packets: number;
  bytes: number;
  minNs?: bigint;
  maxNs?: bigint;
  lastNs?: bigint;
  sorted: boolean;
  linktype: number;
  snaplen: number;
  nanos: boolean;
  /**
   * The first record's time exactly as an index names its pcap file (seconds × 10^9 + the
   * fraction as written): with the link type, what the index planner checks an index against,
   * so a query need not read every file's first record to know it. Undefined for an empty file
   * and for rows cached before it was kept (the planner reads the file then).
   */
  firstRecordNs?: bigint;
}

// Entries are stored as arrays in this order: 40,000 files as objects would double the file.
type Row = [
  size: number,
  mtimeMs: number,
  ino: number,
  wholeEnd: number,
  packets: number,
  bytes: number,
  minNs: string | null,
  maxNs: string | null,
  lastNs: string | null,
  sorted: 0 | 1,
  linktype: number,
  snaplen: number,
  nanos: 0 | 1,
  // Added later: rows without it (13 long) still read.
  firstRecordNs?: string | null,
];

interface CacheDocument {
  format: typeof FORMAT;
  version: number;
  files: Record<string, Row>;
}

export function cachePath(dir: string): string {
  return join(dir, CACHE_FILE_NAME);
}

/**
 * An absent, unreadable or foreign cache reads as empty: everything is then read afresh. So does
 * anything but a regular file under its name (a link to /dev/zero, a FIFO would never end).
 */
export function loadCache(dir: string): Map<string, CachedFile> {
  const out = new Map<string, CachedFile>();
  let doc: unknown;
  try {
    const fd = openRegular(cachePath(dir));
    try {
      doc = JSON.parse(readFileSync(fd, 'utf8'));
    } finally {
      closeSync(fd);
    }
  } catch {
    return out;
  }
  if (!isDocument(doc)) return out;
  for (const [name, row] of Object.entries(doc.files)) {
    const file = fromRow(row);
    if (file) out.set(name, file);
  }
  return out;
}

/**
 * Writes the cache atomically (a temporary file renamed over the old one), so a daemon and an
 * extract running at once never read half a cache. Returns the error instead of throwing: a store
 * the caller may not write (an extract run by another user) still scans, only slower next time.
 */
export function saveCache(dir: string, files: ReadonlyMap<string, CachedFile>): Error | undefined {
  const doc: CacheDocument = { format: FORMAT, version: VERSION, files: {} };
  for (const [name, f] of files) doc.files[name] = toRow(f);
  // An unguessable name, created exclusively and never through a link: whoever may write the
  // store folder cannot plant a symbolic link there to have this write land elsewhere.
  const tmp = `${cachePath(dir)}.${randomBytes(8).toString('hex')}.tmp`;
  let created = false;
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    created = true;
    try {
      writeFileSync(fd, JSON.stringify(doc));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, cachePath(dir));
    return undefined;
  } catch (e) {
    if (created) {
      try {
        unlinkSync(tmp);
      } catch {
        // already renamed or removed
      }
    }
    return e as Error;
  }
}

function isDocument(doc: unknown): doc is CacheDocument {
  if (typeof doc !== 'object' || doc === null) return false;
  const d = doc as Partial<CacheDocument>;
  return d.format === FORMAT && d.version === VERSION && typeof d.files === 'object' && d.files !== null;
}

function toRow(f: CachedFile): Row {
  return [
    f.size,
    f.mtimeMs,
    f.ino,
    f.wholeEnd,
    f.packets,
    f.bytes,
    f.minNs?.toString() ?? null,
    f.maxNs?.toString() ?? null,
    f.lastNs?.toString() ?? null,
    f.sorted ? 1 : 0,
    f.linktype,
    f.snaplen,
    f.nanos ? 1 : 0,
    f.firstRecordNs?.toString() ?? null,
  ];
}

function fromRow(row: unknown): CachedFile | undefined {
  if (!Array.isArray(row) || (row.length !== 13 && row.length !== 14)) return undefined;
  const [size, mtimeMs, ino, wholeEnd, packets, bytes, minNs, maxNs, lastNs, sorted, linktype, snaplen, nanos, firstRecordNs = null] = row;
  const nums = [size, mtimeMs, ino, wholeEnd, packets, bytes, linktype, snaplen];
  if (!nums.every((n) => typeof n === 'number' && Number.isFinite(n))) return undefined;
  // The cache keeps nanoseconds in the daemon's wire form; null is "none", anything else unreadable.
  const big = (v: unknown): bigint | undefined | null => (v === null ? undefined : (readWireNs(v) ?? null));
  const [mn, mx, ls, fr] = [big(minNs), big(maxNs), big(lastNs), big(firstRecordNs)];
  if (mn === null || mx === null || ls === null || fr === null) return undefined;
  return {
    size: size as number,
    mtimeMs: mtimeMs as number,
    ino: ino as number,
    wholeEnd: wholeEnd as number,
    packets: packets as number,
    bytes: bytes as number,
    ...(mn !== undefined ? { minNs: mn } : {}),
    ...(mx !== undefined ? { maxNs: mx } : {}),
    ...(ls !== undefined ? { lastNs: ls } : {}),
    sorted: sorted === 1,
    linktype: linktype as number,
    snaplen: snaplen as number,
    nanos: nanos === 1,
    ...(fr !== undefined ? { firstRecordNs: fr } : {}),
  };
}
