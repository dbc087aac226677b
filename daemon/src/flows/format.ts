// The on-disk format of a capture file's flow table (docs/INDEX.md, "Flow table"): the TypeScript
// copy of daemon/native/flow-format.h, held to it by test/flow-format.test.ts, and its decoder.
// Layout and meaning are described in the header; this module names the numbers and turns a
// table's bytes into records, trusting nothing that fails a checksum.
import { crc32 } from 'node:zlib';

export const FLOW_EXT = '.qeflow';
export const FLOW_TMP_EXT = '.tmp';

export const FLOW_MAGIC = Buffer.from('QEFLOW\r\n', 'latin1');
export const FLOW_VERSION = 2;
export const FLOW_HEADER_LEN = 64;
export const FLOW_SEGMENT_MAGIC = 0x574c4651;
export const FLOW_SEGMENT_HEADER_LEN = 64;
/** A record's length: IPv4 and non-IP records have 4-byte addresses, IPv6 ones 16 (flow-format.h). */
export const FLOW_RECORD_LEN_V4 = 88;
export const FLOW_RECORD_LEN_V6 = 112;
export const FLOW_RECORD_MAX = 112;
export const FLOW_TAIL_LEN = 64;
export const FLOW_MAX_VLAN = 3;

export const FLOW_FLAG_COMPLETE = 1;

/** Byte offsets in the file header. */
export const FLOW_H = {
  version: 8,
  headerLen: 10,
  flags: 12,
  linktype: 16,
  builder: 20,
  pcapFirstNs: 24,
  crc: 60,
} as const;

/** Byte offsets in a segment header. */
export const FLOW_S = {
  magic: 0,
  nrecords: 4,
  bodyLen: 8,
  offLo: 16,
  offHi: 24,
  packets: 32,
  firstNs: 40,
  lastNs: 48,
  bodyCrc: 56,
  crc: 60,
} as const;

/** Byte offsets in a record. */
export const FLOW_R = {
  ipVersion: 0,
  proto: 1,
  nvlan: 2,
  flags: 3,
  tcpFlagsFwd: 4,
  tcpFlagsRev: 5,
  sport: 6,
  dport: 8,
  vlan: 10,
  /** Then dst at src + the address length, then the tail (FLOW_T) at flowTailOff. */
  src: 16,
} as const;

/** Byte offsets in a record's tail, which starts at flowTailOff(ip_version). */
export const FLOW_T = {
  firstNs: 0,
  lastNs: 8,
  bytes: 16,
  bytesRev: 24,
  packets: 32,
  packetsRev: 36,
  syn: 40,
  synack: 44,
  fin: 48,
  rst: 52,
  rttUs: 56,
  reserved: 60,
} as const;

/** A record's address length (16 for IPv6, else 4), tail offset and length, from its first byte. */
export const flowAddrLen = (ipVersion: number): number => (ipVersion === 6 ? 16 : 4);
export const flowTailOff = (ipVersion: number): number => FLOW_R.src + 2 * flowAddrLen(ipVersion);
export const flowRecordLen = (ipVersion: number): number => flowTailOff(ipVersion) + FLOW_TAIL_LEN;

/** The records of a body, or -1 when one has an ip_version other than 0, 4 or 6 or the last does
 *  not end at the body's end: checked before a body is walked record by record. */
export function flowBodyRecords(body: Uint8Array): number {
  let n = 0;
  let o = 0;
  while (o < body.length) {
    const v = body[o + FLOW_R.ipVersion]!;
    if (v !== 0 && v !== 4 && v !== 6) return -1;
    o += flowRecordLen(v);
    n++;
  }
  return o === body.length ? n : -1;
}

/** Record flags. */
export const FLOW_RF = {
  rtt: 1,
  icmp: 2,
  fragments: 4,
} as const;

/** The flow table of a capture file (closed `X.pcap` or open `X.pcap.part`) is `<name>.qeflow`. */
export function flowPathFor(pcapPath: string): string {
  return pcapPath + FLOW_EXT;
}

/** One record as stored: `src` sent the flow's first packet in the file. */
export interface FlowRecord {
  /** 4, 6, or 0 for frames that are not IP (then `sport` is the EtherType). */
  ipVersion: number;
  proto: number;
  flags: number;
  tcpFlagsFwd: number;
  tcpFlagsRev: number;
  sport: number;
  dport: number;
  vlan: number[];
  /** 4 bytes for IPv4, 16 for IPv6, 0 for non-IP. */
  src: Buffer;
  dst: Buffer;
  firstNs: bigint;
  lastNs: bigint;
  bytes: bigint;
  bytesRev: bigint;
  packets: number;
  packetsRev: number;
  syn: number;
  synack: number;
  fin: number;
  rst: number;
  /** Microseconds, when `flags & FLOW_RF.rtt`. */
  rttUs: number;
}

export interface FlowHeader {
  version: number;
  headerLen: number;
  flags: number;
  linktype: number;
  builder: number;
  pcapFirstNs: bigint;
}

export interface FlowSegment {
  /** File offset of the segment header. */
  at: number;
  nrecords: number;
  bodyLen: number;
  offLo: number;
  offHi: number;
  packets: number;
  firstNs: bigint;
  lastNs: bigint;
  bodyCrc: number;
}

/** Why a table is not used: the file's packets are counted by reading them instead. */
export class FlowTableUnusable extends Error {
  constructor(
    readonly kind: 'missing' | 'version' | 'damaged' | 'mismatch',
    message: string,
  ) {
    super(message);
  }
}

/** A segment that passed its checks: its records' bytes, and (decoded on first use) the records. */
export interface FlowTableSegment {
  segment: FlowSegment;
  /** nrecords whole records (a view into the table). */
  body: Buffer;
  readonly records: FlowRecord[];
}

/** A decoded table: the segments that passed their checks, with their records. */
export interface FlowTable {
  header: FlowHeader;
  complete: boolean;
  segments: FlowTableSegment[];
  /** A torn last segment (crash, or a flush still being written) was left out. */
  droppedSegments: number;
  /** The pcap offset up to which the table answers; the packets past it are read. */
  coveredEnd: number;
}

/** What a table needs to know of its pcap file to trust that it is that file's. */
export interface PcapFacts {
  linktype: number;
  size: number;
  firstNs: bigint;
}

const PCAP_GLOBAL_HEADER_LEN = 24;

export function decodeFlowHeader(h: Buffer): FlowHeader {
  return {
    version: h.readUInt16LE(FLOW_H.version),
    headerLen: h.readUInt16LE(FLOW_H.headerLen),
    flags: h.readUInt32LE(FLOW_H.flags),
    linktype: h.readUInt32LE(FLOW_H.linktype),
    builder: h.readUInt32LE(FLOW_H.builder),
    pcapFirstNs: h.readBigUInt64LE(FLOW_H.pcapFirstNs),
  };
}

export function decodeFlowSegment(s: Buffer, at: number): FlowSegment {
  return {
    at,
    nrecords: s.readUInt32LE(FLOW_S.nrecords),
    bodyLen: Number(s.readBigUInt64LE(FLOW_S.bodyLen)),
    offLo: Number(s.readBigUInt64LE(FLOW_S.offLo)),
    offHi: Number(s.readBigUInt64LE(FLOW_S.offHi)),
    packets: Number(s.readBigUInt64LE(FLOW_S.packets)),
    firstNs: s.readBigUInt64LE(FLOW_S.firstNs),
    lastNs: s.readBigUInt64LE(FLOW_S.lastNs),
    bodyCrc: s.readUInt32LE(FLOW_S.bodyCrc),
  };
}

function lazySegment(segment: FlowSegment, body: Buffer): FlowTableSegment {
  let records: FlowRecord[] | undefined;
  return {
    segment,
    body,
    get records() {
      if (!records) {
        records = [];
        for (let o = 0; o < body.length; o += flowRecordLen(body[o]!)) records.push(decodeFlowRecord(body, o));
      }
      return records;
    },
  };
}

/** The earliest first_ns and latest last_ns of a segment's records, undefined when it has none. */
export function recordsSpan(body: Buffer): { firstNs: bigint; lastNs: bigint } | undefined {
  if (!body.length) return undefined;
  // Compared as (high, low) 32-bit halves: no BigInt per record.
  let fh = Infinity, fl = Infinity, lh = -1, ll = -1;
  const dv = new DataView(body.buffer, body.byteOffset, body.length);
  for (let o = 0; o < body.length; o += flowRecordLen(body[o]!)) {
    const t = o + flowTailOff(body[o]!);
    const ah = dv.getUint32(t + FLOW_T.firstNs + 4, true), al = dv.getUint32(t + FLOW_T.firstNs, true);
    if (ah < fh || (ah === fh && al < fl)) [fh, fl] = [ah, al];
    const bh = dv.getUint32(t + FLOW_T.lastNs + 4, true), bl = dv.getUint32(t + FLOW_T.lastNs, true);
    if (bh > lh || (bh === lh && bl > ll)) [lh, ll] = [bh, bl];
  }
  return { firstNs: (BigInt(fh) << 32n) | BigInt(fl), lastNs: (BigInt(lh) << 32n) | BigInt(ll) };
}

/** A record's bytes (what the builder writes; the merge adds decoded records through it). */
export function encodeFlowRecord(r: FlowRecord): Buffer {
  const b = Buffer.alloc(flowRecordLen(r.ipVersion));
  const a = flowAddrLen(r.ipVersion), t = flowTailOff(r.ipVersion);
  b[FLOW_R.ipVersion] = r.ipVersion;
  b[FLOW_R.proto] = r.proto;
  b[FLOW_R.nvlan] = r.vlan.length;
  b[FLOW_R.flags] = r.flags;
  b[FLOW_R.tcpFlagsFwd] = r.tcpFlagsFwd;
  b[FLOW_R.tcpFlagsRev] = r.tcpFlagsRev;
  b.writeUInt16LE(r.sport, FLOW_R.sport);
  b.writeUInt16LE(r.dport, FLOW_R.dport);
  r.vlan.forEach((v, i) => b.writeUInt16LE(v, FLOW_R.vlan + 2 * i));
  r.src.copy(b, FLOW_R.src, 0, a);
  r.dst.copy(b, FLOW_R.src + a, 0, a);
  b.writeBigUInt64LE(r.firstNs, t + FLOW_T.firstNs);
  b.writeBigUInt64LE(r.lastNs, t + FLOW_T.lastNs);
  b.writeBigUInt64LE(r.bytes, t + FLOW_T.bytes);
  b.writeBigUInt64LE(r.bytesRev, t + FLOW_T.bytesRev);
  b.writeUInt32LE(r.packets, t + FLOW_T.packets);
  b.writeUInt32LE(r.packetsRev, t + FLOW_T.packetsRev);
  b.writeUInt32LE(r.syn, t + FLOW_T.syn);
  b.writeUInt32LE(r.synack, t + FLOW_T.synack);
  b.writeUInt32LE(r.fin, t + FLOW_T.fin);
  b.writeUInt32LE(r.rst, t + FLOW_T.rst);
  b.writeUInt32LE(r.rttUs, t + FLOW_T.rttUs);
  return b;
}

export function decodeFlowRecord(b: Buffer, off = 0): FlowRecord {
  const ipVersion = b[off + FLOW_R.ipVersion]!;
  const alen = ipVersion === 4 ? 4 : ipVersion === 6 ? 16 : 0;
  const dst = off + FLOW_R.src + flowAddrLen(ipVersion);
  const t = off + flowTailOff(ipVersion);
  const nvlan = Math.min(b[off + FLOW_R.nvlan]!, FLOW_MAX_VLAN);
  const vlan: number[] = [];
  for (let i = 0; i < nvlan; i++) vlan.push(b.readUInt16LE(off + FLOW_R.vlan + 2 * i));
  return {
    ipVersion,
    proto: b[off + FLOW_R.proto]!,
    flags: b[off + FLOW_R.flags]!,
    tcpFlagsFwd: b[off + FLOW_R.tcpFlagsFwd]!,
    tcpFlagsRev: b[off + FLOW_R.tcpFlagsRev]!,
    sport: b.readUInt16LE(off + FLOW_R.sport),
    dport: b.readUInt16LE(off + FLOW_R.dport),
    vlan,
    // Views into the table's bytes, not copies: a query decodes millions of records.
    src: b.subarray(off + FLOW_R.src, off + FLOW_R.src + alen),
    dst: b.subarray(dst, dst + alen),
    firstNs: b.readBigUInt64LE(t + FLOW_T.firstNs),
    lastNs: b.readBigUInt64LE(t + FLOW_T.lastNs),
    bytes: b.readBigUInt64LE(t + FLOW_T.bytes),
    bytesRev: b.readBigUInt64LE(t + FLOW_T.bytesRev),
    packets: b.readUInt32LE(t + FLOW_T.packets),
    packetsRev: b.readUInt32LE(t + FLOW_T.packetsRev),
    syn: b.readUInt32LE(t + FLOW_T.syn),
    synack: b.readUInt32LE(t + FLOW_T.synack),
    fin: b.readUInt32LE(t + FLOW_T.fin),
    rst: b.readUInt32LE(t + FLOW_T.rst),
    rttUs: b.readUInt32LE(t + FLOW_T.rttUs),
  };
}

/**
 * Decodes a whole table held in `buf` (`name` for messages). With `pcap` (a store file's facts),
 * the table must be that file's and covers no more than the file holds; without it (the output of
 * `qe-index --flows-stdout`) it is taken as it is. Throws FlowTableUnusable naming the file, what
 * is wrong and what happens instead.
 */
export function decodeFlowTable(buf: Buffer, name: string, pcap?: PcapFacts): FlowTable {
  const fallback = pcap ? "its pcap file's packets are counted by reading them (qe-packets index --rebuild rebuilds it)" : 'the flow table is not used';
  const damaged = (why: string) => new FlowTableUnusable('damaged', `${name}: ${why}: ${fallback}`);
  if (buf.length < FLOW_HEADER_LEN) throw damaged(`${buf.length} bytes, shorter than the ${FLOW_HEADER_LEN}-byte header`);
  if (!buf.subarray(0, FLOW_MAGIC.length).equals(FLOW_MAGIC)) throw damaged(`bad magic ${buf.subarray(0, 8).toString('hex')}`);
  // The version is read before the CRC: a newer writer may lay out the header differently.
  const header = decodeFlowHeader(buf);
  if (header.version !== FLOW_VERSION) {
    throw new FlowTableUnusable('version', `${name}: flow table format version ${header.version}, this qe-packets reads version ${FLOW_VERSION}: ${fallback}`);
  }
  if (crc32(buf.subarray(0, FLOW_H.crc)) !== buf.readUInt32LE(FLOW_H.crc)) throw damaged('file header fails its checksum');
  if (header.headerLen < FLOW_HEADER_LEN) throw damaged(`header_len ${header.headerLen} < ${FLOW_HEADER_LEN}`);
  const complete = (header.flags & FLOW_FLAG_COMPLETE) !== 0;
  if (pcap) {
    if (pcap.linktype !== header.linktype) throw new FlowTableUnusable('mismatch', `${name}: flow table of link type ${header.linktype}, its pcap file has ${pcap.linktype}: not this file's table, ${fallback}`);
    if (pcap.firstNs !== header.pcapFirstNs) {
      throw new FlowTableUnusable('mismatch', `${name}: flow table of a pcap file whose first record is at ${header.pcapFirstNs} ns, the file starts at ${pcap.firstNs} ns: not this file's table, ${fallback}`);
    }
  }
  const segments: FlowTable['segments'] = [];
  let at = header.headerLen;
  let dropped = 0;
  let expectLo = PCAP_GLOBAL_HEADER_LEN;
  while (at < buf.length) {
    if (at + FLOW_SEGMENT_HEADER_LEN > buf.length) {
      dropped = 1; // a torn header
      break;
    }
    const s = buf.subarray(at, at + FLOW_SEGMENT_HEADER_LEN);
    const ok = s.readUInt32LE(FLOW_S.magic) === FLOW_SEGMENT_MAGIC && crc32(s.subarray(0, FLOW_S.crc)) === s.readUInt32LE(FLOW_S.crc);
    const seg = decodeFlowSegment(s, at);
    const end = at + FLOW_SEGMENT_HEADER_LEN + seg.bodyLen;
    // A header or body that fails, or a body cut short, is a torn write: only ever the last segment.
    if (!ok || end > buf.length || crc32(buf.subarray(at + FLOW_SEGMENT_HEADER_LEN, end)) !== seg.bodyCrc) {
      if (ok && end <= buf.length && end < buf.length) throw damaged(`segment at ${at} fails its body checksum and is not the last`);
      dropped = 1;
      break;
    }
    if (flowBodyRecords(buf.subarray(at + FLOW_SEGMENT_HEADER_LEN, end)) !== seg.nrecords) throw damaged(`segment at ${at}: body of ${seg.bodyLen} bytes is not its ${seg.nrecords} records`);
    if (seg.offLo !== expectLo || seg.offHi < seg.offLo) throw damaged(`segment at ${at} covers [${seg.offLo}, ${seg.offHi}), expected to start at ${expectLo}`);
    // A table may reach the disk before the packets it covers (an open file): what the pcap file
    // does not hold yet is not trusted, it is read when it is there.
    if (pcap && seg.offHi > pcap.size) {
      if (complete) throw new FlowTableUnusable('mismatch', `${name}: covers up to offset ${seg.offHi}, past the end of its pcap file (${pcap.size} bytes): not this file's table, ${fallback}`);
      dropped = 1;
      break;
    }
    const body = buf.subarray(at + FLOW_SEGMENT_HEADER_LEN, end);
    let packets = 0;
    const dv = new DataView(body.buffer, body.byteOffset, body.length);
    for (let o = 0; o < body.length; o += flowRecordLen(body[o]!)) {
      const t = o + flowTailOff(body[o]!);
      packets += dv.getUint32(t + FLOW_T.packets, true) + dv.getUint32(t + FLOW_T.packetsRev, true);
    }
    if (packets !== seg.packets) throw damaged(`segment at ${at}: its records hold ${packets} packets, its header says ${seg.packets}`);
    segments.push(lazySegment(seg, body));
    expectLo = seg.offHi;
    at = end;
  }
  if (complete && (segments.length !== 1 || dropped)) throw damaged(`marked complete but holds ${segments.length} whole segment(s)${dropped ? ' and a torn one' : ''}`);
  if (complete && pcap && segments[0]!.segment.offHi !== pcap.size) {
    throw new FlowTableUnusable('mismatch', `${name}: complete table of ${segments[0]!.segment.offHi} pcap bytes, its file has ${pcap.size}: not this file's table, ${fallback}`);
  }
  const coveredEnd = segments.length ? segments[segments.length - 1]!.segment.offHi : PCAP_GLOBAL_HEADER_LEN;
  return { header, complete, segments, droppedSegments: dropped, coveredEnd };
}
