// Summarises a capture file (span, packets, bytes, where its whole records end) by walking the
// record headers in large chunks. Only headers are decoded: the catalog never needs packet data,
// and a chunk that ends inside a large packet is followed by a read at the next header instead.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import {
  GLOBAL_HEADER_LEN,
  RECORD_HEADER_LEN,
  decodeGlobalHeader,
  maxCaplen,
  type GlobalHeader,
} from '../pcap/format.js';

const CHUNK = 4 * 1024 * 1024;
const NS_PER_S = 1_000_000_000n;

/** Where a walk stopped: the file's end, a record cut short, or a header that cannot be a record. */
export type StopReason = 'end' | 'partial' | 'bad-record';

export interface PcapSummary {
  header: GlobalHeader;
  packets: number;
  /** Captured bytes (sum of caplen), not the file size. */
  bytes: number;
  /** Earliest and latest record timestamps; undefined while the file has no record. */
  minNs?: bigint;
  maxNs?: bigint;
  lastNs?: bigint;
  /** True while every record is no older than the one before it. */
  sorted: boolean;
  /** The first record's time as written (seconds × 10^9 + the fraction, no carry): what an index names its file by. */
  firstRecordNs?: bigint;
  /** Offset just past the last whole record: where a crashed file is cut. */
  wholeEnd: number;
  /** How many bytes the walk looked at (the file's size when it was opened). */
  size: number;
  /** The mtime that goes with that size (both from one fstat). */
  mtimeMs: number;
  ino: number;
  stop: StopReason;
  /** Bytes after wholeEnd. */
  tailBytes: number;
}

/** What an earlier walk learnt, so a file that only grew is read from where that walk stopped. */
export type SummaryResume = Pick<
  PcapSummary,
  'packets' | 'bytes' | 'minNs' | 'maxNs' | 'lastNs' | 'sorted' | 'wholeEnd' | 'firstRecordNs'
>;

/** A stricter check a caller can add (repair rejects records a crash may have left as garbage). */
export type RecordCheck = (tsNs: bigint, r: { frac: number; caplen: number; origlen: number }, nanos: boolean) => boolean;

export class PcapTooShortError extends Error {}

/**
 * A name in the store that is not a regular file (a symbolic link, a directory, a FIFO...): store
 * code reads and writes regular files only, so nothing planted in the folder can redirect a write
 * elsewhere or block the reader. Carries `code` like an errno error so callers can report it as one.
 */
export class NotRegularFileError extends Error {
  readonly code = 'ENOTREG';
  constructor(
    readonly path: string,
    readonly kind: string,
  ) {
    super(`${kind}, not a regular file: skipped`);
  }
}

/** What an lstat/fstat result is, in words for a message. */
export function fileKind(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean; isSocket(): boolean; isBlockDevice(): boolean; isCharacterDevice(): boolean }): string {
  if (st.isFile()) return 'a regular file';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Opens a store file without following a symbolic link and without blocking on a FIFO, and checks
 * that what was opened is a regular file: the name may have been swapped since a caller's lstat.
 */
export function openRegular(path: string, mode: 'r' | 'r+' = 'r'): number {
  const { O_RDONLY, O_RDWR, O_NOFOLLOW, O_NONBLOCK } = constants;
  let fd: number;
  try {
    fd = openSync(path, (mode === 'r' ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new NotRegularFileError(path, 'a symbolic link');
    if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw new NotRegularFileError(path, 'a directory');
    throw e;
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new NotRegularFileError(path, fileKind(st));
  }
  return fd;
}

export interface SummarizeOptions {
  resume?: SummaryResume;
  check?: RecordCheck;
  /** A scratch buffer to reuse across files (at least 64 KiB). */
  buffer?: Buffer;
}

/**
 * Throws PcapTooShortError when the file has no whole global header yet and PcapFormatError when
 * it is not a pcap file.
 */
export function summarizePcap(path: string, opts: SummarizeOptions = {}): PcapSummary {
  const fd = openRegular(path);
  try {
    return summarizeFd(fd, opts);
  } finally {
    closeSync(fd);
  }
}

/** As summarizePcap, on a file the caller has opened (and checked) itself. */
export function summarizeFd(fd: number, opts: SummarizeOptions): PcapSummary {
  // The size is taken once: a file still being written is summarised as it was at this moment.
  const st = fstatSync(fd);
  const size = st.size;
  const buf = opts.buffer ?? Buffer.allocUnsafe(CHUNK);
  const got = readSync(fd, buf, 0, GLOBAL_HEADER_LEN, 0);
  if (got < GLOBAL_HEADER_LEN) {
    throw new PcapTooShortError(`file has ${got} bytes, less than a pcap global header (${GLOBAL_HEADER_LEN})`);
  }
  const header = decodeGlobalHeader(buf.subarray(0, GLOBAL_HEADER_LEN));
  const le = header.littleEndian;
  const fracLimit = header.nanos ? 1_000_000_000 : 1_000_000;
  const fracScale = header.nanos ? 1n : 1000n;
  const limitCaplen = maxCaplen(header.snaplen);
  const check = opts.check;

  const r = opts.resume;
  let packets = r?.packets ?? 0;
  let bytes = r?.bytes ?? 0;
  let sorted = r?.sorted ?? true;
  // Timestamps are compared as (seconds, fraction) pairs of plain numbers: nanoseconds since the
  // epoch exceed 2^53, and a BigInt per record would dominate the walk.
  let [minS, minF] = split(r?.minNs, header.nanos);
  let [maxS, maxF] = split(r?.maxNs, header.nanos);
  let [lastS, lastF] = split(r?.lastNs, header.nanos);
  let any = r?.minNs !== undefined;
  let firstRecordNs = r?.firstRecordNs;

  let pos = Math.max(r?.wholeEnd ?? GLOBAL_HEADER_LEN, GLOBAL_HEADER_LEN);
  let bufPos = 0; // file offset of buf[0]
  let bufLen = 0;
  let stop: StopReason = 'end';

  for (;;) {
    if (size - pos < RECORD_HEADER_LEN) {
      stop = size === pos ? 'end' : 'partial';
      break;
    }
    let rel = pos - bufPos;
    if (rel < 0 || rel + RECORD_HEADER_LEN > bufLen) {
      bufPos = pos;
      bufLen = readFully(fd, buf, Math.min(buf.length, size - pos), pos);
      rel = 0;
      if (bufLen < RECORD_HEADER_LEN) {
        stop = 'partial';
        break;
      }
    }
    const sec = le ? buf.readUInt32LE(rel) : buf.readUInt32BE(rel);
    const frac = le ? buf.readUInt32LE(rel + 4) : buf.readUInt32BE(rel + 4);
    const caplen = le ? buf.readUInt32LE(rel + 8) : buf.readUInt32BE(rel + 8);
    const origlen = le ? buf.readUInt32LE(rel + 12) : buf.readUInt32BE(rel + 12);
    if (caplen > limitCaplen) {
      stop = 'bad-record';
      break;
    }
    const end = pos + RECORD_HEADER_LEN + caplen;
    if (end > size) {
      stop = 'partial';
      break;
    }
    if (check && !check(BigInt(sec) * NS_PER_S + BigInt(frac) * fracScale, { frac, caplen, origlen }, header.nanos)) {
      stop = 'bad-record';
      break;
    }
    let s = sec;
    let f = frac;
    if (f >= fracLimit) {
      // An invalid fraction (the helper no longer writes one) carries into the seconds, as every
      // reader of the instant does: compared as it stands it would hide a record out of order.
      s += Math.floor(f / fracLimit);
      f %= fracLimit;
    }
    if (pos === GLOBAL_HEADER_LEN) firstRecordNs = BigInt(sec) * NS_PER_S + BigInt(frac) * fracScale;
    if (!any) {
      minS = maxS = lastS = s;
      minF = maxF = lastF = f;
      any = true;
    } else {
      if (s < lastS || (s === lastS && f < lastF)) sorted = false;
      if (s < minS || (s === minS && f < minF)) {
        minS = s;
        minF = f;
      }
      if (s > maxS || (s === maxS && f > maxF)) {
        maxS = s;
        maxF = f;
      }
      lastS = s;
      lastF = f;
    }
    packets++;
    bytes += caplen;
    pos = end;
  }

  const toNs = (s: number, f: number) => BigInt(s) * NS_PER_S + BigInt(f) * fracScale;
  return {
    header,
    packets,
    bytes,
    ...(any ? { minNs: toNs(minS, minF), maxNs: toNs(maxS, maxF), lastNs: toNs(lastS, lastF) } : {}),
    ...(firstRecordNs !== undefined ? { firstRecordNs } : {}),
    sorted,
    wholeEnd: pos,
    size,
    mtimeMs: st.mtimeMs,
    ino: st.ino,
    stop,
    tailBytes: size - pos,
  };
}

function split(ns: bigint | undefined, nanos: boolean): [number, number] {
  if (ns === undefined) return [0, 0];
  const frac = ns % NS_PER_S;
  return [Number(ns / NS_PER_S), Number(nanos ? frac : frac / 1000n)];
}

function readFully(fd: number, buf: Buffer, len: number, position: number): number {
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}
