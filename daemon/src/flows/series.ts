// Packets and bytes per interval, counted from the pcap records themselves: a flow record says
// when a flow started and ended, not when each of its packets passed, so a series made from
// records would be a guess wherever a flow spans intervals. Only record headers are decoded.
import { GLOBAL_HEADER_LEN, RECORD_HEADER_LEN, decodeGlobalHeader, decodeRecordHeader, type GlobalHeader } from '../pcap/format.js';

export interface SeriesPoint {
  startNs: bigint;
  packets: number;
  bytes: number;
}

/** Buckets [from + k*interval, from + (k+1)*interval) over [from, to]; bytes are on the wire (original lengths). */
export class SeriesCounter {
  readonly packets: number[];
  readonly bytes: number[];

  constructor(
    readonly fromNs: bigint,
    readonly toNs: bigint,
    readonly intervalNs: bigint,
  ) {
    const n = Number((toNs - fromNs) / intervalNs) + 1;
    this.packets = new Array<number>(n).fill(0);
    this.bytes = new Array<number>(n).fill(0);
  }

  count(tsNs: bigint, origlen: number): void {
    if (tsNs < this.fromNs || tsNs > this.toNs) return;
    const i = Number((tsNs - this.fromNs) / this.intervalNs);
    this.packets[i]! += 1;
    this.bytes[i]! += origlen;
  }

  add(other: SeriesCounter): void {
    other.packets.forEach((p, i) => (this.packets[i]! += p));
    other.bytes.forEach((b, i) => (this.bytes[i]! += b));
  }

  points(): SeriesPoint[] {
    return this.packets.map((packets, i) => ({ startNs: this.fromNs + BigInt(i) * this.intervalNs, packets, bytes: this.bytes[i]! }));
  }
}

/** Feeds a pcap byte stream's record headers to a counter, chunk by chunk. */
export class PcapRecordWalker {
  private pending: Buffer = Buffer.alloc(0);
  private header?: GlobalHeader;
  /** Bytes of the current record's data still to skip. */
  private skip = 0;

  constructor(private readonly onRecord: (tsNs: bigint, origlen: number) => void) {}

  push(chunk: Buffer): void {
    let b = chunk;
    if (this.skip > 0) {
      const n = Math.min(this.skip, b.length);
      this.skip -= n;
      b = b.subarray(n);
      if (!b.length) return;
    }
    b = this.pending.length ? Buffer.concat([this.pending, b]) : b;
    let at = 0;
    if (!this.header) {
      if (b.length < GLOBAL_HEADER_LEN) {
        this.pending = Buffer.from(b);
        return;
      }
      this.header = decodeGlobalHeader(b);
      at = GLOBAL_HEADER_LEN;
    }
    while (at + RECORD_HEADER_LEN <= b.length) {
      const r = decodeRecordHeader(b, at, this.header);
      this.onRecord(r.tsNs, r.origlen);
      const end = at + RECORD_HEADER_LEN + r.caplen;
      if (end > b.length) {
        this.skip = end - b.length;
        at = b.length;
        break;
      }
      at = end;
    }
    this.pending = Buffer.from(b.subarray(at));
  }
}
