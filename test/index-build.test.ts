// The index builder (daemon/native/index-build.c, packet-fields.c) through the qe-index tool: indexes
// of real pcap files, decoded here from the format's numbers (format.ts), held against tshark's view
// of every packet. Every key tshark sees in a packet must have a posting in the packet's block at or
// before the packet; every posting must be a record's start; inner tunnel headers are indexed only
// with `tunnel`; later fragments are found by their datagram's ports.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDX_FIELDS, IDX_FLAG_COMPLETE, indexPathFor } from '../daemon/src/index/format.js';
import { buildPcap, GLOBAL_HEADER_LEN, parsePcap } from '../daemon/src/pcap/format.js';
import { root } from './lib/cli.js';
import { BASE_NS, MS, frame, tempDir } from './lib/fixture.js';
import { decodeIndex, keyOf, tsharkView, type DecodedIndex, type TsharkPacket } from './lib/index-check.js';
import { ether, indexTraffic, ipv4, udp, type TrafficPacket } from './lib/index-traffic.js';

const qeIndex = join(root, 'build', 'native', 'qe-index');
const { dir: work, cleanup } = tempDir('index-build');
afterAll(() => cleanup());

const ALL = 'mac,vlan,ip,port,proto';
const BLOCK = 4096;

function run(args: string[]) {
  const r = spawnSync(qeIndex, args, { encoding: 'utf8', timeout: 60_000 });
  const lines = r.stdout.trim() ? r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) : [];
  return { status: r.status, lines, stderr: r.stderr };
}

function writePcap(name: string, pkts: TrafficPacket[], opts: { nanos?: boolean; swap?: boolean } = {}): string {
  let b = buildPcap(pkts, { nanos: opts.nanos !== false });
  if (opts.swap) b = byteSwap(b);
  const path = join(work, name);
  writeFileSync(path, b);
  return path;
}

/** The same file written by a machine of the other byte order. */
function byteSwap(b: Buffer): Buffer {
  const out = Buffer.from(b);
  const swap32 = (o: number) => out.writeUInt32BE(b.readUInt32LE(o), o);
  swap32(0);
  out.writeUInt16BE(b.readUInt16LE(4), 4);
  out.writeUInt16BE(b.readUInt16LE(6), 6);
  for (const o of [8, 12, 16, 20]) swap32(o);
  for (let off = GLOBAL_HEADER_LEN; off < b.length; ) {
    const caplen = b.readUInt32LE(off + 8);
    for (let i = 0; i < 16; i += 4) swap32(off + i);
    off += 16 + caplen;
  }
  return out;
}

function indexOf(pcap: string, fields = ALL, extra: string[] = []): DecodedIndex {
  const r = run(['--fields', fields, '--block-size', String(BLOCK), ...extra, pcap]);
  expect(r.status, r.stderr + JSON.stringify(r.lines)).toBe(0);
  const indexed = r.lines.find((l) => l.type === 'indexed');
  expect(indexed).toMatchObject({ path: pcap, index: indexPathFor(pcap) });
  expect(r.lines.at(-1)).toEqual({ type: 'done', files: 1, failed: 0 });
  const raw = readFileSync(indexPathFor(pcap));
  expect(indexed!.index_bytes).toBe(raw.length);
  expect(existsSync(indexPathFor(pcap) + '.tmp')).toBe(false);
  return decodeIndex(raw);
}

/** A key with a posting in the packet's block at or before it. */
function covered(idx: DecodedIndex, key: string, off: number): boolean {
  const block = Math.floor(off / idx.blockSize);
  return (idx.segments[0]!.keys.get(key) ?? []).some((p) => Math.floor(p / idx.blockSize) === block && p <= off);
}

/** Later IPv4 fragments take the ports tshark shows in their datagram's first fragment. */
function fragmentPorts(view: TsharkPacket[], pkts: TrafficPacket[]): Map<number, string[]> {
  const firsts = new Map<string, string[]>();
  const out = new Map<number, string[]>();
  view.forEach((v, i) => {
    if (v.ipId === undefined || (!v.ipMf && !v.ipFragOffset)) return;
    const d = pkts[i]!.data;
    const id = `${d.subarray(26, 34).toString('hex')}/${v.ipId}/${d[23]}`;
    const ports = [...v.outer].filter((k) => k.startsWith('5:'));
    if (!v.ipFragOffset) firsts.set(id, ports);
    else out.set(i, firsts.get(id) ?? []);
  });
  return out;
}

let pkts: TrafficPacket[];
let pcap: string;
let view: TsharkPacket[];
let offsets: number[];

beforeAll(() => {
  spawnSync('make', ['-s', '-C', join(root, 'daemon', 'native')], { stdio: 'inherit' });
  pkts = indexTraffic(3000, 17);
  pcap = writePcap('traffic.pcap', pkts);
  view = tsharkView(pcap);
  offsets = parsePcap(readFileSync(pcap)).records.map((r) => r.offset);
  expect(view.length).toBe(pkts.length);
}, 120_000);

describe('qe-index', () => {
  it('writes a complete index whose postings cover every key tshark sees in each packet', () => {
    const idx = indexOf(pcap);
    expect(idx.flags).toBe(IDX_FLAG_COMPLETE);
    expect(idx.fields).toBe(IDX_FIELDS.mac | IDX_FIELDS.vlan | IDX_FIELDS.ip | IDX_FIELDS.port | IDX_FIELDS.proto);
    expect(idx.linktype).toBe(1);
    expect(idx.blockSize).toBe(BLOCK);
    expect(idx.pcapFirstNs).toBe(pkts[0]!.tsNs);
    expect(idx.segments.length).toBe(1);
    const seg = idx.segments[0]!;
    expect(seg).toMatchObject({ offLo: GLOBAL_HEADER_LEN, offHi: readFileSync(pcap).length, records: pkts.length, firstNs: pkts[0]!.tsNs, lastNs: pkts.at(-1)!.tsNs });

    const starts = new Set(offsets);
    for (const [key, postings] of seg.keys) for (const p of postings) expect(starts.has(p), `${key}: posting ${p} is not a record start`).toBe(true);

    const frag = fragmentPorts(view, pkts);
    const kinds = new Set<string>();
    let checked = 0;
    view.forEach((v, i) => {
      kinds.add(pkts[i]!.kind);
      const expected = [...v.outer, ...(frag.get(i) ?? [])];
      for (const k of expected) {
        checked++;
        expect(covered(idx, k, offsets[i]!), `packet ${i + 1} (${pkts[i]!.kind}, ${v.protocols.join(':')}): key ${k}`).toBe(true);
      }
    });
    expect(checked).toBeGreaterThan(pkts.length * 4);
    // The traffic has every case the parser walks.
    for (const k of ['vlan', 'qinq-ipv6', 'mpls-ipv4', 'vlan-mpls-ipv6', 'ipv6-ext', 'ipv4-frag-last', 'ipv6-frag-last', 'vxlan', 'gre-eth', 'gre-ip', 'gtpu', 'arp', 'lldp', 'cut-at-41'])
      expect(kinds, k).toContain(k);
    // Later fragments had their datagram's ports to find, and did.
    expect([...frag.values()].filter((p) => p.length === 2).length).toBeGreaterThan(20);
  });

  it('indexes the inner addresses and ports of VXLAN, GRE and GTP-U only with `tunnel`', () => {
    const plain = indexOf(pcap, 'ip,port');
    const inner = [...new Set(view.flatMap((v) => [...v.all].filter((k) => !v.outer.has(k))))];
    // 172.31.x.x and ports 7000-7039 appear only inside tunnels (index-traffic.ts).
    const innerOnly = inner.filter((k) => k.startsWith(`${keyOf.ipv4('172.31.0.0').slice(0, 6)}`) || /^5:1b[5-7]/.test(k));
    expect(innerOnly.length).toBeGreaterThan(30);
    for (const k of innerOnly) expect(plain.segments[0]!.keys.has(k), `${k} without tunnel`).toBe(false);

    const tunnelled = indexOf(pcap, 'ip,port,tunnel');
    expect(tunnelled.fields).toBe(IDX_FIELDS.ip | IDX_FIELDS.port | IDX_FIELDS.tunnel);
    let checked = 0;
    view.forEach((v, i) => {
      for (const k of v.all) {
        if (!k.startsWith('3:') && !k.startsWith('4:') && !k.startsWith('5:')) continue;
        checked++;
        expect(covered(tunnelled, k, offsets[i]!), `packet ${i + 1} (${pkts[i]!.kind}): key ${k} with tunnel`).toBe(true);
      }
    });
    expect(checked).toBeGreaterThan(pkts.length * 3);
  });

  it('holds only what was chosen: ARP and other non-IP frames give their MACs and VLANs (ARP its addresses)', () => {
    const idx = indexOf(pcap, 'vlan');
    expect([...idx.segments[0]!.keys.keys()].every((k) => k.startsWith('2:'))).toBe(true);
    expect(idx.segments[0]!.keys.has(keyOf.vlan(99))).toBe(true); // tagged LLDP
    const lldp = pkts.findIndex((p) => p.kind === 'lldp' && p.data.readUInt16BE(12) === 0x8100);
    expect(covered(idx, keyOf.vlan(99), offsets[lldp]!)).toBe(true);
  });

  it.each([
    ['raw IP', 101],
    ['Linux cooked (SLL)', 113],
    ['Linux cooked v2 (SLL2)', 276],
  ] as const)('indexes %s captures (link type %i) as tshark reads them', (_name, linktype) => {
    const converted = pkts.flatMap((p) => {
      if (p.data.length < 14) return [];
      const type = p.data.readUInt16BE(12);
      const src = p.data.subarray(6, 12);
      const rest = p.data.subarray(14);
      if (linktype === 101) return type === 0x0800 || type === 0x86dd ? [{ ...p, data: rest }] : [];
      const h = Buffer.alloc(linktype === 113 ? 16 : 20);
      if (linktype === 113) {
        h.writeUInt16BE(1, 2); // ARPHRD_ETHER
        h.writeUInt16BE(6, 4);
        src.copy(h, 6);
        h.writeUInt16BE(type, 14);
      } else {
        h.writeUInt16BE(type, 0);
        h.writeUInt32BE(3, 4);
        h.writeUInt16BE(1, 8);
        h[11] = 6;
        src.copy(h, 12);
      }
      return [{ ...p, data: Buffer.concat([h, rest]), ...(p.origlen ? { origlen: p.origlen - 14 + h.length } : {}) }];
    });
    const path = writePcap(`linktype-${linktype}.pcap`, converted);
    const b = readFileSync(path);
    b.writeUInt32LE(linktype, 20);
    writeFileSync(path, b);
    const idx = indexOf(path, 'vlan,ip,port,proto');
    expect(idx.linktype).toBe(linktype);
    const v = tsharkView(path);
    const offs = parsePcap(b).records.map((r) => r.offset);
    expect(v.length).toBe(converted.length);
    let checked = 0;
    v.forEach((pv, i) => {
      for (const k of pv.outer) {
        if (k.startsWith('1:')) continue; // MACs not chosen
        checked++;
        expect(covered(idx, k, offs[i]!), `${_name} packet ${i + 1} (${converted[i]!.kind}): ${k}`).toBe(true);
      }
    });
    expect(checked).toBeGreaterThan(converted.length * 2);
  });

  it('holds tens of thousands of distinct keys (the key table grows) without losing or repeating one', () => {
    const many: TrafficPacket[] = [];
    for (let i = 0; i < 20000; i++) {
      const a = `10.${(i >> 8) & 255}.${i & 255}.1`;
      const b = `172.16.${(i * 7) & 255}.${(i * 13) & 255}`;
      many.push({ tsNs: 1_714_557_600_000_000_000n + BigInt(i) * 1000n, kind: 'many', data: ether(i & 0xfff, 0xfff, [], 0x0800, ipv4(a, b, 17, udp(1024 + (i % 30000), 53, 4))) });
    }
    const path = writePcap('many-keys.pcap', many);
    const idx = indexOf(path, 'ip,port'); // decodeIndex fails on a repeated or unsorted key
    const v = tsharkView(path);
    const offs = parsePcap(readFileSync(path)).records.map((r) => r.offset);
    expect(idx.segments[0]!.keys.size).toBeGreaterThan(40000);
    v.forEach((pv, i) => {
      for (const k of pv.outer) if (!k.startsWith('1:') && !k.startsWith('6:')) expect(covered(idx, k, offs[i]!), `packet ${i + 1}: ${k}`).toBe(true);
    });
  });

  it('reads microsecond and byte-swapped files to the same index', () => {
    const some = pkts.slice(0, 800).map((p) => ({ ...p, tsNs: (p.tsNs / 1000n) * 1000n }));
    const a = indexOf(writePcap('nano.pcap', some));
    const b = indexOf(writePcap('micro.pcap', some, { nanos: false }));
    const c = indexOf(writePcap('swapped.pcap', some, { nanos: false, swap: true }));
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it('writes each block\'s first record start in the block table, none where a jumbo record spans the block, and postings as blocks', () => {
    // Small frames between 9000-byte ones: at 4096-byte blocks a jumbo record covers whole blocks
    // in which no record starts.
    const jumbo = Array.from({ length: 60 }, (_, i) => ({
      tsNs: BASE_NS + BigInt(i) * MS,
      data: frame({ src: `10.0.0.${1 + (i % 3)}`, dst: '10.9.9.9', proto: 'udp', sport: 1000 + i, dport: 53, payload: i % 4 === 3 ? 9000 : 100 }),
    }));
    const path = writePcap('jumbo.pcap', jumbo);
    const idx = indexOf(path, 'ip,port');
    const seg = idx.segments[0]!;
    const starts = parsePcap(readFileSync(path)).records.map((r) => r.offset);
    const lastBlock = Math.floor((seg.offHi - 1) / BLOCK);
    const want = Array.from({ length: lastBlock + 1 }, (_, blk) => starts.find((o) => Math.floor(o / BLOCK) === blk));
    expect(seg.table).toEqual(want);
    expect(want.filter((o) => o === undefined).length).toBeGreaterThan(10);
    // 10.0.0.1 is in every third frame: its postings are the blocks where one starts.
    const host = starts.filter((_, i) => i % 3 === 0).map((o) => Math.floor(o / BLOCK));
    expect(seg.blocks.get(keyOf.ipv4('10.0.0.1'))).toEqual([...new Set(host)]);
    // A port in one frame only: one posting, its block; the start given is the block's first record.
    const blk = Math.floor(starts[7]! / BLOCK);
    expect(seg.blocks.get(keyOf.port(1007))).toEqual([blk]);
    expect(seg.keys.get(keyOf.port(1007))).toEqual([want[blk]]);
  });

  it('indexes a .part up to its last whole record', () => {
    const some = pkts.slice(0, 500);
    const whole = buildPcap(some);
    const ends = parsePcap(whole).records.map((r) => r.offset + 16 + r.caplen);
    const cut = ends[399]! + 30; // inside record 401
    const path = join(work, 'open.pcap.part');
    writeFileSync(path, whole.subarray(0, cut));
    const idx = indexOf(path);
    expect(idx.segments[0]).toMatchObject({ records: 400, offHi: ends[399] });
  });

  it('refuses bad input with a clear message and still indexes the other files', () => {
    const notPcap = join(work, 'text.pcap');
    writeFileSync(notPcap, 'hello, this is not a capture file at all');
    const usb = join(work, 'usb.pcap');
    writeFileSync(usb, buildPcap(pkts.slice(0, 3), { linktype: 189 }));
    const r = run(['--fields', 'ip', notPcap, usb, pcap, join(work, 'missing.pcap')]);
    expect(r.status).toBe(4);
    const errors = r.lines.filter((l) => l.type === 'error');
    expect(errors.map((e) => e.path)).toEqual([notPcap, usb, join(work, 'missing.pcap')]);
    expect(errors[0]!.message).toMatch(/not a classic pcap file/);
    expect(errors[1]!.message).toMatch(/link type 189 is not indexed/);
    expect(errors[2]!.message).toMatch(/No such file/);
    expect(existsSync(indexPathFor(usb))).toBe(false);
    expect(r.lines.filter((l) => l.type === 'indexed').map((l) => l.path)).toEqual([pcap]);
    expect(r.lines.at(-1)).toEqual({ type: 'done', files: 4, failed: 3 });

    for (const [args, msg] of [
      [['--fields', 'ip,colour', pcap], /unknown field 'colour' \(known: mac, vlan, ip, port, proto, tunnel\)/],
      [['--fields', '', pcap], /--fields is empty/],
      [['--fields', 'ip', '--block-size', '5000', pcap], /--block-size 5000 is not a power of two from 4096 to 16777216/],
      [['--fields', 'ip'], /no FILE given/],
    ] as const) {
      const u = run([...args]);
      expect(u.status).toBe(2);
      expect(u.stderr).toMatch(msg);
    }
  });

  it('reports progress on the status fd', () => {
    const r = spawnSync('bash', ['-c', `"${qeIndex}" --fields ip --status-fd 3 --progress-ms 1 "${pcap}" 3>&1 1>/dev/null`], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const size = readFileSync(pcap).length;
    expect(lines.filter((l) => l.type === 'progress').at(-1)).toEqual({ type: 'progress', path: pcap, bytes: size, total: size });
    expect(lines.at(-1)).toEqual({ type: 'done', files: 1, failed: 0 });
  });
});
