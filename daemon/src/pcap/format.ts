// The classic pcap file format: the one on-disk type every part of Qe-Packets reads or writes.
// Kept free of I/O so that the store, the tests, the generator and the benchmarks share it.
// The numbers and the record rules are those of daemon/native/pcap-format.h, which the helpers
// use; test/pcap-format.test.ts fails when the two drift apart.

export const MAGIC_MICRO = 0xa1b2c3d4;
export const MAGIC_NANO = 0xa1b23c4d;
export const GLOBAL_HEADER_LEN = 24;
export const RECORD_HEADER_LEN = 16;
export const LINKTYPE_MASK = 0x0fffffff;
export const LINKTYPE_ETHERNET = 1;
export const NS_PER_S = 1_000_000_000;
/** The last instant a pcap record can hold (unsigned 32-bit seconds: 2106-02-07T06:28:15Z). */
export const MAX_TS_NS = 0xffffffffn * 1_000_000_000n + 999_999_999n;
/**
 * The helper starts a new file when a record is more than this before or after the file's first
 * (the time in its name); a record of a crashed file dated outside [name - slack, max(name, last
 * write) + slack] is stale data (blocks of a deleted file), not a record.
 */
export const CLOCK_SLACK_NS = 86_400n * 1_000_000_000n;

export interface GlobalHeader {
  nanos: boolean;
  littleEndian: boolean;
  versionMajor: number;
  versionMinor: number;
  snaplen: number;
  linktype: number;
}

export interface RecordHeader {
  /** Timestamp in nanoseconds since the epoch (microsecond files are scaled up). */
  tsNs: bigint;
  caplen: number;
  origlen: number;
}

export interface PcapRecord extends RecordHeader {
  data: Buffer;
  /** Offset of the record header in the buffer it was read from. */
  offset: number;
}

export class PcapFormatError extends Error {}

/**
 * The largest plausible record: a reader takes a caplen up to the file's snaplen, but never less
 * than CAPLEN_FLOOR (libpcap's MAXIMUM_SNAPLEN: libpcap and Wireshark take records that long
 * whatever the header says, and it is the largest snaplen the helper writes) and never more than
 * CAPLEN_CEILING (no link carries a bigger frame; a longer length is garbage).
 */
export const CAPLEN_FLOOR = 262144;
export const CAPLEN_CEILING = 16 * 1024 * 1024;

export function maxCaplen(snaplen: number): number {
  return Math.min(Math.max(snaplen, CAPLEN_FLOOR), CAPLEN_CEILING);
}

/** What is wrong with a record, or undefined when it is valid (every record the helper writes is). */
export function recordProblem(r: { frac: number; caplen: number; origlen: number }, nanos: boolean): string | undefined {
  if (r.frac >= (nanos ? NS_PER_S : 1_000_000)) return `a ${nanos ? 'nanosecond' : 'microsecond'} fraction of a second or more`;
  if (r.origlen === 0) return 'an original length of 0';
  if (r.caplen > r.origlen) return 'a captured length greater than the original length';
  if (r.origlen > CAPLEN_CEILING) return 'an original length beyond the largest plausible packet';
  return undefined;
}

/** The span a crashed file's records must lie in (see CLOCK_SLACK_NS). */
export function plausibleSpan(nameNs: bigint, writtenNs: bigint): { lo: bigint; hi: bigint } {
  return { lo: nameNs - CLOCK_SLACK_NS, hi: (writtenNs > nameNs ? writtenNs : nameNs) + CLOCK_SLACK_NS };
}

export function encodeGlobalHeader(h: { nanos?: boolean; snaplen: number; linktype: number }): Buffer {
  const b = Buffer.alloc(GLOBAL_HEADER_LEN);
  b.writeUInt32LE(h.nanos === false ? MAGIC_MICRO : MAGIC_NANO, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeUInt32LE(h.snaplen, 16);
  b.writeUInt32LE(h.linktype, 20);
  return b;
}

export function decodeGlobalHeader(b: Buffer): GlobalHeader {
  if (b.length < GLOBAL_HEADER_LEN) {
    throw new PcapFormatError(`pcap global header needs ${GLOBAL_HEADER_LEN} bytes, got ${b.length}`);
  }
  const le = b.readUInt32LE(0);
  const be = b.readUInt32BE(0);
  let littleEndian: boolean;
  let nanos: boolean;
  if (le === MAGIC_MICRO || le === MAGIC_NANO) {
    littleEndian = true;
    nanos = le === MAGIC_NANO;
  } else if (be === MAGIC_MICRO || be === MAGIC_NANO) {
    littleEndian = false;
    nanos = be === MAGIC_NANO;
  } else {
    throw new PcapFormatError(`not a pcap file (magic 0x${le.toString(16).padStart(8, '0')})`);
  }
  const u16 = (o: number) => (littleEndian ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (littleEndian ? b.readUInt32LE(o) : b.readUInt32BE(o));
  return {
    nanos,
    littleEndian,
    versionMajor: u16(4),
    versionMinor: u16(6),
    snaplen: u32(16),
    linktype: u32(20) & LINKTYPE_MASK,
  };
}

export function encodeRecordHeader(r: RecordHeader, nanos = true): Buffer {
  const b = Buffer.alloc(RECORD_HEADER_LEN);
  const unit = nanos ? 1_000_000_000n : 1_000_000n;
  const sec = r.tsNs / 1_000_000_000n;
  const frac = nanos ? r.tsNs % unit : (r.tsNs % 1_000_000_000n) / 1000n;
  b.writeUInt32LE(Number(sec), 0);
  b.writeUInt32LE(Number(frac), 4);
  b.writeUInt32LE(r.caplen, 8);
  b.writeUInt32LE(r.origlen, 12);
  return b;
}

export function decodeRecordHeader(b: Buffer, offset: number, g: GlobalHeader): RecordHeader {
  const u32 = (o: number) => (g.littleEndian ? b.readUInt32LE(offset + o) : b.readUInt32BE(offset + o));
  const sec = BigInt(u32(0));
  const frac = BigInt(u32(4));
  return {
    tsNs: sec * 1_000_000_000n + (g.nanos ? frac : frac * 1000n),
    caplen: u32(8),
    origlen: u32(12),
  };
}

/**
 * Walks the whole records of a buffer that starts right after the global header (or at `start`).
 * Stops at the first incomplete record; `end` in the result tells where the whole records end,
 * which is where a crashed file is cut.
 */
export function* records(b: Buffer, g: GlobalHeader, start = GLOBAL_HEADER_LEN): Generator<PcapRecord> {
  let off = start;
  while (off + RECORD_HEADER_LEN <= b.length) {
    const h = decodeRecordHeader(b, off, g);
    const dataStart = off + RECORD_HEADER_LEN;
    if (h.caplen > maxCaplen(g.snaplen) || dataStart + h.caplen > b.length) return;
    yield { ...h, data: b.subarray(dataStart, dataStart + h.caplen), offset: off };
    off = dataStart + h.caplen;
  }
}

/** Parses a whole pcap file held in memory (tests and small files; the store streams). */
export function parsePcap(b: Buffer): { header: GlobalHeader; records: PcapRecord[]; wholeEnd: number } {
  const header = decodeGlobalHeader(b);
  const out: PcapRecord[] = [];
  let wholeEnd = GLOBAL_HEADER_LEN;
  for (const r of records(b, header)) {
    out.push(r);
    wholeEnd = r.offset + RECORD_HEADER_LEN + r.caplen;
  }
  return { header, records: out, wholeEnd };
}

/** Builds a whole pcap file in memory from records (tests, generator). */
export function buildPcap(
  recs: Iterable<{ tsNs: bigint; data: Buffer; origlen?: number }>,
  opts: { nanos?: boolean; snaplen?: number; linktype?: number } = {},
): Buffer {
  const nanos = opts.nanos !== false;
  const parts: Buffer[] = [
    encodeGlobalHeader({ nanos, snaplen: opts.snaplen ?? 262144, linktype: opts.linktype ?? LINKTYPE_ETHERNET }),
  ];
  for (const r of recs) {
    parts.push(encodeRecordHeader({ tsNs: r.tsNs, caplen: r.data.length, origlen: r.origlen ?? r.data.length }, nanos));
    parts.push(r.data);
  }
  return Buffer.concat(parts);
}

/**
 * Walks the whole records of `b` like `records`, but only counts them: no timestamps or objects
 * per record, so files of tens of millions of packets (benchmarks, repair) scan at memory speed.
 * `end` is where the whole records end, as `records` defines it.
 */
export function scanRecords(
  b: Buffer,
  g: GlobalHeader,
  start = GLOBAL_HEADER_LEN,
): { count: number; dataBytes: number; end: number } {
  const limit = maxCaplen(g.snaplen);
  let off = start;
  let count = 0;
  let dataBytes = 0;
  while (off + RECORD_HEADER_LEN <= b.length) {
    const caplen = g.littleEndian ? b.readUInt32LE(off + 8) : b.readUInt32BE(off + 8);
    const next = off + RECORD_HEADER_LEN + caplen;
    if (caplen > limit || next > b.length) break;
    count++;
    dataBytes += caplen;
    off = next;
  }
  return { count, dataBytes, end: off };
}
