// Builds stores of capture files for the store and extract tests: real Ethernet/IPv4 frames (so
// BPF filters have something to match), files named by the contract, `.part` files cut mid-record.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPcap, GLOBAL_HEADER_LEN, RECORD_HEADER_LEN } from '../../daemon/src/pcap/format.js';
import { formatFileName } from '../../daemon/src/store/filename.js';

export const BASE_NS = 1_714_557_600_000_000_000n; // 2024-05-01T10:00:00Z
export const MS = 1_000_000n;

export interface FramePacket {
  tsNs: bigint;
  data: Buffer;
}

export interface FrameSpec {
  src: string;
  dst: string;
  proto: 'udp' | 'tcp';
  sport: number;
  dport: number;
  payload: number;
  /** A byte repeated in the payload, so packets differ in content as well as in headers. */
  fill?: number;
}

export function frame(s: FrameSpec): Buffer {
  const l4len = s.proto === 'udp' ? 8 : 20;
  const ipLen = 20 + l4len + s.payload;
  const b = Buffer.alloc(14 + ipLen);
  Buffer.from([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]).copy(b, 0);
  b.writeUInt16BE(0x0800, 12);
  const ip = 14;
  b[ip] = 0x45;
  b.writeUInt16BE(ipLen, ip + 2);
  b[ip + 8] = 64;
  b[ip + 9] = s.proto === 'udp' ? 17 : 6;
  s.src.split('.').forEach((o, i) => (b[ip + 12 + i] = +o));
  s.dst.split('.').forEach((o, i) => (b[ip + 16 + i] = +o));
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += b.readUInt16BE(ip + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  b.writeUInt16BE(~sum & 0xffff, ip + 10);
  const l4 = ip + 20;
  b.writeUInt16BE(s.sport, l4);
  b.writeUInt16BE(s.dport, l4 + 2);
  if (s.proto === 'udp') b.writeUInt16BE(8 + s.payload, l4 + 4);
  else {
    b[l4 + 12] = 0x50;
    b[l4 + 13] = 0x18;
  }
  b.fill(s.fill ?? 0xab, l4 + l4len);
  return b;
}

/** A deterministic pseudo-random generator, so a failing case can be reproduced. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

const HOSTS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '192.168.1.10'];

/** `count` packets from `startNs`, gaps of 1-20 ms, a mix of a few hosts, ports and protocols. */
export function traffic(startNs: bigint, count: number, seed: number): FramePacket[] {
  const r = rng(seed);
  const out: FramePacket[] = [];
  let ts = startNs;
  for (let i = 0; i < count; i++) {
    const src = HOSTS[Math.floor(r() * HOSTS.length)]!;
    let dst = HOSTS[Math.floor(r() * HOSTS.length)]!;
    if (dst === src) dst = '8.8.8.8';
    const proto = r() < 0.5 ? 'udp' : 'tcp';
    const data = frame({
      src,
      dst,
      proto,
      sport: 1024 + Math.floor(r() * 4),
      dport: [53, 80, 443, 5000][Math.floor(r() * 4)]!,
      payload: Math.floor(r() * 200),
      fill: Math.floor(r() * 256),
    });
    out.push({ tsNs: ts, data });
    ts += BigInt(1 + Math.floor(r() * 20)) * MS + BigInt(Math.floor(r() * 1_000_000));
  }
  return out;
}

/** Offsets where each record ends (after the global header), for cutting files mid-record. */
export function recordEnds(packets: readonly FramePacket[]): number[] {
  const ends: number[] = [];
  let off = GLOBAL_HEADER_LEN;
  for (const p of packets) {
    off += RECORD_HEADER_LEN + p.data.length;
    ends.push(off);
  }
  return ends;
}

/** A fresh directory; `base` lets a test that syncs thousands of times use a tmpfs. */
export function tempDir(prefix: string, base = tmpdir()): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(base, `qe-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface FixtureFile {
  path: string;
  iface: string;
  packets: FramePacket[];
  /** Bytes of a cut-short record after the whole ones (part files only). */
  partialTail: number;
  partial: boolean;
}

/**
 * Writes one capture file named by the contract. A part file gets `partialTail` bytes of a next
 * record after its whole records, as a helper killed mid-write would leave.
 */
export function writeCaptureFile(
  dir: string,
  iface: string,
  packets: FramePacket[],
  opts: { partial?: boolean; partialTail?: number; linktype?: number; snaplen?: number } = {},
): FixtureFile {
  mkdirSync(dir, { recursive: true });
  const name = formatFileName(packets[0]!.tsNs, iface) + (opts.partial ? '.part' : '');
  const whole = buildPcap(packets, { linktype: opts.linktype ?? 1, snaplen: opts.snaplen ?? 262144 });
  let bytes = whole;
  const tail = opts.partialTail ?? 0;
  if (tail > 0) {
    const extra = buildPcap([{ tsNs: packets[packets.length - 1]!.tsNs + MS, data: frame({ src: '10.9.9.9', dst: '10.0.0.1', proto: 'udp', sport: 9, dport: 9, payload: 300 }) }]);
    bytes = Buffer.concat([whole, extra.subarray(GLOBAL_HEADER_LEN, GLOBAL_HEADER_LEN + tail)]);
  }
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, iface, packets, partialTail: tail, partial: !!opts.partial };
}

export interface FixtureStore {
  dirs: string[];
  files: FixtureFile[];
  /** Every packet with its interface, in no particular order. */
  all: { iface: string; tsNs: bigint; data: Buffer }[];
}

/**
 * Three interfaces over two store directories, several files each, interleaved in time, and a
 * part file with a cut-short last record on two of them. Timestamps never tie across interfaces
 * (each interface has its own sub-millisecond phase), so merge order is unambiguous.
 */
export function buildFixtureStore(root: string): FixtureStore {
  const dirs = [join(root, 'store-a'), join(root, 'store-b')];
  const files: FixtureFile[] = [];
  const layout: { iface: string; dir: string; phase: bigint; sizes: number[]; partTail: number }[] = [
    { iface: 'eth0', dir: dirs[0]!, phase: 11n, sizes: [40, 35, 50, 30], partTail: 7 },
    { iface: 'eth1', dir: dirs[0]!, phase: 223n, sizes: [60, 45, 55], partTail: 0 },
    { iface: 'eth2', dir: dirs[1]!, phase: 4447n, sizes: [25, 70, 40, 20], partTail: 23 },
  ];
  let seed = 1;
  for (const l of layout) {
    let start = BASE_NS + l.phase;
    l.sizes.forEach((n, i) => {
      const pk = traffic(start, n, seed++).map((p) => ({ ...p, tsNs: p.tsNs - (p.tsNs % 10_000n) + l.phase }));
      const last = i === l.sizes.length - 1;
      files.push(writeCaptureFile(l.dir, l.iface, pk, { partial: last, partialTail: last ? l.partTail : 0 }));
      start = pk[pk.length - 1]!.tsNs + 3n * MS;
    });
  }
  const all = files.flatMap((f) => f.packets.map((p) => ({ iface: f.iface, ...p })));
  return { dirs, files, all };
}

export function writeConfig(path: string, storePaths: string[]): void {
  writeFileSync(path, `# test configuration\nstorage:\n  paths:\n${storePaths.map((p) => `    - ${p}\n`).join('')}`);
}
