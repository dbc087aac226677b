// Merging flow records into flows. A flow that spans flushes has one record per segment of its
// open file's table, and one per file once it spans files; the records of one flow (same
// interface, VLAN stack, IP version, protocol and unordered pair of ends) become one: counts
// summed, TCP flags ORed, the earliest first and latest last time, the round trip of the earliest
// record that measured one. `src` is the end that sent the flow's first packet: a record whose
// first packet came from the other end is swapped before it is added.
//
// A query over a store merges millions of records: tables are merged straight from their bytes
// (addBody) into typed-array columns, and objects are made only for the flows asked for.
import { FLOW_MAX_VLAN, FLOW_R, FLOW_RF, FLOW_T, encodeFlowRecord, flowAddrLen, flowRecordLen, flowTailOff, type FlowRecord } from './format.js';

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
    b, o + FLOW_R.src, b.readUInt16LE(o + FLOW_R.sport), b, o + FLOW_R.src + flowAddrLen(b[o]!), b.readUInt16LE(o + FLOW_R.dport),
  );
}

// The merged flows are kept in columns (typed arrays indexed by flow), found through an
// open-addressing table of flow numbers: a record is merged straight from the table's bytes into
// the columns, with no object, BigInt or Buffer per flow or record, so a query over millions of
// records costs neither allocation nor garbage collection. Flow objects are made only when asked
// for (values(), sorted()). The hash of a flow's identity sums and multiplies its two ends, so
// either orientation hashes alike; candidates are checked against the identity columns.

/** Merged flows in columns; flow `j`'s addresses are words 8j..8j+3 (src) and 8j+4..8j+7 (dst), little-endian as in the record. */
class Columns {
  n = 0;
  cap: number;
  iface: Uint16Array;
  head: Uint32Array; // ipVersion | proto << 8 | nvlan << 16
  vlan: Uint16Array; // 3 a flow
  sport: Uint16Array;
  dport: Uint16Array;
  addr: Uint32Array; // 8 a flow
  flags: Uint8Array;
  fwd: Uint8Array;
  rev: Uint8Array;
  packets: Float64Array;
  packetsRev: Float64Array;
  bytes: Float64Array;
  bytesRev: Float64Array;
  syn: Float64Array;
  synack: Float64Array;
  fin: Float64Array;
  rst: Float64Array;
  records: Uint32Array;
  rttUs: Uint32Array;
  time: Uint32Array; // first (high, low), last (high, low), rtt's record first (high, low): 6 a flow
  hash: Uint32Array;

  constructor(cap: number) {
    this.cap = cap;
    this.iface = new Uint16Array(cap);
    this.head = new Uint32Array(cap);
    this.vlan = new Uint16Array(cap * 3);
    this.sport = new Uint16Array(cap);
    this.dport = new Uint16Array(cap);
    this.addr = new Uint32Array(cap * 8);
    this.flags = new Uint8Array(cap);
    this.fwd = new Uint8Array(cap);
    this.rev = new Uint8Array(cap);
    this.packets = new Float64Array(cap);
    this.packetsRev = new Float64Array(cap);
    this.bytes = new Float64Array(cap);
    this.bytesRev = new Float64Array(cap);
    this.syn = new Float64Array(cap);
    this.synack = new Float64Array(cap);
    this.fin = new Float64Array(cap);
    this.rst = new Float64Array(cap);
    this.records = new Uint32Array(cap);
    this.rttUs = new Uint32Array(cap);
    this.time = new Uint32Array(cap * 6);
    this.hash = new Uint32Array(cap);
  }

  /** The same columns with room for `cap` flows. */
  grown(cap: number): Columns {
    const c = new Columns(cap);
    for (const k of Object.keys(this) as (keyof Columns)[]) {
      const v = this[k];
      if (ArrayBuffer.isView(v)) (c[k] as typeof v).set(v as never);
    }
    c.n = this.n;
    return c;
  }
}

const swapAt = (a: { [i: number]: number }, i: number, j: number) => {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
};

/** Flow `j` seen from its other end (turn() of a record that saw the first packet from there). */
function turnColumns(c: Columns, j: number): void {
  const sp = c.sport[j]!;
  c.sport[j] = c.dport[j]!;
  c.dport[j] = sp;
  for (let i = 0; i < 4; i++) swapAt(c.addr, 8 * j + i, 8 * j + 4 + i);
  const p = c.packets[j]!;
  c.packets[j] = c.packetsRev[j]!;
  c.packetsRev[j] = p;
  const b = c.bytes[j]!;
  c.bytes[j] = c.bytesRev[j]!;
  c.bytesRev[j] = b;
  const f = c.fwd[j]!;
  c.fwd[j] = c.rev[j]!;
  c.rev[j] = f;
}

const bigOf = (hi: number, lo: number) => (BigInt(hi) << 32n) | BigInt(lo);

function addressOf(c: Columns, at: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len / 4; i++) b.writeUInt32LE(c.addr[at + i]!, 4 * i);
  return b;
}

/** Flow `j` as an object (one literal of one shape, as the consumers read it). */
function flowAt(c: Columns, ifaces: readonly string[], j: number): Flow {
  const head = c.head[j]!;
  const ipVersion = head & 0xff;
  const alen = ipVersion === 4 ? 4 : ipVersion === 6 ? 16 : 0;
  const nvlan = head >>> 16;
  const vlan: number[] = [];
  for (let i = 0; i < nvlan; i++) vlan.push(c.vlan[3 * j + i]!);
  const t = 6 * j;
  const flags = c.flags[j]!;
  return {
    iface: ifaces[c.iface[j]!]!, ipVersion, proto: (head >>> 8) & 0xff, flags, tcpFlagsFwd: c.fwd[j]!, tcpFlagsRev: c.rev[j]!, sport: c.sport[j]!, dport: c.dport[j]!, vlan,
    src: addressOf(c, 8 * j, alen), dst: addressOf(c, 8 * j + 4, alen), firstNs: bigOf(c.time[t]!, c.time[t + 1]!), lastNs: bigOf(c.time[t + 2]!, c.time[t + 3]!),
    bytes: c.bytes[j]!, bytesRev: c.bytesRev[j]!, packets: c.packets[j]!, packetsRev: c.packetsRev[j]!,
    syn: c.syn[j]!, synack: c.synack[j]!, fin: c.fin[j]!, rst: c.rst[j]!, rttUs: c.rttUs[j]!, records: c.records[j]!, rttFromNs: flags & FLOW_RF.rtt ? bigOf(c.time[t + 4]!, c.time[t + 5]!) : undefined,
    fh: c.time[t]!, fl: c.time[t + 1]!, lh: c.time[t + 2]!, ll: c.time[t + 3]!,
  };
}

// The body being merged, as a DataView: its reads are cheaper than Buffer's checked ones.
let dv: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

/** A u64 field as a number (byte counts: exact far beyond any flow's). */
const u64n = (o: number) => dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 4294967296;
const before = (ah: number, al: number, bh: number, bl: number) => ah < bh || (ah === bh && al < bl);

function endHash(at: number, words: number, port: number): number {
  let h = Math.imul(port + 0x9e3779b9, 0x85ebca6b);
  for (let i = 0; i < words; i++) {
    h = Math.imul(h ^ dv.getUint32(at + 4 * i, true), 0xcc9e2d51);
    h = (h << 15) | (h >>> 17);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  return (h ^ (h >>> 13)) >>> 0;
}

/** Are flow `j`'s words at `w` the record's address at `at`? */
function sameAddr(addr: Uint32Array, w: number, at: number, words: number): boolean {
  for (let i = 0; i < words; i++) if (addr[w + i] !== dv.getUint32(at + 4 * i, true)) return false;
  return true;
}

export class FlowMerger {
  private c = new Columns(1024);
  /** Flow number + 1 per slot, 0 for none; a power of two, at most half full. */
  private slots = new Int32Array(4096);
  private readonly ifaceIds = new Map<string, number>();
  private readonly ifaces: string[] = [];

  get size(): number {
    return this.c.n;
  }

  /** The flows in the order they were first seen. */
  *values(): IterableIterator<Flow> {
    for (let j = 0; j < this.c.n; j++) yield flowAt(this.c, this.ifaces, j);
  }

  add(iface: string, r: FlowRecord): void {
    this.addBody(iface, encodeFlowRecord(r));
  }

  private rehash(size: number): void {
    const slots = new Int32Array(size);
    const mask = size - 1;
    for (let j = 0; j < this.c.n; j++) {
      let s = this.c.hash[j]! & mask;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = j + 1;
    }
    this.slots = slots;
  }

  /** A new flow from the record at `o` (its dst at `d`, its tail at `tl`), as it is oriented. */
  private create(ii: number, head: number, h: number, o: number, d: number, tl: number, words: number, sport: number, dport: number, slot: number): void {
    if (this.c.n === this.c.cap) this.c = this.c.grown(this.c.cap * 2);
    const c = this.c;
    const j = c.n++;
    this.slots[slot] = j + 1;
    c.iface[j] = ii;
    c.head[j] = head;
    for (let i = 0; i < 3; i++) c.vlan[3 * j + i] = i < head >>> 16 ? dv.getUint16(o + FLOW_R.vlan + 2 * i, true) : 0;
    c.sport[j] = sport;
    c.dport[j] = dport;
    for (let i = 0; i < 4; i++) {
      c.addr[8 * j + i] = i < words ? dv.getUint32(o + FLOW_R.src + 4 * i, true) : 0;
      c.addr[8 * j + 4 + i] = i < words ? dv.getUint32(d + 4 * i, true) : 0;
    }
    const flags = dv.getUint8(o + FLOW_R.flags);
    c.flags[j] = flags;
    c.fwd[j] = dv.getUint8(o + FLOW_R.tcpFlagsFwd);
    c.rev[j] = dv.getUint8(o + FLOW_R.tcpFlagsRev);
    c.packets[j] = dv.getUint32(tl + FLOW_T.packets, true);
    c.packetsRev[j] = dv.getUint32(tl + FLOW_T.packetsRev, true);
    c.bytes[j] = u64n(tl + FLOW_T.bytes);
    c.bytesRev[j] = u64n(tl + FLOW_T.bytesRev);
    c.syn[j] = dv.getUint32(tl + FLOW_T.syn, true);
    c.synack[j] = dv.getUint32(tl + FLOW_T.synack, true);
    c.fin[j] = dv.getUint32(tl + FLOW_T.fin, true);
    c.rst[j] = dv.getUint32(tl + FLOW_T.rst, true);
    c.records[j] = 1;
    c.rttUs[j] = dv.getUint32(tl + FLOW_T.rttUs, true);
    const t = 6 * j;
    c.time[t] = c.time[t + 4] = dv.getUint32(tl + FLOW_T.firstNs + 4, true);
    c.time[t + 1] = c.time[t + 5] = dv.getUint32(tl + FLOW_T.firstNs, true);
    c.time[t + 2] = dv.getUint32(tl + FLOW_T.lastNs + 4, true);
    c.time[t + 3] = dv.getUint32(tl + FLOW_T.lastNs, true);
    c.hash[j] = h;
    if (2 * c.n > this.slots.length) this.rehash(this.slots.length * 2);
  }

  /** Adds the record at `o` (its tail at `tl`) to flow `j` (`same`: it has the flow's orientation so far). */
  private merge(j: number, same: boolean, o: number, tl: number): void {
    const c = this.c;
    const t = 6 * j;
    const fh = dv.getUint32(tl + FLOW_T.firstNs + 4, true);
    const fl = dv.getUint32(tl + FLOW_T.firstNs, true);
    const lh = dv.getUint32(tl + FLOW_T.lastNs + 4, true);
    const ll = dv.getUint32(tl + FLOW_T.lastNs, true);
    const earlier = before(fh, fl, c.time[t]!, c.time[t + 1]!);
    let rev = false;
    if (!same) {
      // A record that saw the flow's first packet decides its src: turn what is merged so far.
      if (earlier) turnColumns(c, j);
      else rev = true;
    }
    const packets = dv.getUint32(tl + FLOW_T.packets, true);
    const packetsRev = dv.getUint32(tl + FLOW_T.packetsRev, true);
    const bytes = u64n(tl + FLOW_T.bytes);
    const bytesRev = u64n(tl + FLOW_T.bytesRev);
    const flagsFwd = dv.getUint8(o + FLOW_R.tcpFlagsFwd);
    const flagsRev = dv.getUint8(o + FLOW_R.tcpFlagsRev);
    c.records[j]!++;
    if (rev) {
      c.packets[j]! += packetsRev;
      c.packetsRev[j]! += packets;
      c.bytes[j]! += bytesRev;
      c.bytesRev[j]! += bytes;
      c.fwd[j]! |= flagsRev;
      c.rev[j]! |= flagsFwd;
    } else {
      c.packets[j]! += packets;
      c.packetsRev[j]! += packetsRev;
      c.bytes[j]! += bytes;
      c.bytesRev[j]! += bytesRev;
      c.fwd[j]! |= flagsFwd;
      c.rev[j]! |= flagsRev;
    }
    c.syn[j]! += dv.getUint32(tl + FLOW_T.syn, true);
    c.synack[j]! += dv.getUint32(tl + FLOW_T.synack, true);
    c.fin[j]! += dv.getUint32(tl + FLOW_T.fin, true);
    c.rst[j]! += dv.getUint32(tl + FLOW_T.rst, true);
    const flags = dv.getUint8(o + FLOW_R.flags);
    const had = c.flags[j]! & FLOW_RF.rtt;
    c.flags[j]! |= flags & ~FLOW_RF.rtt;
    if (earlier) {
      c.time[t] = fh;
      c.time[t + 1] = fl;
    }
    if (before(c.time[t + 2]!, c.time[t + 3]!, lh, ll)) {
      c.time[t + 2] = lh;
      c.time[t + 3] = ll;
    }
    // The round trip of the earliest record that measured one.
    if (flags & FLOW_RF.rtt && (!had || before(fh, fl, c.time[t + 4]!, c.time[t + 5]!))) {
      c.rttUs[j] = dv.getUint32(tl + FLOW_T.rttUs, true);
      c.time[t + 4] = fh;
      c.time[t + 5] = fl;
      c.flags[j]! |= FLOW_RF.rtt;
    }
  }

  /** Every record of a table segment's body (format.ts FlowTableSegment.body). */
  addBody(iface: string, b: Buffer): void {
    dv = new DataView(b.buffer, b.byteOffset, b.length);
    let ii = this.ifaceIds.get(iface);
    if (ii === undefined) {
      ii = this.ifaces.push(iface) - 1;
      this.ifaceIds.set(iface, ii);
    }
    for (let o = 0; o < b.length; o += flowRecordLen(b[o]!)) {
      const ipVersion = dv.getUint8(o + FLOW_R.ipVersion);
      const words = ipVersion === 4 ? 1 : ipVersion === 6 ? 4 : 0;
      const d = o + FLOW_R.src + flowAddrLen(ipVersion);
      const tl = o + flowTailOff(ipVersion);
      const sport = dv.getUint16(o + FLOW_R.sport, true);
      const dport = dv.getUint16(o + FLOW_R.dport, true);
      const nvlan = Math.min(dv.getUint8(o + FLOW_R.nvlan), FLOW_MAX_VLAN);
      const head = ipVersion | (dv.getUint8(o + FLOW_R.proto) << 8) | (nvlan << 16);
      // The tags in use only: what an unused slot holds is not part of the identity.
      let v = 0;
      for (let i = 0; i < nvlan; i++) v = Math.imul(v ^ dv.getUint16(o + FLOW_R.vlan + 2 * i, true), 0x27d4eb2d);
      // Non-IP records: the EtherType and VLAN stack only.
      const ea = endHash(o + FLOW_R.src, words, sport);
      const eb = words ? endHash(d, words, dport) : 0;
      const h: number = ((ea + eb) ^ Math.imul(Math.imul(ea, eb) ^ Math.imul(head ^ v, 0x165667b1) ^ ii, 0x9e3779b1)) >>> 0;
      const c = this.c;
      const mask = this.slots.length - 1;
      let s: number = h & mask;
      for (;;) {
        const j = this.slots[s]! - 1;
        if (j < 0) {
          this.create(ii, head, h, o, d, tl, words, sport, dport, s);
          break;
        }
        if (c.hash[j] === h && c.iface[j] === ii && c.head[j] === head) {
          let vlanOk = true;
          for (let i = 0; vlanOk && i < nvlan; i++) vlanOk = c.vlan[3 * j + i] === dv.getUint16(o + FLOW_R.vlan + 2 * i, true);
          if (vlanOk) {
            if (words === 0) {
              if (c.sport[j] === sport) {
                this.merge(j, true, o, tl);
                break;
              }
            } else if (c.sport[j] === sport && c.dport[j] === dport && sameAddr(c.addr, 8 * j, o + FLOW_R.src, words) && sameAddr(c.addr, 8 * j + 4, d, words)) {
              this.merge(j, true, o, tl);
              break;
            } else if (c.sport[j] === dport && c.dport[j] === sport && sameAddr(c.addr, 8 * j, d, words) && sameAddr(c.addr, 8 * j + 4, o + FLOW_R.src, words)) {
              this.merge(j, false, o, tl);
              break;
            }
          }
        }
        s = (s + 1) & mask;
      }
    }
  }

  /** The flows, earliest first. */
  sorted(): Flow[] {
    return [...this.values()].sort((a, b) => (a.firstNs < b.firstNs ? -1 : a.firstNs > b.firstNs ? 1 : 0));
  }
}
