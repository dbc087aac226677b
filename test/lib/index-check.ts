// Test side of the index: an independent decoder written from daemon/native/index-format.h (through
// its TypeScript numbers, daemon/src/index/format.ts), that checks every checksum and invariant the
// header promises, and the keys tshark sees in each packet, to hold the native builder against.
import { execFileSync } from 'node:child_process';
import { crc32 } from 'node:zlib';
import {
  IDX_BT_GROUP,
  IDX_BT_NONE,
  IDX_E,
  IDX_ENTRY_LEN,
  IDX_FENCE_KEY_LEN,
  IDX_FENCE_STRIDE,
  IDX_H,
  IDX_HEADER_LEN,
  IDX_KEY,
  IDX_MAGIC,
  IDX_S,
  IDX_SEGMENT_HEADER_LEN,
  IDX_SEGMENT_MAGIC,
  IDX_VERSION,
  blockTableBlocks,
  blockTableLen,
} from '../../daemon/src/index/format.js';

export interface DecodedSegment {
  offLo: number;
  offHi: number;
  records: number;
  firstNs: bigint;
  lastNs: bigint;
  /** `type:hexvalue` to its postings as record starts: of each posting's block, the first record starting in it within the segment (its block table entry), ascending. */
  keys: Map<string, number[]>;
  /** `type:hexvalue` to its postings as they are: block numbers, ascending. */
  blocks: Map<string, number[]>;
  /** The block table: for each block the segment touches, from its first, the offset of its first record start in the segment, or undefined. */
  table: (number | undefined)[];
}

export interface DecodedIndex {
  version: number;
  flags: number;
  blockSize: number;
  fields: number;
  linktype: number;
  builder: number;
  pcapFirstNs: bigint;
  segments: DecodedSegment[];
}

const fail = (what: string): never => {
  throw new Error(`index: ${what}`);
};

/** Decodes a whole index file; throws on any checksum or invariant it breaks. */
export function decodeIndex(b: Buffer): DecodedIndex {
  if (b.length < IDX_HEADER_LEN) fail(`${b.length} bytes, shorter than a header`);
  if (!b.subarray(0, 8).equals(IDX_MAGIC)) fail('bad magic');
  if (b.readUInt32LE(IDX_H.crc) !== crc32(b.subarray(0, IDX_H.crc))) fail('header checksum');
  const version = b.readUInt16LE(IDX_H.version);
  if (version !== IDX_VERSION) fail(`version ${version}`);
  const headerLen = b.readUInt16LE(IDX_H.headerLen);
  const blockSize = b.readUInt32LE(IDX_H.blockSize);
  const out: DecodedIndex = {
    version,
    flags: b.readUInt32LE(IDX_H.flags),
    blockSize,
    fields: b.readUInt32LE(IDX_H.fields),
    linktype: b.readUInt32LE(IDX_H.linktype),
    builder: b.readUInt32LE(IDX_H.builder),
    pcapFirstNs: b.readBigUInt64LE(IDX_H.pcapFirstNs),
    segments: [],
  };
  let off = headerLen;
  while (off < b.length) {
    if (off + IDX_SEGMENT_HEADER_LEN > b.length) fail(`a torn segment header at ${off}`);
    const h = b.subarray(off, off + IDX_SEGMENT_HEADER_LEN);
    if (h.readUInt32LE(IDX_S.magic) !== IDX_SEGMENT_MAGIC) fail(`segment magic at ${off}`);
    if (h.readUInt32LE(IDX_S.crc) !== crc32(h.subarray(0, IDX_S.crc))) fail(`segment header checksum at ${off}`);
    const nkeys = h.readUInt32LE(IDX_S.nkeys);
    const bodyLen = Number(h.readBigUInt64LE(IDX_S.bodyLen));
    const body = b.subarray(off + IDX_SEGMENT_HEADER_LEN, off + IDX_SEGMENT_HEADER_LEN + bodyLen);
    if (body.length !== bodyLen) fail(`a torn segment body at ${off}`);
    if (h.readUInt32LE(IDX_S.bodyCrc) !== crc32(body)) fail(`segment body checksum at ${off}`);
    const seg: DecodedSegment = {
      offLo: Number(h.readBigUInt64LE(IDX_S.offLo)),
      offHi: Number(h.readBigUInt64LE(IDX_S.offHi)),
      records: Number(h.readBigUInt64LE(IDX_S.records)),
      firstNs: h.readBigUInt64LE(IDX_S.firstNs),
      lastNs: h.readBigUInt64LE(IDX_S.lastNs),
      keys: new Map(),
      blocks: new Map(),
      table: [],
    };
    // The fence: every IDX_FENCE_STRIDE-th entry's sort key, then their CRC; the directory after it.
    const nfence = Math.ceil(nkeys / IDX_FENCE_STRIDE);
    const fence = body.subarray(0, nfence * IDX_FENCE_KEY_LEN);
    if (body.readUInt32LE(fence.length) !== crc32(fence)) fail(`segment at ${off}: fence checksum`);
    const dirOff = fence.length + 4;
    const area = dirOff + nkeys * IDX_ENTRY_LEN;
    const block0 = Math.floor(seg.offLo / blockSize);
    const nblocks = blockTableBlocks(seg.offLo, seg.offHi, blockSize);
    const tableOff = bodyLen - blockTableLen(nblocks);
    if (tableOff < area) fail(`segment at ${off}: body too short for its block table`);
    for (let g = 0; g < nblocks; g += IDX_BT_GROUP) {
      const at = tableOff + (g / IDX_BT_GROUP) * (IDX_BT_GROUP + 1) * 4;
      const n = Math.min(IDX_BT_GROUP, nblocks - g);
      if (body.readUInt32LE(at + n * 4) !== crc32(body.subarray(at, at + n * 4))) fail(`block table group ${g / IDX_BT_GROUP} checksum`);
      for (let j = 0; j < n; j++) {
        const v = body.readUInt32LE(at + j * 4);
        const start = (block0 + g + j) * blockSize + v;
        if (v !== IDX_BT_NONE && (v >= blockSize || start < seg.offLo || start >= seg.offHi)) fail(`block table entry ${g + j}: ${v} is not a start in its block and the segment`);
        seg.table.push(v === IDX_BT_NONE ? undefined : start);
      }
    }
    let prevKey: Buffer | undefined;
    for (let i = 0; i < nkeys; i++) {
      const e = body.subarray(dirOff + i * IDX_ENTRY_LEN, dirOff + (i + 1) * IDX_ENTRY_LEN);
      const sortKey = Buffer.concat([e.subarray(0, 1), e.subarray(IDX_E.value, IDX_E.value + 16)]);
      const g = i / IDX_FENCE_STRIDE;
      if (i % IDX_FENCE_STRIDE === 0 && !fence.subarray(g * IDX_FENCE_KEY_LEN, (g + 1) * IDX_FENCE_KEY_LEN).equals(sortKey)) fail(`fence key ${g} is not entry ${i}'s key`);
      if (prevKey && Buffer.compare(prevKey, sortKey) >= 0) fail(`directory not sorted or duplicated at entry ${i}`);
      prevKey = sortKey;
      const type = e[IDX_E.type]!;
      const valueLen = e[IDX_E.valueLen]!;
      const count = e.readUInt32LE(IDX_E.count);
      const lo = area + Number(e.readBigUInt64LE(IDX_E.off));
      const len = e.readUInt32LE(IDX_E.len);
      if (lo + len > tableOff) fail(`posting list of entry ${i} past the postings`);
      const zeroed = Buffer.from(e);
      zeroed.writeUInt32LE(0, IDX_E.crc);
      if (e.readUInt32LE(IDX_E.crc) !== crc32(body.subarray(lo, lo + len), crc32(zeroed))) fail(`entry ${i} checksum`);
      zeroed.writeUInt16LE(0, IDX_E.keyCrc);
      if (e.readUInt16LE(IDX_E.keyCrc) !== (crc32(zeroed) & 0xffff)) fail(`entry ${i} key checksum`);
      const postings: number[] = [];
      let p = lo;
      let prev = 0;
      while (p < lo + len) {
        let v = 0;
        let shift = 0;
        for (;;) {
          const byte = body[p++]!;
          v += (byte & 0x7f) * 2 ** shift;
          shift += 7;
          if (!(byte & 0x80)) break;
        }
        prev = postings.length ? prev + v : v;
        postings.push(prev);
      }
      if (postings.length !== count) fail(`entry ${i}: count ${count}, ${postings.length} postings`);
      const starts: number[] = [];
      for (let j = 0; j < postings.length; j++) {
        const q = postings[j]!;
        if (q < block0 || q >= block0 + nblocks) fail(`posting for block ${q} outside blocks [${block0}, ${block0 + nblocks})`);
        if (j && q <= postings[j - 1]!) fail(`postings ${postings[j - 1]} and ${q} not ascending blocks`);
        const start = seg.table[q - block0];
        if (start === undefined) fail(`posting for block ${q}, where the block table has no record start`);
        starts.push(start!);
      }
      const id = `${type}:${e.subarray(IDX_E.value, IDX_E.value + valueLen).toString('hex')}`;
      seg.keys.set(id, starts);
      seg.blocks.set(id, postings);
    }
    out.segments.push(seg);
    off += IDX_SEGMENT_HEADER_LEN + bodyLen;
  }
  return out;
}

export const keyOf = {
  mac: (s: string) => `${IDX_KEY.mac}:${s.replaceAll(':', '')}`,
  vlan: (n: number) => `${IDX_KEY.vlan}:${n.toString(16).padStart(4, '0')}`,
  ipv4: (s: string) => `${IDX_KEY.ipv4}:${Buffer.from(s.split('.').map(Number)).toString('hex')}`,
  ipv6: (s: string) => {
    const [head, tail] = s.split('::') as [string, string | undefined];
    const h = head ? head.split(':') : [];
    const t = tail !== undefined && tail ? tail.split(':') : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    return `${IDX_KEY.ipv6}:${groups.map((g) => parseInt(g, 16).toString(16).padStart(4, '0')).join('')}`;
  },
  port: (n: number) => `${IDX_KEY.port}:${n.toString(16).padStart(4, '0')}`,
  proto: (n: number) => `${IDX_KEY.proto}:${n.toString(16).padStart(2, '0')}`,
};

export interface TsharkPacket {
  number: number;
  protocols: string[];
  /** Keys of the outer headers (what the index holds without `tunnel`). */
  outer: Set<string>;
  /** Keys of every header, tunnels' included (what it holds with `tunnel`). */
  all: Set<string>;
  /** IPv4 fragment fields of the outer header. */
  ipId?: number;
  ipMf?: boolean;
  ipFragOffset?: number;
}

const FIELDS = [
  'frame.number', 'frame.protocols', 'eth.src', 'eth.dst', 'vlan.id', 'ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst',
  'arp.src.proto_ipv4', 'arp.dst.proto_ipv4', 'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'udp.dstport', 'sctp.srcport',
  'sctp.dstport', 'ip.proto', 'ipv6.nxt', 'ip.id', 'ip.flags.mf', 'ip.frag_offset',
] as const;

/** tshark's view of every packet (reassembly off: each fragment is seen as it is). */
export function tsharkView(pcap: string): TsharkPacket[] {
  const text = execFileSync(
    'tshark',
    ['-r', pcap, '-n', '-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE', '-T', 'fields', ...FIELDS.flatMap((f) => ['-e', f]), '-E', 'occurrence=a', '-E', 'aggregator=,', '-E', 'separator=\t'],
    { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  return text
    .trimEnd()
    .split('\n')
    .map((line) => {
      const cols = line.split('\t');
      const get = (f: (typeof FIELDS)[number]) => {
        const v = cols[FIELDS.indexOf(f)] ?? '';
        return v ? v.split(',') : [];
      };
      const protocols = get('frame.protocols')[0]!.split(':');
      const outer = new Set<string>();
      const all = new Set<string>();
      const both = (k: string) => (outer.add(k), all.add(k));
      for (const m of [get('eth.src')[0], get('eth.dst')[0]]) if (m) both(keyOf.mac(m));
      for (const v of get('vlan.id')) both(keyOf.vlan(Number(v)));
      for (const a of [...get('arp.src.proto_ipv4'), ...get('arp.dst.proto_ipv4')]) both(keyOf.ipv4(a));
      // The outer IP header is the first ip/ipv6 layer; its transport the first layer after it and
      // its extension headers.
      const ipAt = protocols.findIndex((p) => p === 'ip' || p === 'ipv6');
      let l4At = ipAt + 1;
      while (l4At < protocols.length && (protocols[l4At]!.startsWith('ipv6.') || protocols[l4At] === 'ah')) l4At++;
      const l4 = protocols[l4At];
      for (const [f, mk] of [
        ['ip.src', keyOf.ipv4], ['ip.dst', keyOf.ipv4], ['ipv6.src', keyOf.ipv6], ['ipv6.dst', keyOf.ipv6],
      ] as const) {
        const vals = get(f);
        vals.forEach((v) => all.add(mk(v)));
        if (ipAt >= 0 && vals.length && (protocols[ipAt] === 'ip') === f.startsWith('ip.')) outer.add(mk(vals[0]!));
      }
      for (const t of ['tcp', 'udp', 'sctp'] as const) {
        const ports = [...get(`${t}.srcport`), ...get(`${t}.dstport`)];
        ports.forEach((p) => all.add(keyOf.port(Number(p))));
        if (l4 === t) for (const f of [`${t}.srcport`, `${t}.dstport`] as const) if (get(f).length) outer.add(keyOf.port(Number(get(f)[0])));
      }
      const proto = protocols[ipAt] === 'ip' ? get('ip.proto')[0] : protocols[ipAt] === 'ipv6' ? get('ipv6.nxt')[0] : undefined;
      if (proto !== undefined) both(keyOf.proto(Number(proto)));
      const upper = { tcp: 6, udp: 17, sctp: 132, icmpv6: 58, icmp: 1 }[l4 ?? ''];
      if (protocols[ipAt] === 'ipv6' && upper !== undefined) both(keyOf.proto(upper));
      const pkt: TsharkPacket = { number: Number(get('frame.number')[0]), protocols, outer, all };
      if (protocols[ipAt] === 'ip' && get('ip.id').length) {
        pkt.ipId = parseInt(get('ip.id')[0]!, 16);
        pkt.ipMf = get('ip.flags.mf')[0] === '1' || get('ip.flags.mf')[0] === 'True';
        pkt.ipFragOffset = Number(get('ip.frag_offset')[0]);
      }
      return pkt;
    });
}
