// The index agrees with a scan: for several hundred random filters over a traffic set with VLAN,
// QinQ, IPv6 extension headers, fragments, tunnels, ARP and non-IP frames, indexed by the real
// qe-index, extraction through the index writes byte for byte what a scan writes. Runs qe-extract
// with what `extract` gives it (read-plan.ts, run-extractor.ts), so hundreds of filters stay fast.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planReads, type FileRead, type ReadPolicy } from '../daemon/src/extract/read-plan.js';
import { extractorJob } from '../daemon/src/extract/prepare.js';

// Every file with a usable index is read through it, block by block: the ranges themselves are
// what is tested. The default policy (gaps read through, dense files read whole) is run too.
const STRICT: ReadPolicy = { mergeGapBlocks: 0, dense: 2 };
import { extractorArgs, extractorList } from '../daemon/src/extract/run-extractor.js';
import { scanCatalog } from '../daemon/src/store/catalog.js';
import { selectFiles } from '../daemon/src/store/select-files.js';
import { parsePcap } from '../daemon/src/pcap/format.js';
import { root as repo } from './lib/cli.js';
import { BASE_NS, MS, frame, rng, tempDir, writeCaptureFile } from './lib/fixture.js';
import { MACS, PORTS, V4_HOSTS, V6_HOSTS, VLANS, mixedTraffic } from './lib/mixed-traffic.js';

const QE_INDEX = join(repo, 'build', 'native', 'qe-index');
const QE_EXTRACT = join(repo, 'build', 'native', 'qe-extract');
let dir: string;
let cleanup: () => void;
let streams: ReturnType<typeof selectFiles>['streams'];

beforeAll(async () => {
  ({ dir, cleanup } = tempDir('index-agreement'));
  const store = join(dir, 'store');
  const paths: string[] = [];
  for (const [k, iface] of ['eth0', 'eth1'].entries()) {
    let t = BASE_NS + BigInt(k) * 3n;
    for (let f = 0; f < 3; f++) {
      const packets = mixedTraffic(2000, 31 * k + f + 5, 0.9).map((data, i) => ({ tsNs: t + BigInt(i) * MS, data }));
      t = packets[packets.length - 1]!.tsNs + MS;
      paths.push(writeCaptureFile(store, iface, packets).path);
    }
  }
  // The first file of each interface without `tunnel`, the others with every field.
  const r1 = spawnSync(QE_INDEX, ['--fields', 'mac,vlan,ip,port,proto', '--block-size', '4096', paths[0]!, paths[3]!], { encoding: 'utf8' });
  const r2 = spawnSync(QE_INDEX, ['--fields', 'mac,vlan,ip,port,proto,tunnel', '--block-size', '4096', ...paths.filter((_, i) => i % 3 !== 0)], { encoding: 'utf8' });
  expect(r1.status, r1.stderr).toBe(0);
  expect(r2.status, r2.stderr).toBe(0);
  const catalog = await scanCatalog([store]);
  streams = selectFiles(catalog.entries, { fromNs: 0n, toNs: BASE_NS * 2n, ifaces: [] }).streams;
}, 60_000);
afterAll(() => cleanup?.());

/** Runs qe-extract as `extract` would, through the index or not; returns the output and the reads. */
async function run(filter: string, useIndex: boolean, policy: ReadPolicy = STRICT): Promise<{ out: Buffer; reads: FileRead[]; status: number | null; bytesRead: number; readCalls: number; filesOpened: number }> {
  const reads = await planReads(streams.flatMap((s) => s.files), filter, useIndex, policy);
  const files = streams.flatMap((s) => s.files);
  const chosen = { selection: { streams, files: files.length, size: files.reduce((n, f) => n + f.size, 0) }, linktype: 1, snaplen: 262144 };
  const job = extractorJob({ fromNs: 0n, toNs: BASE_NS * 2n, filter, ifaces: [], noIndex: !useIndex }, { chosen, reads }, '-');
  // spawnSync cannot feed a fourth descriptor: the ranges go through a file, the list on stdin.
  const file = join(dir, 'ranges.bin');
  writeFileSync(file, job.ranges?.bytes ?? Buffer.alloc(0));
  const args = extractorArgs(job, 0).map((a) => (a.startsWith('/dev/fd/') ? file : a === '3' ? '2' : a));
  const r2 = spawnSync(QE_EXTRACT, args, { input: extractorList(job.streams, job.ranges?.spans), maxBuffer: 1 << 28 });
  const done = r2.stderr.toString().split('\n').filter((l) => l.startsWith('{"type":"done"') || l.startsWith('{"type":"error"')).pop();
  const counts = done ? JSON.parse(done) : { bytes_read: -1, read_calls: -1, files_opened: -1 };
  return { out: r2.stdout, reads, status: r2.status, bytesRead: counts.bytes_read, readCalls: counts.read_calls, filesOpened: counts.files_opened };
}

/** Random filters over the traffic's fields, in every form the planner reads and some it does not. */
function randomFilter(r: () => number): string {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const v4 = () => (r() < 0.1 ? '10.9.9.9' : pick(V4_HOSTS));
  const prim = (): string => {
    switch (Math.floor(r() * 22)) {
      case 0: return `host ${v4()}`;
      case 1: return `${pick(['src', 'dst'])} host ${v4()}`;
      case 2: return `ip6 host ${pick(V6_HOSTS)}`;
      case 3: return `net ${pick(['10.0.0.0/16', '10.0.0.0/8', '192.168.5.0/24', '172.16.0.0 mask 255.255.0.0', '10.1', '2001:db8::/48'])}`;
      case 4: return `port ${pick(PORTS)}`;
      case 5: return `${pick(['src', 'dst'])} port ${pick(PORTS)}`;
      case 6: return `${pick(['tcp', 'udp'])} port ${pick(PORTS)}`;
      case 7: return `portrange ${pick(['50-60', '80-443', '100-200', '4000-9000'])}`;
      case 8: return `ip proto ${pick([1, 6, 17, 47, 58])}`;
      case 9: return pick(['tcp', 'udp', 'icmp', 'icmp6', 'sctp']);
      case 10: return `vlan ${pick(VLANS)}`;
      case 11: return 'vlan';
      case 12: return `ether ${pick(['host', 'src', 'dst'])} ${pick(MACS)}`;
      case 13: return `host ${v4()} or ${v4()}`;
      case 14: return `${pick(['src', 'dst'])} ${v4()}`;
      case 15: return pick(['ip', 'ip6', 'arp', 'len > 150', 'greater 100', 'ip[8] = 64', 'udp[8:2] = 0']);
      case 16: return `vlan ${pick(VLANS)} and host ${v4()}`;
      case 17: return `proto \\${pick(['tcp', 'udp', 'icmp'])}`;
      case 18: return `ip6 proto ${pick([6, 17, 58, 0, 60])}`;
      case 19: return `host ${pick(V6_HOSTS)}`;
      case 20: return `net ${pick(['fd00::/8', '2001:db8:1::/64'])}`;
      default: return `arp host ${v4()}`;
    }
  };
  const expr = (depth: number): string => {
    const k = r();
    if (depth >= 2 || k < 0.4) return prim();
    if (k < 0.5) return `not ${expr(depth + 1)}`;
    if (k < 0.6) return `(${expr(depth + 1)})`;
    return `${expr(depth + 1)} ${pick(['and', 'or', '&&', '||'])} ${expr(depth + 1)}`;
  };
  return expr(0);
}

describe('the index agrees with a scan', () => {
  it('over 400 random filters, byte for byte', async () => {
    const r = rng(20261206);
    let narrowed = 0;
    let matched = 0;
    let fullBytes = 0;
    let indexedBytes = 0;
    for (let i = 0; i < 400; i++) {
      const filter = randomFilter(r);
      const scan = await run(filter, false);
      const ix = await run(filter, true);
      expect({ filter, status: ix.status }).toEqual({ filter, status: scan.status });
      if (!ix.out.equals(scan.out)) throw new Error(`filter ${JSON.stringify(filter)}: through the index ${ix.out.length} bytes, the scan ${scan.out.length}`);
      if (!(await run(filter, true, {})).out.equals(scan.out)) throw new Error(`filter ${JSON.stringify(filter)}: the default read policy differs from the scan`);
      // A file the index rules out entirely is not even opened (its header is a disk trip).
      const ruledOut = ix.reads.filter((x) => x.why === 'index' && x.ranges!.length === 0).length;
      // (qe-extract may open fewer still: a filter that rejects everything reads one file a stream.)
      expect(ix.filesOpened, filter).toBeLessThanOrEqual(ix.reads.length - ruledOut);
      if (ix.status === 0) expect(ix.filesOpened, filter).toBe(ix.reads.length - ruledOut);
      if (ix.reads.some((x) => x.why === 'index')) narrowed++;
      if (scan.status === 0) matched++;
      fullBytes += scan.bytesRead;
      indexedBytes += ix.bytesRead;
    }
    // The test means something only if many filters narrow and many match.
    expect(narrowed).toBeGreaterThan(150);
    expect(matched).toBeGreaterThan(200);
    expect(indexedBytes).toBeLessThan(fullBytes);
  }, 300_000);

  it('does not open a file whose index rules out every record', async () => {
    const none = await run('host 10.9.9.9', true);
    expect(none.reads.map((x) => [x.why, x.ranges?.length])).toEqual(none.reads.map(() => ['index', 0]));
    expect({ status: none.status, opened: none.filesOpened }).toEqual({ status: (await run('host 10.9.9.9', false)).status, opened: 0 });
    // Four files of one interface, a host in the second and the fourth only.
    const { dir: d, cleanup: done } = tempDir('index-ruled-out');
    const saved = streams;
    try {
      let t = BASE_NS;
      for (let f = 0; f < 4; f++) {
        const frames = mixedTraffic(500, 70 + f, 0.5);
        if (f % 2) frames.splice(250, 0, frame({ src: '10.77.0.1', dst: '10.0.0.1', proto: 'udp', sport: 4000, dport: 53, payload: 30 + f }));
        const packets = frames.map((data, i) => ({ tsNs: t + BigInt(i) * MS, data }));
        t = packets[packets.length - 1]!.tsNs + MS;
        const path = writeCaptureFile(join(d, 'store'), 'eth0', packets).path;
        expect(spawnSync(QE_INDEX, ['--fields', 'ip,port,proto', '--block-size', '4096', path]).status).toBe(0);
      }
      streams = selectFiles((await scanCatalog([join(d, 'store')])).entries, { fromNs: 0n, toNs: BASE_NS * 2n, ifaces: [] }).streams;
      for (const filter of ['host 10.77.0.1', 'host 10.77.0.1 and port 53', 'src 10.77.0.1 or host 10.9.9.9']) {
        const ix = await run(filter, true);
        const scan = await run(filter, false);
        expect(ix.reads.map((x) => x.ranges!.length > 0), filter).toEqual([false, true, false, true]);
        expect({ filter, opened: ix.filesOpened, status: ix.status }).toEqual({ filter, opened: 2, status: 0 });
        expect(parsePcap(ix.out).records.length, filter).toBe(2);
        expect(ix.out.equals(scan.out), filter).toBe(true);
        expect(scan.filesOpened).toBe(4);
      }
    } finally {
      streams = saved;
      done();
    }
  });

  it('reads each candidate range with the rest of its last record in one read', async () => {
    // From a cold cache every read is a possible disk trip: a range and the record that ends past
    // it come in one read (the header of each file is one more).
    let ranges = 0;
    let calls = 0;
    for (const filter of ['host 10.0.0.1', 'port 53', 'vlan 100', 'tcp port 80 and host 10.0.0.2', 'udp']) {
      const ix = await run(filter, true);
      const through = ix.reads.filter((x) => x.why === 'index');
      expect(through.length, filter).toBe(ix.reads.length);
      ranges += through.reduce((n, x) => n + x.ranges!.length, 0);
      calls += ix.readCalls;
    }
    expect(ranges).toBeGreaterThan(200);
    expect(calls).toBeLessThanOrEqual(ranges + 5 * 6);
  });

  it('keeps a port query\'s whole datagrams with more in flight than the builder\'s fragment table holds', async () => {
    // 3000 first fragments (half to port 5000), then every later fragment: the builder's table
    // has lost most first fragments by then, and indexes those later fragments under port 0.
    const { dir: d, cleanup: done } = tempDir('index-fragments');
    try {
      const frag = (id: number, off: number, more: boolean, body: Buffer) => {
        const b = Buffer.alloc(34);
        b.writeUInt16BE(0x0800, 12);
        b[14] = 0x45;
        b.writeUInt16BE(20 + body.length, 16);
        b.writeUInt16BE(id, 18);
        b.writeUInt16BE((more ? 0x2000 : 0) | (off >> 3), 20);
        b[22] = 64;
        b[23] = 17;
        b.set([10, 0, 0, 1], 26);
        b.set([10, 0, 0, 2], 30);
        return Buffer.concat([b, body]);
      };
      const frames: Buffer[] = [];
      for (let i = 0; i < 3000; i++) {
        const u = Buffer.alloc(16);
        u.writeUInt16BE(1000, 0);
        u.writeUInt16BE(i % 2 ? 5000 : 6000, 2);
        frames.push(frag(i, 0, true, u));
      }
      for (let i = 0; i < 3000; i++) frames.push(frag(i, 16, false, Buffer.alloc(16, 7)));
      const f = writeCaptureFile(join(d, 'store'), 'eth0', frames.map((data, i) => ({ tsNs: BASE_NS + BigInt(i) * MS, data })));
      expect(spawnSync(QE_INDEX, ['--fields', 'ip,port,proto', '--block-size', '4096', f.path]).status).toBe(0);
      const own = selectFiles((await scanCatalog([join(d, 'store')])).entries, { fromNs: 0n, toNs: BASE_NS * 2n, ifaces: [] }).streams;
      const saved = streams;
      streams = own;
      try {
        const scan = await run('udp port 5000', false);
        const ix = await run('udp port 5000', true);
        // 1500 first fragments; the later ones of the last 1024 (qe-extract's table of matching firsts).
        expect(parsePcap(scan.out).records.length).toBe(1500 + 1024);
        expect(ix.out.equals(scan.out)).toBe(true);
        expect(ix.reads[0]!.why).toBe('index');
      } finally {
        streams = saved;
      }
    } finally {
      done();
    }
  });
});

