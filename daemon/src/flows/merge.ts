// Merging flow records into flows. A flow that spans flushes has one record per segment of its
// open file's table, and one per file once it spans files; the records of one flow (same
// interface, VLAN stack, IP version, protocol and unordered pair of ends) become one: counts
// summed, TCP flags ORed, the earliest first and latest last time, the round trip of the earliest
// record that measured one. `src` is the end that sent the flow's first packet: a record whose
// first packet came from the other end is swapped before it is added.
import { FLOW_RF, type FlowRecord } from './format.js';

export interface Flow extends FlowRecord {
  iface: string;
  /** Records merged into it. */
  records: number;
  /** first_ns of the record the round trip came from (the earliest that measured one). */
  rttFromNs?: bigint;
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

function endText(addr: Buffer, port: number): string {
  // latin1: one character per byte, the cheapest string a Buffer makes (a key is built per record).
  return addr.toString('latin1') + String.fromCharCode(port >> 8, port & 0xff);
}

/** The identity of a flow, the same for its records in either orientation. */
export function flowKey(iface: string, r: FlowRecord): string {
  // Non-IP records are keyed by EtherType (sport) and VLAN stack only: there are no ends.
  let ends: string;
  if (r.ipVersion === 0) ends = `e${r.sport}`;
  else {
    const a = endText(r.src, r.sport);
    const b = endText(r.dst, r.dport);
    ends = a < b ? a + b : b + a;
  }
  return `${iface}\0${r.vlan.join('.')}\0${r.ipVersion}\0${r.proto}\0${ends}`;
}

/** swapped(), in place. */
function turn(m: FlowRecord): void {
  [m.src, m.dst, m.sport, m.dport] = [m.dst, m.src, m.dport, m.sport];
  [m.packets, m.packetsRev, m.bytes, m.bytesRev] = [m.packetsRev, m.packets, m.bytesRev, m.bytes];
  [m.tcpFlagsFwd, m.tcpFlagsRev] = [m.tcpFlagsRev, m.tcpFlagsFwd];
}

function sameOrientation(a: FlowRecord, b: FlowRecord): boolean {
  return a.sport === b.sport && a.src.equals(b.src);
}

export class FlowMerger {
  readonly flows = new Map<string, Flow>();

  add(iface: string, r: FlowRecord): void {
    const key = flowKey(iface, r);
    const m = this.flows.get(key);
    if (!m) {
      // Every flow object of one shape (rttFromNs always present): a query merges millions.
      this.flows.set(key, {
        iface, ipVersion: r.ipVersion, proto: r.proto, flags: r.flags, tcpFlagsFwd: r.tcpFlagsFwd, tcpFlagsRev: r.tcpFlagsRev, sport: r.sport, dport: r.dport, vlan: r.vlan,
        src: r.src, dst: r.dst, firstNs: r.firstNs, lastNs: r.lastNs, bytes: r.bytes, bytesRev: r.bytesRev, packets: r.packets, packetsRev: r.packetsRev,
        syn: r.syn, synack: r.synack, fin: r.fin, rst: r.rst, rttUs: r.rttUs, records: 1, rttFromNs: r.flags & FLOW_RF.rtt ? r.firstNs : undefined,
      });
      return;
    }
    let rev = false;
    if (!sameOrientation(m, r)) {
      if (r.firstNs < m.firstNs) {
        // The new record saw the flow's first packet: its src is the flow's. Turn what is merged so far.
        turn(m);
      } else rev = true;
    }
    const x = r;
    m.records++;
    if (rev) {
      m.packets += x.packetsRev;
      m.packetsRev += x.packets;
      m.bytes += x.bytesRev;
      m.bytesRev += x.bytes;
      m.tcpFlagsFwd |= x.tcpFlagsRev;
      m.tcpFlagsRev |= x.tcpFlagsFwd;
    } else {
      m.packets += x.packets;
      m.packetsRev += x.packetsRev;
      m.bytes += x.bytes;
      m.bytesRev += x.bytesRev;
      m.tcpFlagsFwd |= x.tcpFlagsFwd;
      m.tcpFlagsRev |= x.tcpFlagsRev;
    }
    m.syn += x.syn;
    m.synack += x.synack;
    m.fin += x.fin;
    m.rst += x.rst;
    m.flags |= x.flags & ~FLOW_RF.rtt;
    if (x.firstNs < m.firstNs) m.firstNs = x.firstNs;
    if (x.lastNs > m.lastNs) m.lastNs = x.lastNs;
    if (x.flags & FLOW_RF.rtt && (m.rttFromNs === undefined || x.firstNs < m.rttFromNs)) {
      m.rttUs = x.rttUs;
      m.rttFromNs = x.firstNs;
      m.flags |= FLOW_RF.rtt;
    }
  }

  /** The flows, earliest first. */
  sorted(): Flow[] {
    return [...this.flows.values()].sort((a, b) => (a.firstNs < b.firstNs ? -1 : a.firstNs > b.firstNs ? 1 : 0));
  }
}
