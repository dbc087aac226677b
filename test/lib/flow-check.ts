// Flow tables in the tests: the reader's decoder (daemon/src/flows/format.ts) with the raw checks a
// reader does not make (reserved and unused bytes 0), records in a shape that holds every byte of
// the record; the reader's merge of a flow's records; and a reference that counts the flows of a
// pcap from first principles (its own frame parser, written from docs/INDEX.md "Flow table", not
// from the native builder), so the builder is held to the format and the rules rather than to its code.
import {
  FLOW_FLAG_COMPLETE,
  FLOW_R,
  FLOW_RF,
  FLOW_SEGMENT_HEADER_LEN,
  FLOW_VERSION,
  decodeFlowTable as decodeTable,
  type FlowRecord as StoredRecord,
} from '../../daemon/src/flows/format.js';
import { icmpPorts } from '../../daemon/src/flows/community-id.js';
import type { PcapRecord } from '../../daemon/src/pcap/format.js';

export const FLOW = { VERSION: FLOW_VERSION, FLAG_COMPLETE: FLOW_FLAG_COMPLETE, RF_RTT: FLOW_RF.rtt, RF_ICMP: FLOW_RF.icmp, RF_FRAGMENTS: FLOW_RF.fragments };
const F = (name: string): number => (FLOW as Record<string, number>)[name]!;

/** A record with all three VLAN slots and both addresses as their 16 bytes (hex), as stored. */
export interface FlowRecord {
  ipVersion: number;
  proto: number;
  nvlan: number;
  flags: number;
  tcpFlagsFwd: number;
  tcpFlagsRev: number;
  sport: number;
  dport: number;
  vlan: number[];
  src: string;
  dst: string;
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
  rttUs: number;
}

export interface FlowSegment {
  offLo: number;
  offHi: number;
  packets: number;
  firstNs: bigint;
  lastNs: bigint;
  records: FlowRecord[];
}

export interface FlowTable {
  version: number;
  flags: number;
  linktype: number;
  builder: number;
  pcapFirstNs: bigint;
  segments: FlowSegment[];
}

const pad16 = (b: Buffer) => Buffer.concat([b, Buffer.alloc(16 - b.length)]).toString('hex');

function mine(r: StoredRecord): FlowRecord {
  const { ipVersion, proto, flags, tcpFlagsFwd, tcpFlagsRev, sport, dport, firstNs, lastNs, bytes, bytesRev, packets, packetsRev, syn, synack, fin, rst, rttUs } = r;
  return {
    ipVersion,
    proto,
    nvlan: r.vlan.length,
    flags,
    tcpFlagsFwd,
    tcpFlagsRev,
    sport,
    dport,
    vlan: [...r.vlan, 0, 0, 0].slice(0, 3),
    src: pad16(r.src),
    dst: pad16(r.dst),
    firstNs,
    lastNs,
    bytes,
    bytesRev,
    packets,
    packetsRev,
    syn,
    synack,
    fin,
    rst,
    rttUs,
  };
}

/** The bytes of a record the decoder does not look at must be 0: what a later version may use.
 *  Returns the record's length (docs/INDEX.md: 88 bytes, 112 for IPv6). */
function rawChecks(b: Buffer, at: number): number {
  const nvlan = b[at + FLOW_R.nvlan]!;
  const version = b[at + FLOW_R.ipVersion]!;
  const alen = version === 6 ? 16 : 4;
  const len = FLOW_R.src + 2 * alen + 64;
  const fail = (what: string) => {
    throw new Error(`record at ${at}: ${what}`);
  };
  if (![0, 4, 6].includes(version)) fail(`ip_version ${version}`);
  if (nvlan > 3) fail(`nvlan ${nvlan}`);
  if (b.readUInt32LE(at + len - 4) !== 0) fail('reserved field not 0');
  for (let i = nvlan; i < 3; i++) if (b.readUInt16LE(at + FLOW_R.vlan + 2 * i) !== 0) fail(`unused VLAN slot ${i} not 0`);
  if (version === 0 && b.subarray(at + FLOW_R.src, at + FLOW_R.src + 2 * alen).some((x) => x !== 0)) fail('a non-IP record has addresses');
  return len;
}

/** A flow table through the reader's decoder; every segment must pass unless `torn` allows a torn last one. */
export function decodeFlowTable(b: Buffer, o: { torn?: boolean } = {}): FlowTable {
  const t = decodeTable(b, 'the table under test');
  if (t.droppedSegments && !o.torn) throw new Error('the last segment fails its checks');
  for (const { segment } of t.segments) for (let i = 0, at = segment.at + FLOW_SEGMENT_HEADER_LEN; i < segment.nrecords; i++) at += rawChecks(b, at);
  return {
    version: t.header.version,
    flags: t.header.flags,
    linktype: t.header.linktype,
    builder: t.header.builder,
    pcapFirstNs: t.header.pcapFirstNs,
    segments: t.segments.map(({ segment: s, records }) => ({ offLo: s.offLo, offHi: s.offHi, packets: s.packets, firstNs: s.firstNs, lastNs: s.lastNs, records: records.map(mine) })),
  };
}

/** What identifies a flow's records within one file (its orientation is the file's). */
export const flowId = (r: FlowRecord): string =>
  `${r.ipVersion}/${r.proto}/${r.vlan.slice(0, r.nvlan).join('.')}/${r.src}:${r.sport}>${r.dst}:${r.dport}/${r.flags & F('RF_ICMP')}`;

/** The reader's merge (flow-format.h): one record per flow, in the order of its first record. */
export function mergeRecords(recs: FlowRecord[]): FlowRecord[] {
  const out = new Map<string, FlowRecord>();
  for (const r of recs) {
    const m = out.get(flowId(r));
    if (!m) {
      out.set(flowId(r), { ...r, vlan: [...r.vlan] });
      continue;
    }
    m.firstNs = r.firstNs < m.firstNs ? r.firstNs : m.firstNs;
    m.lastNs = r.lastNs > m.lastNs ? r.lastNs : m.lastNs;
    m.bytes += r.bytes;
    m.bytesRev += r.bytesRev;
    m.packets += r.packets;
    m.packetsRev += r.packetsRev;
    m.syn += r.syn;
    m.synack += r.synack;
    m.fin += r.fin;
    m.rst += r.rst;
    m.tcpFlagsFwd |= r.tcpFlagsFwd;
    m.tcpFlagsRev |= r.tcpFlagsRev;
    if (!(m.flags & F('RF_RTT')) && r.flags & F('RF_RTT')) m.rttUs = r.rttUs;
    m.flags |= r.flags;
  }
  return [...out.values()];
}

// ---- the reference: a frame's outer headers, as docs/INDEX.md says flows are keyed ----

interface Outer {
  ethertype: number;
  vlans: number[];
  ip?: {
    version: number;
    proto: number;
    src: Buffer;
    dst: Buffer;
    frag: 'none' | 'first' | 'later';
    fragKey: string;
    ports?: [number, number];
    tcpFlags?: number;
    icmp?: [number, number];
  };
}

const TAGS = new Set([0x8100, 0x88a8, 0x9100, 0x9200]);
const IPV6_EXT = new Set([0, 43, 60, 135, 139, 140]);

function outerOf(d: Buffer): Outer {
  const o: Outer = { ethertype: 0, vlans: [] };
  if (d.length < 14) return o;
  let et = d.readUInt16BE(12);
  if (et < 0x600) return o; // an 802.3 length: LLC follows
  let p = 14;
  for (;;) {
    o.ethertype = et;
    if (TAGS.has(et)) {
      if (o.vlans.length === 8) return o;
      if (p + 2 <= d.length) o.vlans.push(d.readUInt16BE(p) & 0xfff);
      if (p + 4 > d.length) return o;
      et = d.readUInt16BE(p + 2);
      p += 4;
      continue;
    }
    if (et === 0x8847 || et === 0x8848) {
      for (let i = 0; ; i++) {
        if (i === 16 || p + 4 > d.length) return o;
        const bottom = d[p + 2]! & 1;
        p += 4;
        if (bottom) break;
      }
      break;
    }
    if (et === 0x0800 || et === 0x86dd) break;
    return o; // ARP, LLDP, ...: counted per EtherType
  }
  if (p >= d.length) return o;
  const v = d[p]! >> 4;
  if (v === 4 && p + 20 <= d.length) {
    const ihl = (d[p]! & 0xf) * 4;
    const tot = d.readUInt16BE(p + 2);
    const end = tot >= ihl && p + tot <= d.length ? p + tot : d.length;
    const fo = d.readUInt16BE(p + 6);
    const proto = d[p + 9]!;
    const src = d.subarray(p + 12, p + 16);
    const dst = d.subarray(p + 16, p + 20);
    const frag = (fo & 0x1fff) !== 0 ? 'later' : fo & 0x2000 ? 'first' : 'none';
    const ip: NonNullable<Outer['ip']> = { version: 4, proto, src, dst, frag, fragKey: `4/${proto}/${d.readUInt16BE(p + 4)}/${src.toString('hex')}/${dst.toString('hex')}` };
    o.ip = ip;
    if (frag !== 'later' && ihl >= 20 && p + ihl <= end) l4(d, p + ihl, end, ip);
  } else if (v === 6 && p + 40 <= d.length) {
    const plen = d.readUInt16BE(p + 4);
    const end = plen && p + 40 + plen <= d.length ? p + 40 + plen : d.length;
    const src = d.subarray(p + 8, p + 24);
    const dst = d.subarray(p + 24, p + 40);
    const ip: NonNullable<Outer['ip']> = { version: 6, proto: 0, src, dst, frag: 'none', fragKey: '' };
    o.ip = ip;
    let nh = d[p + 6]!;
    let q = p + 40;
    for (let i = 0; ; i++) {
      if (i === 16) {
        ip.proto = nh;
        break;
      }
      if (IPV6_EXT.has(nh) || nh === 51) {
        if (q + 8 > end) {
          ip.proto = nh;
          break;
        }
        const len = nh === 51 ? (d[q + 1]! + 2) * 4 : (d[q + 1]! + 1) * 8;
        nh = d[q]!;
        if (q + len > end) {
          ip.proto = nh;
          break;
        }
        q += len;
      } else if (nh === 44) {
        if (q + 8 > end) {
          ip.proto = nh;
          break;
        }
        const off = d.readUInt16BE(q + 2) & 0xfff8;
        const more = d.readUInt16BE(q + 2) & 1;
        nh = d[q]!;
        ip.fragKey = `6/${nh}/${d.readUInt32BE(q + 4)}/${src.toString('hex')}/${dst.toString('hex')}`;
        if (off) {
          ip.frag = 'later';
          ip.proto = nh;
          break;
        }
        if (more) ip.frag = 'first';
        q += 8;
      } else {
        ip.proto = nh;
        l4(d, q, end, ip);
        break;
      }
    }
  }
  return o;
}

function l4(d: Buffer, q: number, end: number, ip: NonNullable<Outer['ip']>): void {
  if (ip.proto === 6 || ip.proto === 17 || ip.proto === 132) {
    if (q + 4 <= end) ip.ports = [d.readUInt16BE(q), d.readUInt16BE(q + 2)];
    if (ip.proto === 6 && q + 14 <= end) ip.tcpFlags = d[q + 13]!;
  } else if ((ip.proto === 1 && ip.version === 4) || (ip.proto === 58 && ip.version === 6)) {
    if (q + 2 <= end) ip.icmp = [d[q]!, d[q + 1]!];
  }
}

/**
 * The flow records of a file's records, one per flow in the order of its first packet, counted
 * from the packets by the rules of flow-format.h.
 */
export function referenceFlows(recs: Iterable<Pick<PcapRecord, 'tsNs' | 'origlen' | 'data'>>): FlowRecord[] {
  const flows = new Map<string, FlowRecord & { srcEnd: string; synDir?: number; synNs?: bigint; rttKnown?: boolean }>();
  const firstPorts = new Map<string, [number, number]>();
  for (const r of recs) {
    const o = outerOf(r.data);
    const vlan = [...o.vlans.slice(0, 3), 0, 0, 0].slice(0, 3);
    const nvlan = Math.min(o.vlans.length, 3);
    let key: string;
    let sender = '';
    let fresh: Partial<FlowRecord> = {};
    let tcpFlags: number | undefined;
    let frag = false;
    if (o.ip) {
      const ip = o.ip;
      let ports: [number, number] = [0, 0];
      let icmp: [number, number] | undefined;
      if (ip.frag === 'later') {
        frag = true;
        ports = firstPorts.get(ip.fragKey) ?? [0, 0];
      } else {
        if (ip.ports && ip.ports.length === 2 && ip.ports[1] !== undefined) {
          ports = ip.ports;
          tcpFlags = ip.tcpFlags;
        } else if (ip.icmp) {
          icmp = ip.icmp;
          // Keyed as the Community ID maps ICMP to ports (the reader's implementation, held to the spec).
          const m = icmpPorts(ip.version === 4 ? 1 : 58, ip.icmp[0], ip.icmp[1]);
          ports = [m.sport, m.dport];
        }
        if (ip.frag === 'first') {
          frag = true;
          firstPorts.set(ip.fragKey, ports);
        }
      }
      const a = `${pad16(ip.src)}:${ports[0]}`;
      const b = `${pad16(ip.dst)}:${ports[1]}`;
      sender = a;
      key = `ip/${ip.version}/${ip.proto}/${vlan.slice(0, nvlan).join('.')}/${[a, b].sort().join('|')}`;
      fresh = {
        ipVersion: ip.version,
        proto: ip.proto,
        flags: icmp ? F('RF_ICMP') : 0,
        sport: icmp ? icmp[0] : ports[0],
        dport: icmp ? icmp[1] : ports[1],
        src: pad16(ip.src),
        dst: pad16(ip.dst),
      };
    } else {
      key = `eth/${o.ethertype}/${vlan.slice(0, nvlan).join('.')}`;
      fresh = { ipVersion: 0, proto: 0, flags: 0, sport: o.ethertype, dport: 0, src: '0'.repeat(32), dst: '0'.repeat(32) };
    }
    let f = flows.get(key);
    if (!f) {
      f = {
        ...(fresh as FlowRecord),
        nvlan,
        vlan,
        tcpFlagsFwd: 0,
        tcpFlagsRev: 0,
        firstNs: r.tsNs,
        lastNs: r.tsNs,
        bytes: 0n,
        bytesRev: 0n,
        packets: 0,
        packetsRev: 0,
        syn: 0,
        synack: 0,
        fin: 0,
        rst: 0,
        rttUs: 0,
        srcEnd: sender,
      };
      flows.set(key, f);
    }
    const rev = sender !== f.srcEnd;
    if (r.tsNs < f.firstNs) f.firstNs = r.tsNs;
    if (r.tsNs > f.lastNs) f.lastNs = r.tsNs;
    if (rev) {
      f.packetsRev++;
      f.bytesRev += BigInt(r.origlen);
    } else {
      f.packets++;
      f.bytes += BigInt(r.origlen);
    }
    if (frag) f.flags |= F('RF_FRAGMENTS');
    if (tcpFlags !== undefined) {
      if (rev) f.tcpFlagsRev |= tcpFlags;
      else f.tcpFlagsFwd |= tcpFlags;
      const syn = tcpFlags & 0x02, ack = tcpFlags & 0x10;
      const dir = rev ? 1 : 0;
      if (syn && !ack) {
        f.syn++;
        if (f.synDir === undefined) {
          f.synDir = dir;
          f.synNs = r.tsNs;
        }
      }
      if (syn && ack) {
        f.synack++;
        if (!f.rttKnown && f.synDir !== undefined && f.synDir !== dir) {
          f.rttKnown = true;
          f.rttUs = r.tsNs > f.synNs! ? Number((r.tsNs - f.synNs!) / 1000n) : 0;
          f.flags |= F('RF_RTT');
        }
      }
      if (tcpFlags & 0x01) f.fin++;
      if (tcpFlags & 0x04) f.rst++;
    }
  }
  return [...flows.values()].map(({ srcEnd: _s, synDir: _d, synNs: _n, rttKnown: _k, ...rec }) => rec);
}
