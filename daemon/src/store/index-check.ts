// Whether a closed capture file's index can be kept as it is, or must be (re)built: the question
// `qe-packets index` and the daemon's background indexing ask of every file. An index is kept
// only when the reader trusts it (every checksum, its version, this very pcap file), it is
// complete, it was built with the fields and block size the config asks for, and it covers the
// file to its last whole record. Anything else is rebuilt, never trusted.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { IDX_FIELDS, IDX_H, IDX_VERSION, indexPathFor, type IndexField } from '../index/format.js';
import { IndexReader, IndexUnusable } from '../index/reader.js';
import { GLOBAL_HEADER_LEN, RECORD_HEADER_LEN, decodeGlobalHeader, decodeRecordHeader } from '../pcap/format.js';

export interface IndexWant {
  /** Empty: no index wanted. */
  fields: readonly IndexField[];
  blockSizeBytes: number;
  /** Flow tables wanted too (flows.enabled). */
  flows?: boolean;
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

/** Whether a whole record starts at `off` of a pcap file (the index would then not reach its end). */
function recordAt(pcapPath: string, off: number): boolean {
  const fd = openSync(pcapPath, 'r');
  try {
    const size = fstatSync(fd).size;
    if (off + RECORD_HEADER_LEN > size) return false;
    const head = Buffer.alloc(GLOBAL_HEADER_LEN);
    readSync(fd, head, 0, GLOBAL_HEADER_LEN, 0);
    const rec = Buffer.alloc(RECORD_HEADER_LEN);
    readSync(fd, rec, 0, RECORD_HEADER_LEN, off);
    return off + RECORD_HEADER_LEN + decodeRecordHeader(rec, 0, decodeGlobalHeader(head)).caplen <= size;
  } finally {
    closeSync(fd);
  }
}

/** The reader's message without the path it starts with and the consequence it ends with. */
function reasonOf(e: IndexUnusable, path: string): string {
  return e.message.replace(`${path}: `, '').replace(/: (the index is not used|not this file's index|the pcap file is scanned).*$/, '');
}

/** The version an index of another format version says it is (its other fields may be laid out otherwise). */
function versionOf(path: string): number {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(2);
    readSync(fd, b, 0, 2, IDX_H.version);
    return b.readUInt16LE(0);
  } finally {
    closeSync(fd);
  }
}

/**
 * The state of the index of a closed pcap file, by the reader's own checks (daemon/src/index/
 * reader.ts: what extraction trusts is what is kept here). Throws only when the pcap file itself
 * cannot be read.
 */
export function checkIndex(pcapPath: string, want: IndexWant, verify: IndexVerify = 'full'): IndexState {
  const path = indexPathFor(pcapPath);
  let reader: IndexReader;
  try {
    reader = IndexReader.open(path, pcapPath);
  } catch (e) {
    if (!(e instanceof IndexUnusable)) throw e;
    if (e.kind === 'missing') return { state: 'missing' };
    if (e.kind === 'version') return { state: 'version', found: versionOf(path), expected: IDX_VERSION };
    if (e.kind === 'mismatch') return { state: 'stale', reason: reasonOf(e, path) };
    return { state: 'damaged', reason: reasonOf(e, path) };
  }
  try {
    if (verify === 'full') reader.verify();
    if (!reader.complete) return { state: 'stale', reason: 'not marked complete (the index of a file that was still open)' };
    const bits = fieldBits([...reader.fields]);
    if (bits !== fieldBits(want.fields)) return { state: 'stale', reason: `built with fields ${fieldNames(bits)}, the config asks for ${fieldNames(fieldBits(want.fields))}` };
    if (reader.blockSize !== want.blockSizeBytes) return { state: 'stale', reason: `built with blocks of ${reader.blockSize} bytes, the config asks for ${want.blockSizeBytes}` };
    if (recordAt(pcapPath, reader.coveredEnd)) return { state: 'stale', reason: `covers ${reader.coveredEnd} bytes of the pcap file, which holds whole records past them` };
    return { state: 'current', indexBytes: reader.fileSize };
  } catch (e) {
    if (!(e instanceof IndexUnusable)) throw e;
    return { state: 'damaged', reason: reasonOf(e, path) };
  } finally {
    reader.close();
  }
}

/** One line for a person: why the file is (re)indexed. */
export function describeState(s: IndexState, what: 'index' | 'flow table' = 'index'): string {
  switch (s.state) {
    case 'current':
      return 'up to date';
    case 'missing':
      return `no ${what}`;
    case 'damaged':
      return `damaged ${what} (${s.reason})`;
    case 'version':
      return `${what} format version ${s.found}, this qe-packets reads version ${s.expected}`;
    case 'stale':
      return `${what} out of date (${s.reason})`;
  }
}
