// Merging flow records into flows. A flow that spans flushes has one record per segment of its
// open file's table, and one per file once it spans files; the records of one flow (same
// interface, VLAN stack, IP version, protocol and unordered pair of ends) become one: counts
// summed, TCP flags ORed, the earliest first and latest last time, the round trip of the earliest
// record that measured one. `src` is the end that sent the flow's first packet: a record whose
// first packet came from the other end is swapped before it is added.
//
// A query over a store merges millions of records: tables are merged straight from their bytes
// (addBody), building an object only for each new flow.
import { FLOW_MAX_VLAN, FLOW_R, FLOW_RECORD_LEN, FLOW_RF, decodeFlowRecord, type FlowRecord } from './format.js';

export interface Flow extends FlowRecord {
  iface: string;
  /** Records merged into it. */
  records: number;
  /** first_ns of the record the round trip came from (the earliest that measured one). */
  rttFromNs: bigint | undefined;
}

/** A record seen from its other end: src and dst, and each per-direction figure, exchanged. */
export function swapped<T extends FlowRecord>(r: T): T {
  return {
    ...r,
    src: r.dst,
    dst: r.src,
    sport: r.dport,
    dport: r.sport,
    packets: r.packetsRev,
    packetsRev: r.packets,
    bytes: r.bytesRev,
    bytesRev: r.bytes,
    tcpFlagsFwd: r.tcpFlagsRev,
    tcpFlagsRev: r.tcpFlagsFwd,
  };
}

/** swapped(), in place. */
function turn(m: FlowRecord): void {
  [m.src, m.dst, m.sport, m.dport] = [m.dst, m.src, m.dport, m.sport];
  [m.packets, m.packetsRev, m.bytes, m.bytesRev] = [m.packetsRev, m.packets, m.bytesRev, m.bytes];
  [m.tcpFlagsFwd, m.tcpFlagsRev] = [m.tcpFlagsRev, m.tcpFlagsFwd];
}

// A key is a short string of 16-bit characters: version and protocol, VLAN count and slots, then
// the two ends (address words, port) smaller first, so both orientations give one key. One
// String.fromCharCode per record: a query keys millions of them.
const words: number[] = [];

function keyOf(iface: string, head: number, nvlan: number, v0: number, v1: number, v2: number, sb: Buffer, so: number, sport: number, db: Buffer, dof: number, dport: number): string {
  const ipVersion = head & 0xff;
  const n = ipVersion === 4 ? 2 : ipVersion === 6 ? 8 : 0;
  words.length = 0;
  words.push(head, nvlan, v0, v1, v2);
  // Non-IP records are keyed by EtherType (sport) and VLAN stack only: there are no ends.
  if (n === 0) words.push(sport);
  else {
    let order = 0;
    for (let i = 0; i < n && order === 0; i++) {
      const x = sb.readUInt16BE(so + 2 * i);
      const y = db.readUInt16BE(dof + 2 * i);
      order = x < y ? -1 : x > y ? 1 : 0;
    }
    if (order === 0) order = sport > dport ? 1 : -1;
    const [fb, fo, fp, lb, lo, lp] = order < 0 ? [sb, so, sport, db, dof, dport] : [db, dof, dport, sb, so, sport];
    for (let i = 0; i < n; i++) words.push(fb.readUInt16BE(fo + 2 * i));
    words.push(fp);
    for (let i = 0; i < n; i++) words.push(lb.readUInt16BE(lo + 2 * i));
    words.push(lp);
  }
  return `${iface}\0${String.fromCharCode.apply(null, words)}`;
}

/** The identity of a flow, the same for its records in either orientation. */
export function flowKey(iface: string, r: FlowRecord): string {
  return keyOf(iface, r.ipVersion | (r.proto << 8), r.vlan.length, r.vlan[0] ?? 0, r.vlan[1] ?? 0, r.vlan[2] ?? 0, r.src, 0, r.sport, r.dst, 0, r.dport);
}

/** flowKey of the record at `o` of a table body, from its bytes. */
export function rawFlowKey(iface: string, b: Buffer, o: number): string {
  return keyOf(
    iface, b[o + FLOW_R.ipVersion]! | (b[o + FLOW_R.proto]! << 8), Math.min(b[o + FLOW_R.nvlan]!, FLOW_MAX_VLAN),
    b.readUInt16LE(o + FLOW_R.vlan), b.readUInt16LE(o + FLOW_R.vlan + 2), b.readUInt16LE(o + FLOW_R.vlan + 4),
    b, o + FLOW_R.src, b.readUInt16LE(o + FLOW_R.sport), b, o + FLOW_R.dst, b.readUInt16LE(o + FLOW_R.dport),
  );
}

function newFlow(iface: string, r: FlowRecord): Flow {
  // One literal of one shape: a spread with extra keys makes slow dictionary-mode objects.
  return {
    iface, ipVersion: r.ipVersion, proto: r.proto, flags: r.flags, tcpFlagsFwd: r.tcpFlagsFwd, tcpFlagsRev: r.tcpFlagsRev, sport: r.sport, dport: r.dport, vlan: r.vlan,
    src: r.src, dst: r.dst, firstNs: r.firstNs, lastNs: r.lastNs, bytes: r.bytes, bytesRev: r.bytesRev, packets: r.packets, packetsRev: r.packetsRev,
    syn: r.syn, synack: r.synack, fin: r.fin, rst: r.rst, rttUs: r.rttUs, records: 1, rttFromNs: r.flags & FLOW_RF.rtt ? r.firstNs : undefined,
  };
}

const u64 = (b: Buffer, o: number) => b.readBigUInt64LE(o);

export class FlowMerger {
  readonly flows = new Map<string, Flow>();

  add(iface: string, r: FlowRecord): void {
    const key = flowKey(iface, r);
    const m = this.flows.get(key);
    if (!m) this.flows.set(key, newFlow(iface, r));
    else this.merge(m, r.sport === m.sport && r.src.equals(m.src), r.firstNs, r.lastNs, r.packets, r.packetsRev, r.bytes, r.bytesRev, r.tcpFlagsFwd, r.tcpFlagsRev, r.syn, r.synack, r.fin, r.rst, r.flags, r.rttUs);
  }

  /** Every record of a table segment's body (format.ts FlowTableSegment.body). */
  addBody(iface: string, b: Buffer): void {
    for (let o = 0; o < b.length; o += FLOW_RECORD_LEN) {
      const key = rawFlowKey(iface, b, o);
      const m = this.flows.get(key);
      if (!m) {
        this.flows.set(key, newFlow(iface, decodeFlowRecord(b, o)));
        continue;
      }
      const srcAt = o + FLOW_R.src;
      const same = b.readUInt16LE(o + FLOW_R.sport) === m.sport && b.compare(m.src, 0, m.src.length, srcAt, srcAt + m.src.length) === 0;
      this.merge(
        m, same, u64(b, o + FLOW_R.firstNs), u64(b, o + FLOW_R.lastNs), b.readUInt32LE(o + FLOW_R.packets), b.readUInt32LE(o + FLOW_R.packetsRev),
        u64(b, o + FLOW_R.bytes), u64(b, o + FLOW_R.bytesRev), b[o + FLOW_R.tcpFlagsFwd]!, b[o + FLOW_R.tcpFlagsRev]!,
        b.readUInt32LE(o + FLOW_R.syn), b.readUInt32LE(o + FLOW_R.synack), b.readUInt32LE(o + FLOW_R.fin), b.readUInt32LE(o + FLOW_R.rst), b[o + FLOW_R.flags]!, b.readUInt32LE(o + FLOW_R.rttUs),
      );
    }
  }

  /** Adds a record's figures (`same`: it has the flow's orientation so far). */
  private merge(
    m: Flow, same: boolean, firstNs: bigint, lastNs: bigint, packets: number, packetsRev: number, bytes: bigint, bytesRev: bigint,
    flagsFwd: number, flagsRev: number, syn: number, synack: number, fin: number, rst: number, flags: number, rttUs: number,
  ): void {
    let rev = false;
    if (!same) {
      // A record that saw the flow's first packet decides its src: turn what is merged so far.
      if (firstNs < m.firstNs) turn(m);
      else rev = true;
    }
    m.records++;
    if (rev) {
      m.packets += packetsRev;
      m.packetsRev += packets;
      m.bytes += bytesRev;
      m.bytesRev += bytes;
      m.tcpFlagsFwd |= flagsRev;
      m.tcpFlagsRev |= flagsFwd;
    } else {
      m.packets += packets;
      m.packetsRev += packetsRev;
      m.bytes += bytes;
      m.bytesRev += bytesRev;
      m.tcpFlagsFwd |= flagsFwd;
      m.tcpFlagsRev |= flagsRev;
    }
    m.syn += syn;
    m.synack += synack;
    m.fin += fin;
    m.rst += rst;
    m.flags |= flags & ~FLOW_RF.rtt;
    if (firstNs < m.firstNs) m.firstNs = firstNs;
    if (lastNs > m.lastNs) m.lastNs = lastNs;
    if (flags & FLOW_RF.rtt && (m.rttFromNs === undefined || firstNs < m.rttFromNs)) {
      m.rttUs = rttUs;
      m.rttFromNs = firstNs;
      m.flags |= FLOW_RF.rtt;
    }
  }

  /** The flows, earliest first. */
  sorted(): Flow[] {
    return [...this.flows.values()].sort((a, b) => (a.firstNs < b.firstNs ? -1 : a.firstNs > b.firstNs ? 1 : 0));
  }
}
