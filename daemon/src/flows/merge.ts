// Merging flow records into flows. A flow that spans flushes has one record per segment of its
// open file's table, and one per file once it spans files; the records of one flow (same
// interface, VLAN stack, IP version, protocol and unordered pair of ends) become one: counts
// summed, TCP flags ORed, the earliest first and latest last time, the round trip of the earliest
// record that measured one. `src` is the end that sent the flow's first packet: a record whose
// first packet came from the other end is swapped before it is added.
//
// A query over a store merges millions of records: tables are merged straight from their bytes
// (addBody), building an object only for each new flow.
import { FLOW_MAX_VLAN, FLOW_R, FLOW_RECORD_LEN, FLOW_RF, decodeFlowRecord, encodeFlowRecord, type FlowRecord } from './format.js';

export interface Flow extends Omit<FlowRecord, 'bytes' | 'bytesRev'> {
  iface: string;
  /** Bytes as numbers: exact to 8 PiB, and no BigInt per record merged. */
  bytes: number;
  bytesRev: number;
  /** Records merged into it. */
  records: number;
  /** first_ns of the record the round trip came from (the earliest that measured one). */
  rttFromNs: bigint | undefined;
  /** firstNs and lastNs as 32-bit halves (high, low): compared per record without a BigInt. */
  fh: number;
  fl: number;
  lh: number;
  ll: number;
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
function turn(m: Flow): void {
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
  // One literal of one shape: a spread with extra keys makes slow dictionary-mode objects. The
  // addresses are copied: a view would keep the whole table it came from in memory.
  return {
    iface, ipVersion: r.ipVersion, proto: r.proto, flags: r.flags, tcpFlagsFwd: r.tcpFlagsFwd, tcpFlagsRev: r.tcpFlagsRev, sport: r.sport, dport: r.dport, vlan: r.vlan,
    src: Buffer.from(r.src), dst: Buffer.from(r.dst), firstNs: r.firstNs, lastNs: r.lastNs, bytes: Number(r.bytes), bytesRev: Number(r.bytesRev), packets: r.packets, packetsRev: r.packetsRev,
    syn: r.syn, synack: r.synack, fin: r.fin, rst: r.rst, rttUs: r.rttUs, records: 1, rttFromNs: r.flags & FLOW_RF.rtt ? r.firstNs : undefined,
    fh: Number(r.firstNs >> 32n), fl: Number(r.firstNs & 0xffffffffn), lh: Number(r.lastNs >> 32n), ll: Number(r.lastNs & 0xffffffffn),
  };
}

// The body being merged, as a DataView: its reads are cheaper than Buffer's checked ones.
let dv: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

/** A u64 field as a number (byte counts: exact far beyond any flow's). */
const u64n = (o: number) => dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 4294967296;
const before = (ah: number, al: number, bh: number, bl: number) => ah < bh || (ah === bh && al < bl);

/** Adds the record at `o` of `b` to flow `m` (`same`: it has the flow's orientation so far). */
function merge(m: Flow, same: boolean, b: Buffer, o: number): void {
  const fh = dv.getUint32(o + FLOW_R.firstNs + 4, true);
  const fl = dv.getUint32(o + FLOW_R.firstNs, true);
  const lh = dv.getUint32(o + FLOW_R.lastNs + 4, true);
  const ll = dv.getUint32(o + FLOW_R.lastNs, true);
  const earlier = before(fh, fl, m.fh, m.fl);
  let rev = false;
  if (!same) {
    // A record that saw the flow's first packet decides its src: turn what is merged so far.
    if (earlier) turn(m);
    else rev = true;
  }
  const packets = dv.getUint32(o + FLOW_R.packets, true);
  const packetsRev = dv.getUint32(o + FLOW_R.packetsRev, true);
  const bytes = u64n(o + FLOW_R.bytes);
  const bytesRev = u64n(o + FLOW_R.bytesRev);
  const flagsFwd = b[o + FLOW_R.tcpFlagsFwd]!;
  const flagsRev = b[o + FLOW_R.tcpFlagsRev]!;
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
  m.syn += dv.getUint32(o + FLOW_R.syn, true);
  m.synack += dv.getUint32(o + FLOW_R.synack, true);
  m.fin += dv.getUint32(o + FLOW_R.fin, true);
  m.rst += dv.getUint32(o + FLOW_R.rst, true);
  const flags = b[o + FLOW_R.flags]!;
  m.flags |= flags & ~FLOW_RF.rtt;
  if (earlier) {
    [m.fh, m.fl] = [fh, fl];
    m.firstNs = b.readBigUInt64LE(o + FLOW_R.firstNs);
  }
  if (before(m.lh, m.ll, lh, ll)) {
    [m.lh, m.ll] = [lh, ll];
    m.lastNs = b.readBigUInt64LE(o + FLOW_R.lastNs);
  }
  if (flags & FLOW_RF.rtt) {
    const firstNs = b.readBigUInt64LE(o + FLOW_R.firstNs);
    if (m.rttFromNs === undefined || firstNs < m.rttFromNs) {
      m.rttUs = dv.getUint32(o + FLOW_R.rttUs, true);
      m.rttFromNs = firstNs;
      m.flags |= FLOW_RF.rtt;
    }
  }
}

// Flows found by a 52-bit hash of their identity (both ends summed and multiplied, so either
// orientation hashes alike), checked against the flow found: a number key costs a fraction of a
// string key, and a query merges millions of records. Two flows of one hash (rare) go to a map by
// the full string key.
const addrWord = (_b: Buffer, at: number, i: number) => dv.getUint32(at + 4 * i, true);

function endHash(b: Buffer, at: number, words: number, port: number): number {
  let h = Math.imul(port + 0x9e3779b9, 0x85ebca6b);
  for (let i = 0; i < words; i++) {
    h = Math.imul(h ^ addrWord(b, at, i), 0xcc9e2d51);
    h = (h << 15) | (h >>> 17);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  return (h ^ (h >>> 13)) >>> 0;
}

function sameAddr(a: Buffer, b: Buffer, at: number, words: number): boolean {
  for (let i = 0; i < words; i++) if (a.readUInt32LE(4 * i) !== addrWord(b, at, i)) return false;
  return true;
}

export class FlowMerger {
  private readonly byHash = new Map<number, Flow>();
  private readonly collided = new Map<string, Flow>();
  private readonly ifaceHashes = new Map<string, number>();

  get size(): number {
    return this.byHash.size + this.collided.size;
  }

  *values(): IterableIterator<Flow> {
    yield* this.byHash.values();
    yield* this.collided.values();
  }

  add(iface: string, r: FlowRecord): void {
    this.addBody(iface, encodeFlowRecord(r));
  }

  /** Every record of a table segment's body (format.ts FlowTableSegment.body). */
  addBody(iface: string, b: Buffer): void {
    dv = new DataView(b.buffer, b.byteOffset, b.length);
    let ih = this.ifaceHashes.get(iface);
    if (ih === undefined) {
      ih = 0;
      for (let i = 0; i < iface.length; i++) ih = Math.imul(ih ^ iface.charCodeAt(i), 0x01000193);
      this.ifaceHashes.set(iface, ih >>> 0);
    }
    for (let o = 0; o < b.length; o += FLOW_RECORD_LEN) {
      const ipVersion = b[o + FLOW_R.ipVersion]!;
      const words = ipVersion === 4 ? 1 : ipVersion === 6 ? 4 : 0;
      const sport = dv.getUint16(o + FLOW_R.sport, true);
      const dport = dv.getUint16(o + FLOW_R.dport, true);
      const head = ipVersion | (b[o + FLOW_R.proto]! << 8) | (Math.min(b[o + FLOW_R.nvlan]!, FLOW_MAX_VLAN) << 16);
      const v = dv.getUint32(o + FLOW_R.vlan, true) ^ Math.imul(dv.getUint16(o + FLOW_R.vlan + 4, true), 0x27d4eb2d);
      // Non-IP records: the EtherType and VLAN stack only.
      const ea = endHash(b, o + FLOW_R.src, words, sport);
      const eb = words ? endHash(b, o + FLOW_R.dst, words, dport) : 0;
      const lo = (ea + eb) >>> 0;
      const hi = (Math.imul(ea, eb) ^ Math.imul(head ^ v, 0x165667b1) ^ ih) >>> 12;
      // 30 bits: a small-integer key, no heap number per record (the flow found is checked anyway).
      const key = (lo ^ Math.imul(hi, 0x9e3779b1)) >>> 2;
      let m = this.byHash.get(key);
      let same = true;
      if (m !== undefined) {
        let idOk = m.iface === iface && (m.ipVersion | (m.proto << 8) | (m.vlan.length << 16)) === head;
        for (let i = 0; idOk && i < m.vlan.length; i++) idOk = m.vlan[i] === dv.getUint16(o + FLOW_R.vlan + 2 * i, true);
        if (idOk && words === 0 && m.sport === sport) same = true;
        else if (idOk && words && m.sport === sport && m.dport === dport && sameAddr(m.src, b, o + FLOW_R.src, words) && sameAddr(m.dst, b, o + FLOW_R.dst, words)) same = true;
        else if (idOk && words && m.sport === dport && m.dport === sport && sameAddr(m.src, b, o + FLOW_R.dst, words) && sameAddr(m.dst, b, o + FLOW_R.src, words)) same = false;
        else {
          // Another flow of the same hash: this one is found by its full key.
          const skey = rawFlowKey(iface, b, o);
          m = this.collided.get(skey);
          if (m === undefined) {
            this.collided.set(skey, newFlow(iface, decodeFlowRecord(b, o)));
            continue;
          }
          same = dv.getUint16(o + FLOW_R.sport, true) === m.sport && sameAddr(m.src, b, o + FLOW_R.src, words);
        }
      } else {
        this.byHash.set(key, newFlow(iface, decodeFlowRecord(b, o)));
        continue;
      }
      merge(m, same, b, o);
    }
  }

  /** The flows, earliest first. */
  sorted(): Flow[] {
    return [...this.values()].sort((a, b) => (a.firstNs < b.firstNs ? -1 : a.firstNs > b.firstNs ? 1 : 0));
  }
}
