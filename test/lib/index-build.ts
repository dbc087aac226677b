// A test-side index writer (docs/INDEX.md) for the reader's and qe-extract's tests: the format
// written from first principles in TypeScript, so the reader is held to the layout rather than to
// the native builder's code. Keys per record come from `keysOf` (a small reference parser below).
import { crc32 } from 'node:zlib';
import { decodeGlobalHeader, records } from '../../daemon/src/pcap/format.js';
import {
  IDX_BLOCK_SIZE_DEFAULT,
  IDX_BT_GROUP,
  IDX_BT_NONE,
  IDX_ENTRY_LEN,
  IDX_FENCE_KEY_LEN,
  IDX_FENCE_STRIDE,
  IDX_FIELDS,
  IDX_FLAG_COMPLETE,
  IDX_HEADER_LEN,
  IDX_KEY,
  IDX_MAGIC,
  IDX_SEGMENT_HEADER_LEN,
  IDX_SEGMENT_MAGIC,
  IDX_VERSION,
  type IndexField,
  blockTableBlocks,
} from '../../daemon/src/index/format.js';

export type Key = [type: number, value: Buffer];

export interface BuildOptions {
  fields?: IndexField[];
  blockSize?: number;
  /** Record counts after which a segment ends (an open file's flushes); default one segment. */
  segmentEvery?: number;
  complete?: boolean;
  version?: number;
  keysOf?: (data: Buffer, fields: ReadonlySet<IndexField>) => Key[];
}

export function buildIndex(pcap: Buffer, o: BuildOptions = {}): Buffer {
  const fields = new Set(o.fields ?? ['ip', 'port', 'proto', 'vlan']);
  const blockSize = o.blockSize ?? IDX_BLOCK_SIZE_DEFAULT;
  const g = decodeGlobalHeader(pcap);
  const recs = [...records(pcap, g)];
  const keysOf = o.keysOf ?? referenceKeyer();
  const h = Buffer.alloc(IDX_HEADER_LEN);
  IDX_MAGIC.copy(h, 0);
  h.writeUInt16LE(o.version ?? IDX_VERSION, 8);
  h.writeUInt16LE(IDX_HEADER_LEN, 10);
  const every = o.segmentEvery ?? Math.max(recs.length, 1);
  const complete = o.complete ?? o.segmentEvery === undefined;
  h.writeUInt32LE(complete ? IDX_FLAG_COMPLETE : 0, 12);
  h.writeUInt32LE(blockSize, 16);
  h.writeUInt32LE([...fields].reduce((m, f) => m | IDX_FIELDS[f], 0), 20);
  h.writeUInt32LE(g.linktype, 24);
  h.writeUInt32LE(1, 28);
  h.writeBigUInt64LE(recs[0]?.tsNs ?? 0n, 32);
  h.writeUInt32LE(crc32(h.subarray(0, 60)), 60);
  const parts: Buffer[] = [h];
  for (let i = 0; i < recs.length || (i === 0 && recs.length === 0); i += every) {
    const seg = recs.slice(i, i + every);
    const offLo = seg[0]?.offset ?? 24;
    const last = seg[seg.length - 1];
    const offHi = last ? last.offset + 16 + last.caplen : 24;
    parts.push(segment(seg.map((r) => ({ offset: r.offset, keys: keysOf(r.data, fields) })), offLo, offHi, seg[0]?.tsNs ?? 0n, last?.tsNs ?? 0n, blockSize));
    if (recs.length === 0) break;
  }
  return Buffer.concat(parts);
}

function segment(recs: { offset: number; keys: Key[] }[], offLo: number, offHi: number, firstNs: bigint, lastNs: bigint, blockSize: number): Buffer {
  const lists = new Map<string, { type: number; value: Buffer; blocks: number[] }>();
  const block0 = Math.floor(offLo / blockSize);
  const firsts: number[] = Array(blockTableBlocks(offLo, offHi, blockSize)).fill(IDX_BT_NONE);
  for (const r of recs) {
    const blk = Math.floor(r.offset / blockSize);
    if (firsts[blk - block0] === IDX_BT_NONE) firsts[blk - block0] = r.offset - blk * blockSize;
    for (const [type, value] of r.keys) {
      const id = `${type}:${value.toString('hex')}`;
      let l = lists.get(id);
      if (!l) lists.set(id, (l = { type, value, blocks: [] }));
      if (l.blocks[l.blocks.length - 1] !== blk) l.blocks.push(blk);
    }
  }
  const sorted = [...lists.values()].sort((a, b) => a.type - b.type || Buffer.compare(pad(a.value), pad(b.value)));
  const dir = Buffer.alloc(sorted.length * IDX_ENTRY_LEN);
  const posts: Buffer[] = [];
  let off = 0;
  sorted.forEach((l, i) => {
    const bytes: number[] = [];
    let prev = 0;
    for (const blk of l.blocks) {
      leb(blk - prev, bytes);
      prev = blk;
    }
    const p = Buffer.from(bytes);
    const e = i * IDX_ENTRY_LEN;
    dir[e] = l.type;
    dir[e + 1] = l.value.length;
    dir.writeUInt32LE(l.blocks.length, e + 4);
    dir.writeBigUInt64LE(BigInt(off), e + 8);
    dir.writeUInt32LE(p.length, e + 16);
    l.value.copy(dir, e + 24);
    // The entry's checks: of its 40 bytes with both fields still 0 (key_crc), then of them and its list.
    dir.writeUInt16LE(crc32(dir.subarray(e, e + IDX_ENTRY_LEN)) & 0xffff, e + 2);
    dir.writeUInt32LE(crc32(p, crc32(dir.subarray(e, e + IDX_ENTRY_LEN))), e + 20);
    posts.push(p);
    off += p.length;
  });
  // The block table: groups of entries, each followed by their CRC.
  const table: Buffer[] = [];
  for (let g = 0; g < firsts.length; g += IDX_BT_GROUP) {
    const group = Buffer.alloc(Math.min(IDX_BT_GROUP, firsts.length - g) * 4);
    firsts.slice(g, g + IDX_BT_GROUP).forEach((v, j) => group.writeUInt32LE(v, j * 4));
    const c = Buffer.alloc(4);
    c.writeUInt32LE(crc32(group));
    table.push(group, c);
  }
  // The fence: every IDX_FENCE_STRIDE-th entry's type and padded value, then their CRC.
  const keys = sorted.filter((_, i) => i % IDX_FENCE_STRIDE === 0).map((l) => Buffer.concat([Buffer.from([l.type]), pad(l.value)]));
  const fenceKeys = Buffer.concat(keys, keys.length * IDX_FENCE_KEY_LEN);
  const fenceCrc = Buffer.alloc(4);
  fenceCrc.writeUInt32LE(crc32(fenceKeys));
  const body = Buffer.concat([fenceKeys, fenceCrc, dir, ...posts, ...table]);
  const s = Buffer.alloc(IDX_SEGMENT_HEADER_LEN);
  s.writeUInt32LE(IDX_SEGMENT_MAGIC, 0);
  s.writeUInt32LE(sorted.length, 4);
  s.writeBigUInt64LE(BigInt(body.length), 8);
  s.writeBigUInt64LE(BigInt(offLo), 16);
  s.writeBigUInt64LE(BigInt(offHi), 24);
  s.writeBigUInt64LE(BigInt(recs.length), 32);
  s.writeBigUInt64LE(firstNs, 40);
  s.writeBigUInt64LE(lastNs, 48);
  s.writeUInt32LE(crc32(body), 56);
  s.writeUInt32LE(crc32(s.subarray(0, 60)), 60);
  return Buffer.concat([s, body]);
}

function leb(v: number, out: number[]): void {
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) b |= 0x80;
    out.push(b);
  } while (v > 0);
}

function pad(v: Buffer): Buffer {
  const b = Buffer.alloc(16);
  v.copy(b);
  return b;
}

/**
 * Keys of an Ethernet frame as docs/INDEX.md says the builder writes them: MACs, every VLAN ID,
 * the outer IPs (ARP's too), the protocol (IPv6: after the extension headers), TCP/UDP/SCTP ports,
 * and a later fragment under its first fragment's ports (a table per index, as the builder keeps),
 * or port 0 when that table does not hold it.
 */
export function referenceKeyer(): (d: Buffer, fields: ReadonlySet<IndexField>) => Key[] {
  const firstPorts = new Map<string, Buffer>();
  return (d, fields) => {
    const keys: Key[] = [];
    const add = (f: IndexField, type: number, v: Buffer) => fields.has(f) && keys.push([type, Buffer.from(v)]);
    if (d.length < 14) return keys;
    add('mac', IDX_KEY.mac, d.subarray(0, 6));
    add('mac', IDX_KEY.mac, d.subarray(6, 12));
    let p = 12;
    let et = d.readUInt16BE(p);
    while ((et === 0x8100 || et === 0x88a8 || et === 0x9100) && p + 6 <= d.length) {
      const id = d.readUInt16BE(p + 2) & 0xfff;
      add('vlan', IDX_KEY.vlan, Buffer.from([id >> 8, id & 0xff]));
      p += 4;
      et = d.readUInt16BE(p);
    }
    p += 2;
    const ports = (proto: number, l4: number, frag: 'none' | 'first' | 'later', fragId: string) => {
      if (!(proto === 6 || proto === 17 || proto === 132)) return;
      if (frag === 'later') {
        // Port 0: a later fragment whose first fragment this index did not see.
        const pp = firstPorts.get(fragId) ?? Buffer.alloc(4);
        add('port', IDX_KEY.port, pp.subarray(0, 2));
        add('port', IDX_KEY.port, pp.subarray(2, 4));
        return;
      }
      if (l4 + 4 > d.length) return;
      add('port', IDX_KEY.port, d.subarray(l4, l4 + 2));
      add('port', IDX_KEY.port, d.subarray(l4 + 2, l4 + 4));
      if (frag === 'first') firstPorts.set(fragId, Buffer.from(d.subarray(l4, l4 + 4)));
    };
    if (et === 0x0800 && p + 20 <= d.length) {
      add('ip', IDX_KEY.ipv4, d.subarray(p + 12, p + 16));
      add('ip', IDX_KEY.ipv4, d.subarray(p + 16, p + 20));
      const proto = d[p + 9]!;
      add('proto', IDX_KEY.proto, Buffer.from([proto]));
      const fo = d.readUInt16BE(p + 6);
      const frag = (fo & 0x1fff) !== 0 ? 'later' : fo & 0x2000 ? 'first' : 'none';
      ports(proto, p + (d[p]! & 0xf) * 4, frag, `4:${d.subarray(p + 12, p + 20).toString('hex')}:${proto}:${d.readUInt16BE(p + 4)}`);
    } else if (et === 0x86dd && p + 40 <= d.length) {
      add('ip', IDX_KEY.ipv6, d.subarray(p + 8, p + 24));
      add('ip', IDX_KEY.ipv6, d.subarray(p + 24, p + 40));
      let nh = d[p + 6]!;
      let q = p + 40;
      let frag: 'none' | 'first' | 'later' = 'none';
      let fragId = '';
      while ((nh === 0 || nh === 43 || nh === 60 || nh === 44) && q + 8 <= d.length) {
        if (nh === 44) {
          const off = d.readUInt16BE(q + 2);
          frag = off >> 3 ? 'later' : off & 1 ? 'first' : 'none';
          fragId = `6:${d.subarray(p + 8, p + 40).toString('hex')}:${d[q]}:${d.readUInt32BE(q + 4)}`;
          nh = d[q]!;
          q += 8;
          if (frag === 'later') break;
        } else {
          nh = d[q]!;
          q += 8 + d[q + 1]! * 8;
        }
      }
      add('proto', IDX_KEY.proto, Buffer.from([nh]));
      ports(nh, q, frag, fragId);
    } else if ((et === 0x0806 || et === 0x8035) && p + 28 <= d.length) {
      add('ip', IDX_KEY.ipv4, d.subarray(p + 14, p + 18));
      add('ip', IDX_KEY.ipv4, d.subarray(p + 24, p + 28));
    }
    return keys;
  };
}

/** One frame's keys, without fragment state. */
export function referenceKeys(d: Buffer, fields: ReadonlySet<IndexField>): Key[] {
  return referenceKeyer()(d, fields);
}
