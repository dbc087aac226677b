// Whether a closed capture file's index can be kept as it is, or must be (re)built: the question
// `qe-packets index` and the daemon's background indexing ask of every file. An index is kept
// only when every checksum holds (header, segment header, body), it was built with the fields and
// block size the config asks for, it belongs to this very pcap file (first timestamp) and it
// covers it to its last whole record. Anything else is rebuilt, never trusted.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import {
  IDX_FIELDS,
  IDX_FLAG_COMPLETE,
  IDX_H,
  IDX_HEADER_LEN,
  IDX_MAGIC,
  IDX_S,
  IDX_SEGMENT_HEADER_LEN,
  IDX_SEGMENT_MAGIC,
  IDX_VERSION,
  indexPathFor,
  type IndexField,
} from '../index/format.js';
import { GLOBAL_HEADER_LEN, RECORD_HEADER_LEN, decodeGlobalHeader, decodeRecordHeader } from '../pcap/format.js';

export interface IndexWant {
  fields: readonly IndexField[];
  blockSizeBytes: number;
}

/**
 * 'full' reads the whole index to check its body's checksum (`qe-packets index`); 'headers' checks
 * the header checksums and that the file is as long as they say (cut short is caught), not the
 * body: the daemon checks every index of the store at each start, and a store's indexes are
 * hundreds of gigabytes. A reader checks the body of what it reads.
 */
export type IndexVerify = 'full' | 'headers';

export type IndexState =
  | { state: 'current'; indexBytes: number }
  | { state: 'missing' }
  /** A checksum fails, or the file is cut short: what a crash or a bad disk leaves. */
  | { state: 'damaged'; reason: string }
  /** Written by another version of the format: this one cannot read it. */
  | { state: 'version'; found: number; expected: number }
  /** Sound, but not what the config asks for, or not of this pcap file as it is now. */
  | { state: 'stale'; reason: string };

export function fieldBits(fields: readonly IndexField[]): number {
  return fields.reduce((bits, f) => bits | IDX_FIELDS[f], 0);
}

export function fieldNames(bits: number): string {
  const names = (Object.keys(IDX_FIELDS) as IndexField[]).filter((f) => bits & IDX_FIELDS[f]);
  return names.length ? names.join(',') : 'none';
}

function readAt(fd: number, len: number, pos: number): Buffer {
  const b = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, b, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return b.subarray(0, got);
}

/** First record's timestamp of a pcap file (0n when it holds none), and whether a whole record starts at `off`. */
function pcapFacts(pcapPath: string, off: number): { firstNs: bigint; size: number; recordAt: boolean } {
  const fd = openSync(pcapPath, 'r');
  try {
    const size = fstatSync(fd).size;
    const g = decodeGlobalHeader(readAt(fd, GLOBAL_HEADER_LEN, 0));
    const first = readAt(fd, RECORD_HEADER_LEN, GLOBAL_HEADER_LEN);
    const firstNs = first.length === RECORD_HEADER_LEN ? decodeRecordHeader(first, 0, g).tsNs : 0n;
    const at = off + RECORD_HEADER_LEN <= size ? readAt(fd, RECORD_HEADER_LEN, off) : undefined;
    const recordAt = at !== undefined && off + RECORD_HEADER_LEN + decodeRecordHeader(at, 0, g).caplen <= size;
    return { firstNs, size, recordAt };
  } finally {
    closeSync(fd);
  }
}

/** The state of the index of a closed pcap file. Throws only when the pcap file itself cannot be read. */
export function checkIndex(pcapPath: string, want: IndexWant, verify: IndexVerify = 'full'): IndexState {
  const path = indexPathFor(pcapPath);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    return { state: 'damaged', reason: `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
  }
  let h: Buffer;
  let seg: Buffer;
  let size: number;
  try {
    size = fstatSync(fd).size;
    h = readAt(fd, IDX_HEADER_LEN, 0);
    if (h.length < IDX_HEADER_LEN) return { state: 'damaged', reason: `${size} bytes, shorter than its ${IDX_HEADER_LEN}-byte header` };
    if (!h.subarray(0, IDX_MAGIC.length).equals(IDX_MAGIC)) return { state: 'damaged', reason: 'not an index (wrong magic)' };
    // The version before the checksum: another version may lay its header out otherwise.
    const version = h.readUInt16LE(IDX_H.version);
    if (version !== IDX_VERSION) return { state: 'version', found: version, expected: IDX_VERSION };
    if (crc32(h.subarray(0, IDX_H.crc)) !== h.readUInt32LE(IDX_H.crc)) return { state: 'damaged', reason: 'header checksum mismatch' };
    const headerLen = h.readUInt16LE(IDX_H.headerLen);
    seg = readAt(fd, IDX_SEGMENT_HEADER_LEN, headerLen);
    if (seg.length < IDX_SEGMENT_HEADER_LEN) return { state: 'damaged', reason: `cut short: ${size} bytes, no whole segment header` };
    if (seg.readUInt32LE(IDX_S.magic) !== IDX_SEGMENT_MAGIC || crc32(seg.subarray(0, IDX_S.crc)) !== seg.readUInt32LE(IDX_S.crc))
      return { state: 'damaged', reason: 'segment header checksum mismatch' };
    const bodyLen = Number(seg.readBigUInt64LE(IDX_S.bodyLen));
    const expected = headerLen + IDX_SEGMENT_HEADER_LEN + bodyLen;
    if (size < expected) return { state: 'damaged', reason: `cut short: ${size} bytes of ${expected}` };
    if (size !== expected) return { state: 'damaged', reason: `${size - expected} bytes after its one segment` };
    if (verify === 'full' && crc32(readAt(fd, bodyLen, headerLen + IDX_SEGMENT_HEADER_LEN)) !== seg.readUInt32LE(IDX_S.bodyCrc))
      return { state: 'damaged', reason: 'body checksum mismatch' };
  } finally {
    closeSync(fd);
  }
  if (!(h.readUInt32LE(IDX_H.flags) & IDX_FLAG_COMPLETE)) return { state: 'stale', reason: 'not marked complete (the index of a file that was still open)' };
  const fields = h.readUInt32LE(IDX_H.fields);
  if (fields !== fieldBits(want.fields)) return { state: 'stale', reason: `built with fields ${fieldNames(fields)}, the config asks for ${fieldNames(fieldBits(want.fields))}` };
  const block = h.readUInt32LE(IDX_H.blockSize);
  if (block !== want.blockSizeBytes) return { state: 'stale', reason: `built with blocks of ${block} bytes, the config asks for ${want.blockSizeBytes}` };
  const offHi = Number(seg.readBigUInt64LE(IDX_S.offHi));
  const pcap = pcapFacts(pcapPath, offHi);
  if (h.readBigUInt64LE(IDX_H.pcapFirstNs) !== pcap.firstNs) return { state: 'stale', reason: 'built for another file of the same name (first timestamps differ)' };
  if (offHi > pcap.size || pcap.recordAt) return { state: 'stale', reason: `covers ${offHi} bytes of the ${pcap.size}-byte pcap file` };
  return { state: 'current', indexBytes: size };
}

/** One line for a person: why the file is (re)indexed. */
export function describeState(s: IndexState): string {
  switch (s.state) {
    case 'current':
      return 'up to date';
    case 'missing':
      return 'no index';
    case 'damaged':
      return `damaged index (${s.reason})`;
    case 'version':
      return `index format version ${s.found}, this qe-packets reads version ${s.expected}`;
    case 'stale':
      return `index out of date (${s.reason})`;
  }
}
