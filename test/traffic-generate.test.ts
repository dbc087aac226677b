// The generator is checked with the real dissectors (tshark, capinfos) and the real trafgen: the
// files it writes are benchmark inputs, so "a tool accepts them" is what matters.

import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAGIC_MICRO, MAGIC_NANO, buildPcap, parsePcap } from '../daemon/src/pcap/format.js';
import {
  generateFrames,
  main,
  parseSize,
  trafgenConfig,
  writePcapFile,
  writeTrafgenConfig,
  type Profile,
} from '../daemon/src/traffic/generate.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'qe-traffic-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tool(cmd: string, args: string[]): Promise<string> {
  const r = await execa(cmd, args, { stdin: 'ignore' });
  return r.stdout;
}

const TSHARK_CHECKS = [
  '-o', 'ip.check_checksum:TRUE',
  '-o', 'tcp.check_checksum:TRUE',
  '-o', 'udp.check_checksum:TRUE',
];

/** Frames tshark flags as malformed, with a bad checksum, or with any warning or error. */
async function problems(file: string): Promise<string> {
  const filter = [
    '_ws.malformed',
    '_ws.expert.severity >= "warning"',
    ...['ip', 'tcp', 'udp', 'icmp', 'icmpv6'].map((p) => `${p}.checksum.status == "Bad"`),
  ].join(' || ');
  return tool('tshark', ['-n', '-r', file, ...TSHARK_CHECKS, '-Y', filter]);
}

/** One line per frame: the requested fields, tab-separated, as tshark prints them. */
async function fields(file: string, names: string[], filter?: string): Promise<string[][]> {
  const out = await tool('tshark', [
    '-n', '-r', file, ...TSHARK_CHECKS, '-T', 'fields', '-E', 'occurrence=f',
    ...names.flatMap((n) => ['-e', n]),
    ...(filter ? ['-Y', filter] : []),
  ]);
  return out === '' ? [] : out.split('\n').map((l) => l.split('\t'));
}

async function capinfosCount(file: string): Promise<number> {
  const out = await tool('capinfos', ['-M', '-c', '-T', '-r', file]);
  return Number(out.trim().split('\t')[1]);
}

function histogram(values: string[]): Record<string, number> {
  const h: Record<string, number> = {};
  for (const v of values) h[v] = (h[v] ?? 0) + 1;
  return h;
}

describe('generateFrames', () => {
  it('is deterministic per seed and differs between seeds', () => {
    for (const p of ['64', '1500', 'imix', 'mixed'] as Profile[]) {
      const a = Buffer.concat([...generateFrames(p, 500, 42)]);
      const b = Buffer.concat([...generateFrames(p, 500, 42)]);
      const c = Buffer.concat([...generateFrames(p, 500, 43)]);
      expect(a.equals(b)).toBe(true);
      expect(a.equals(c)).toBe(false);
    }
  });

  it('yields exactly count frames', () => {
    expect([...generateFrames('mixed', 777, 1)]).toHaveLength(777);
    expect([...generateFrames('64', 0, 1)]).toHaveLength(0);
  });
});

describe('size profiles in tshark', () => {
  const cases: [Profile, Record<string, number>][] = [
    ['64', { '60': 12000 }],
    ['1500', { '1514': 12000 }],
    // 64/594/1518 on the wire, without the FCS in pcap; 12000 frames = 1000 whole 7:4:1 cycles.
    ['imix', { '60': 7000, '590': 4000, '1514': 1000 }],
  ];
  for (const [profile, expected] of cases) {
    it(`${profile}: count, sizes, no malformed frames or checksum errors`, async () => {
      const file = join(dir, `${profile}.pcap`);
      const r = await writePcapFile(file, { profile, count: 12000, seed: 5 });
      expect(r.packets).toBe(12000);
      expect((await stat(file)).size).toBe(r.bytes);
      expect(await capinfosCount(file)).toBe(12000);
      const rows = await fields(file, ['frame.len', 'frame.cap_len', 'ip.checksum.status', 'udp.checksum.status']);
      expect(histogram(rows.map((r) => r[0]!))).toEqual(expected);
      expect(rows.every((r) => r[0] === r[1])).toBe(true);
      // Status 1 is "Good": the checksums were verified, not merely left unchecked.
      expect(rows.every((r) => r[2] === '1' && r[3] === '1')).toBe(true);
      expect(await problems(file)).toBe('');
    });
  }
});

describe('mixed profile in tshark', () => {
  const file = () => join(dir, 'mixed.pcap');
  const names = [
    'eth.type', 'vlan.id', 'ipv6.src', 'tcp.flags', 'udp.srcport', 'http.request.method', 'http.response.code',
    'dns.flags.response', 'dns.count.answers', 'icmp.type', 'icmpv6.type', 'arp.opcode',
    'ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status',
  ] as const;
  type Row = Record<(typeof names)[number], string>;
  let rows: Row[] = [];
  beforeAll(async () => {
    await writePcapFile(file(), { profile: 'mixed', count: 20000, seed: 9 });
    rows = (await fields(file(), [...names])).map((r) => Object.fromEntries(names.map((n, i) => [n, r[i] ?? ''])) as Row);
  });
  const count = (pred: (r: Row) => boolean) => rows.filter(pred).length;

  it('has no malformed frames, warnings or checksum errors', async () => {
    expect(await capinfosCount(file())).toBe(20000);
    expect(rows).toHaveLength(20000);
    expect(await problems(file())).toBe('');
  });

  it('verifies every IP, TCP, UDP and ICMP checksum as good', () => {
    const statuses = rows.flatMap((r) =>
      [r['ip.checksum.status'], r['tcp.checksum.status'], r['udp.checksum.status'], r['icmp.checksum.status'], r['icmpv6.checksum.status']],
    ).filter((s) => s !== '');
    expect(statuses.length).toBeGreaterThan(20000);
    expect(new Set(statuses)).toEqual(new Set(['1']));
  });

  it('holds the expected conversations', () => {
    expect(count((r) => r['tcp.flags'] === '0x0002')).toBeGreaterThan(50); // SYN
    expect(count((r) => r['tcp.flags'] === '0x0012')).toBeGreaterThan(50); // SYN/ACK
    expect(count((r) => r['tcp.flags'] === '0x0011')).toBeGreaterThan(100); // FIN/ACK
    expect(count((r) => r['http.request.method'] === 'GET')).toBeGreaterThan(50);
    expect(count((r) => r['http.response.code'] === '200')).toBeGreaterThan(50);
    expect(count((r) => r['dns.flags.response'] === 'False' || r['dns.flags.response'] === '0')).toBeGreaterThan(50);
    expect(count((r) => Number(r['dns.count.answers']) > 0)).toBeGreaterThan(50);
    expect(count((r) => r['icmp.type'] === '8')).toBeGreaterThan(10);
    expect(count((r) => r['icmp.type'] === '0')).toBeGreaterThan(10);
    expect(count((r) => r['icmpv6.type'] === '128')).toBeGreaterThan(5);
    expect(count((r) => r['arp.opcode'] === '1')).toBeGreaterThan(10);
    expect(count((r) => r['arp.opcode'] === '2')).toBeGreaterThan(10);
    expect(count((r) => r['ipv6.src'] !== '' && r['tcp.flags'] !== '')).toBeGreaterThan(200);
    expect(count((r) => r['ipv6.src'] !== '' && r['udp.srcport'] !== '')).toBeGreaterThan(20);
  });

  it('tags about a tenth of the frames with 802.1Q and a few with QinQ', () => {
    const tagged = count((r) => r['vlan.id'] !== '');
    const qinq = count((r) => r['eth.type'] === '0x88a8');
    expect(tagged / rows.length).toBeGreaterThan(0.04);
    expect(tagged / rows.length).toBeLessThan(0.2);
    expect(qinq).toBeGreaterThan(0);
    expect(qinq).toBeLessThan(tagged / 2);
  });
});

describe('the tshark check itself', () => {
  it('notices a bad TCP checksum', async () => {
    const frames = [...generateFrames('mixed', 200, 9)];
    // Find a TCP/IPv4 frame without VLAN tags and flip a payload-independent checksum bit.
    const i = frames.findIndex((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 6);
    const bad = Buffer.from(frames[i]!);
    bad[14 + 20 + 16]! ^= 0x01;
    frames[i] = bad;
    const file = join(dir, 'bad.pcap');
    await writeFile(file, buildPcap(frames.map((data, k) => ({ tsNs: BigInt(k) * 1000n, data }))));
    expect(await problems(file)).not.toBe('');
  });
});

describe('writePcapFile', () => {
  it('writes nanosecond headers with the requested timestamps', async () => {
    const file = join(dir, 'ts.pcap');
    await writePcapFile(file, { profile: 'imix', count: 5, startNs: 1_000_000_000_123n, intervalNs: 7n });
    const p = parsePcap(await readFile(file));
    expect(p.header.nanos).toBe(true);
    expect((await readFile(file)).readUInt32LE(0)).toBe(MAGIC_NANO);
    expect(p.records.map((r) => r.tsNs)).toEqual([0, 1, 2, 3, 4].map((i) => 1_000_000_000_123n + 7n * BigInt(i)));
    expect(Buffer.concat(p.records.map((r) => r.data)).equals(Buffer.concat([...generateFrames('imix', 5, 1)]))).toBe(true);
  });

  it('writes microsecond files on request', async () => {
    const file = join(dir, 'us.pcap');
    await writePcapFile(file, { profile: '64', count: 3, nanos: false, intervalNs: 2000n });
    expect((await readFile(file)).readUInt32LE(0)).toBe(MAGIC_MICRO);
    expect(await capinfosCount(file)).toBe(3);
  });

  it('streams files larger than its write chunk and stops under maxBytes', async () => {
    const file = join(dir, 'sized.pcap');
    const limit = 20_000_000;
    const r = await writePcapFile(file, { profile: '1500', maxBytes: limit });
    expect(r.bytes).toBeLessThanOrEqual(limit);
    expect(r.bytes).toBeGreaterThan(limit - 1530);
    expect((await stat(file)).size).toBe(r.bytes);
    const p = parsePcap(await readFile(file));
    expect(p.records).toHaveLength(r.packets);
    expect(p.wholeEnd).toBe(r.bytes);
  });
});

describe('CLI', () => {
  it('writes a pcap file', async () => {
    const file = join(dir, 'cli.pcap');
    const out: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write;
    try {
      expect(await main(['--profile', 'imix', '--count', '240', '-w', file, '--seed', '3'])).toBe(0);
    } finally {
      process.stdout.write = orig;
    }
    expect(JSON.parse(out.join(''))).toMatchObject({ packets: 240 });
    expect(await capinfosCount(file)).toBe(240);
  });

  it('parses sizes', () => {
    expect(parseSize('2GB')).toBe(2e9);
    expect(parseSize('256MiB')).toBe(256 * 2 ** 20);
    expect(parseSize('1500')).toBe(1500);
    expect(() => parseSize('2 parsecs')).toThrow();
  });
});

describe('trafgen config', () => {
  it('keeps whole IMIX cycles', () => {
    const cfg = trafgenConfig({ profile: 'imix', frames: 13 });
    expect(cfg.match(/^\{$/gm)).toHaveLength(24);
  });

  for (const profile of ['64', 'imix', '1500'] as const) {
    it(`${profile}: trafgen sends exactly the generator's frames`, async () => {
      const cfg = join(dir, `${profile}.cfg`);
      const out = join(dir, `${profile}-trafgen.pcap`);
      await writeTrafgenConfig(cfg, { profile, seed: 11, frames: 24 });
      // trafgen can write to a pcap file instead of a device: it parses the config for real.
      await execa('trafgen', ['-i', cfg, '-o', out, '-n', '48', '-P', '1', '-C'], { stdin: 'ignore' });
      const sent = parsePcap(await readFile(out)).records.map((r) => r.data);
      const expected = [...generateFrames(profile, 24, 11)];
      expect(sent).toHaveLength(48);
      // Round robin: the 24 configured frames, twice.
      expect(Buffer.concat(sent).equals(Buffer.concat([...expected, ...expected]))).toBe(true);
    });
  }
});
