// `qe-packets flows` and `qe-packets stats` over a real store: two interfaces imported with
// `capture --read` (the capture helper writes the flow tables), several files each. Every answer
// is held to the packets: totals to the records of the range counted here, hosts to tshark's
// endpoints, TCP conversations to tshark's conversations, --filter to extract, and the Community
// IDs of flows built on the specification's examples to the specification's values.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPcap, parsePcap, type PcapRecord } from '../daemon/src/pcap/format.js';
import { decodeFlowTable, flowPathFor } from '../daemon/src/flows/format.js';
import { checkFlowTable } from '../daemon/src/store/flow-check.js';
import { addressBytes } from '../daemon/src/flows/address.js';
import { STATS_BY } from '../daemon/src/flows/stats.js';
import { cli, readRecords, storeFiles, tempDir, writeConfig } from './lib/cli.js';
import { ether, ipv4, ipv6, sctp, tcp, udp } from './lib/index-traffic.js';
import { mixedTraffic } from './lib/mixed-traffic.js';

const T0 = 1_764_000_000_000_000_000n; // 2025-11-24T16:00:00Z
const MS = 1_000_000n;
const iso = (ns: bigint) => new Date(Number(ns / MS)).toISOString().replace('Z', `${(ns % MS).toString().padStart(6, '0')}Z`);
const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;

function seg(sport: number, dport: number, flags: number, payload = 0): Buffer {
  const t = tcp(sport, dport, payload);
  t[13] = flags;
  return t;
}
const icmp = (type: number, code: number) => Buffer.from([type, code, 0, 0, 0, 7, 0, 1, 9, 9, 9, 9]);

/**
 * The spec's example flows (corelight/community-id-spec, baseline/baseline_deflt.json), spread over
 * the whole import so each spans several files: a TCP conversation with a 2.5 ms handshake, a DNS
 * query and answer, an ICMP and an ICMPv6 echo, an SCTP exchange; and a reset connection.
 */
function knownFlows(): { tsNs: bigint; data: Buffer }[] {
  const out: { tsNs: bigint; data: Buffer }[] = [];
  const at = (ms: number, data: Buffer) => out.push({ tsNs: T0 + BigInt(Math.round(ms * 1e3)) * 1000n + 7n, data });
  const v4 = (s: string, d: string, p: number, b: Buffer) => ether(1, 2, [], 0x0800, ipv4(s, d, p, b));
  const [c, s] = ['128.232.110.120', '66.35.250.204'];
  at(100, v4(c, s, 6, seg(34855, 80, SYN)));
  at(102.5, v4(s, c, 6, seg(80, 34855, SYN | ACK)));
  at(103, v4(c, s, 6, seg(34855, 80, ACK)));
  for (let i = 0; i < 20; i++) {
    at(200 + i * 140, v4(c, s, 6, seg(34855, 80, PSH | ACK, 100)));
    at(250 + i * 140, v4(s, c, 6, seg(80, 34855, PSH | ACK, 200)));
  }
  at(2950, v4(c, s, 6, seg(34855, 80, FIN | ACK)));
  at(2951, v4(s, c, 6, seg(80, 34855, FIN | ACK)));
  at(2952, v4(c, s, 6, seg(34855, 80, ACK)));
  at(300, v4('192.168.1.52', '8.8.8.8', 17, udp(54585, 53, 30)));
  at(2700, v4('8.8.8.8', '192.168.1.52', 17, udp(53, 54585, 90)));
  at(400, v4('192.168.0.89', '192.168.0.1', 1, icmp(8, 0)));
  at(2800, v4('192.168.0.1', '192.168.0.89', 1, icmp(0, 0)));
  const [a6, b6] = ['3ffe:507:0:1:200:86ff:fe05:80da', '3ffe:501:0:1001::2'];
  at(500, ether(1, 2, [[0x8100, 42]], 0x86dd, ipv6(a6, b6, 58, icmp(128, 0))));
  at(2600, ether(1, 2, [[0x8100, 42]], 0x86dd, ipv6(b6, a6, 58, icmp(129, 0))));
  at(600, v4('192.168.170.8', '192.168.170.56', 132, sctp(7, 7)));
  at(2500, v4('192.168.170.56', '192.168.170.8', 132, sctp(7, 7)));
  at(700, v4('10.9.9.1', '10.9.9.2', 6, seg(40000, 8080, SYN)));
  at(701, v4('10.9.9.2', '10.9.9.1', 6, seg(8080, 40000, RST | ACK)));
  return out;
}

let dir: string;
let store: string;
let config: string;
/** Every record in the store, with its interface. */
let records: (PcapRecord & { iface: string })[];

beforeAll(async () => {
  dir = await tempDir('qe-flows-');
  store = join(dir, 'store');
  await mkdir(store);
  config = await writeConfig(dir, { paths: [store], file_size: '96KiB', capacity: '64MiB' });
  for (const [iface, seed, known] of [['ethA', 1, true], ['ethB', 2, false]] as const) {
    const bg = mixedTraffic(2500, seed, 0.2).map((data, i) => ({ tsNs: T0 + BigInt(i) * 1_200_000n + BigInt(seed), data }));
    const all = [...bg, ...(known ? knownFlows() : [])].sort((x, y) => (x.tsNs < y.tsNs ? -1 : x.tsNs > y.tsNs ? 1 : 0));
    const file = join(dir, `${iface}.pcap`);
    await writeFile(file, buildPcap(all, { nanos: true }));
    const r = await cli(['capture', '--read', file, '--iface', iface, '--config', config]);
    expect(r.exitCode, r.all).toBe(0);
  }
  records = [];
  for (const iface of ['ethA', 'ethB']) for (const r of await readRecords(await storeFiles([store], iface))) records.push({ ...r, iface });
}, 60_000);

afterAll(() => execFileSync('rm', ['-rf', dir]));

const range = (fromMs: number, toMs: number) => ['--from', iso(T0 + BigInt(fromMs) * MS), '--to', iso(T0 + BigInt(toMs) * MS)];
const inRange = (fromMs: number, toMs: number) => records.filter((r) => r.tsNs >= T0 + BigInt(fromMs) * MS && r.tsNs <= T0 + BigInt(toMs) * MS);
const sum = (rs: PcapRecord[]) => ({ packets: rs.length, bytes: rs.reduce((n, r) => n + r.origlen, 0) });

async function statsJson(args: string[]) {
  const r = await cli(['stats', '--config', config, '--json', ...args]);
  expect(r.exitCode, r.stderr).toBe(0);
  return { ...(JSON.parse(r.stdout) as { total: { packets: number; bytes: number; flows: number }; rows: { key: string | number; packets: number; bytes: number; flows: number }[]; series?: { start: string; packets: number; bytes: number }[] }), stderr: r.stderr };
}

async function flowsJson(args: string[]) {
  const r = await cli(['flows', '--config', config, '--json', ...args]);
  expect(r.exitCode, r.stderr).toBe(0);
  return { flows: r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>), stderr: r.stderr };
}

/** tshark's table rows ("A  1  2  3 ..." or "A:1 <-> B:2  ..."), numbers as numbers. */
function tshark(file: string, z: string): string[][] {
  const out = execFileSync('tshark', ['-r', file, '-q', '-z', z, '--disable-protocol', 'vxlan'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out
    .split('\n')
    .filter((l) => /^\S+\s/.test(l) && !/^(=|Filter|IPv|TCP|\|)/.test(l) && !l.startsWith(' '))
    .map((l) => l.trim().split(/\s+/));
}

async function extractTo(args: string[]): Promise<string> {
  const out = join(dir, `x-${Math.random().toString(36).slice(2)}.pcap`);
  const r = await cli(['extract', '--config', config, '-w', out, ...args]);
  expect([0, 3], r.stderr).toContain(r.exitCode);
  return out;
}

describe('stats and flows over a store of two interfaces', () => {
  it('built a store of several files per interface, each with its flow table', () => {
    const names = readdirSync(store);
    for (const iface of ['ethA', 'ethB']) {
      const pcaps = names.filter((n) => n.endsWith(`_${iface}.pcap`));
      expect(pcaps.length).toBeGreaterThanOrEqual(3);
      for (const p of pcaps) expect(existsSync(flowPathFor(join(store, p)))).toBe(true);
    }
  });

  it('totals equal counting the packets, for the whole store and for ranges that cut files', async () => {
    for (const [from, to] of [[0, 10_000], [700, 2_100], [1_000, 1_001], [2_999, 3_100]] as const) {
      const want = sum(inRange(from, to));
      const s = await statsJson(range(from, to));
      expect({ from, to, packets: s.total.packets, bytes: s.total.bytes }).toEqual({ from, to, ...want });
      const f = await flowsJson(range(from, to));
      expect(f.flows.reduce((n, x) => n + x.packets + x.packets_rev, 0)).toBe(want.packets);
      expect(f.flows.reduce((n, x) => n + x.bytes + x.bytes_rev, 0)).toBe(want.bytes);
      expect(s.total.flows).toBe(f.flows.length);
    }
    // The whole store is answered from the tables alone; a range inside files reads some packets.
    expect((await statsJson(range(0, 10_000))).stderr).toMatch(/from (\d+) files: \1 through their flow tables$/);
    expect((await statsJson(range(700, 2_100))).stderr).toMatch(/read [\d.]+\w+ of pcap/);
  });

  it('per-host totals equal tshark -z endpoints,ip, and tshark\'s IPv6 addresses frame by frame', async () => {
    const file = await extractTo(range(0, 10_000));
    const want = new Map<string, [number, number]>();
    for (const row of tshark(file, 'endpoints,ip')) want.set(row[0]!, [Number(row[1]), Number(row[2])]);
    expect(want.size).toBeGreaterThan(10);
    // tshark's endpoints,ipv6 counts a fragmented datagram once, not its frames: the frames' own
    // addresses instead (each frame for its source and its destination, as endpoints,ip counts).
    const v6 = execFileSync('tshark', ['-r', file, '-Y', 'ipv6', '-T', 'fields', '-E', 'occurrence=f', '-e', 'ipv6.src', '-e', 'ipv6.dst', '-e', 'frame.len', '--disable-protocol', 'vxlan'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const line of v6.trim().split('\n')) {
      const [src, dst, len] = line.split('\t');
      for (const a of [src!, dst!]) {
        const prev = want.get(a) ?? [0, 0];
        want.set(a, [prev[0] + 1, prev[1] + Number(len)]);
      }
    }
    const s = await statsJson([...range(0, 10_000), '--by', 'host', '--top', '100000']);
    expect(new Map(s.rows.map((r) => [String(r.key), [r.packets, r.bytes]]))).toEqual(want);
  });

  it('per-conversation TCP totals equal tshark -z conv,tcp', async () => {
    const file = await extractTo(range(0, 10_000));
    const bytes = (n: string, unit: string) => Number(n) * (unit === 'bytes' ? 1 : unit === 'kB' ? 1000 : unit === 'MB' ? 1e6 : NaN);
    const want = new Map<string, [number, number]>();
    for (const row of tshark(file, 'conv,tcp')) {
      // A:p <-> B:p  fr bytes-unit  fr bytes-unit  total-frames total-bytes unit ...
      const ends = [row[0]!, row[2]!].sort().join(' ');
      const prev = want.get(ends) ?? [0, 0];
      want.set(ends, [prev[0] + Number(row[9]), prev[1] + bytes(row[10]!, row[11]!)]);
    }
    expect(want.size).toBeGreaterThan(10);
    const { flows } = await flowsJson(range(0, 10_000));
    const got = new Map<string, [number, number]>();
    for (const f of flows.filter((x) => x.proto === 'tcp')) {
      const end = (a: string, p: number) => (a.includes(':') ? `${a}:${p}` : `${a}:${p}`);
      const ends = [end(f.src, f.sport), end(f.dst, f.dport)].sort().join(' ');
      const prev = got.get(ends) ?? [0, 0];
      got.set(ends, [prev[0] + f.packets + f.packets_rev, prev[1] + f.bytes + f.bytes_rev]);
    }
    expect(got).toEqual(want);
  });

  it('--filter counts what extract with the same filter writes, through the index', async () => {
    for (const filter of ['host 10.0.0.1', 'udp and not port 53', 'vlan 100', 'icmp or icmp6']) {
      const file = await extractTo([...range(300, 2_600), '--filter', filter]);
      const want = sum(parsePcap(readFileSync(file)).records);
      const s = await statsJson([...range(300, 2_600), '--filter', filter, '--by', 'proto']);
      expect({ filter, packets: s.total.packets, bytes: s.total.bytes }).toEqual({ filter, ...want });
      expect(want.packets).toBeGreaterThan(0);
    }
  });

  it('merges a flow across files into one record, oriented by its first packet, with the spec\'s Community IDs', async () => {
    const { flows } = await flowsJson(range(0, 10_000));
    const one = (pred: (f: Record<string, any>) => boolean) => {
      const found = flows.filter(pred);
      expect(found.length).toBe(1);
      return found[0]!;
    };
    const web = one((f) => f.src === '128.232.110.120' || f.dst === '128.232.110.120');
    expect(web).toMatchObject({
      community_id: '1:LQU9qZlK+B5F3KDmev6m5PMibrg=', iface: 'ethA', vlan: [], proto: 'tcp', src: '128.232.110.120', sport: 34855, dst: '66.35.250.204', dport: 80,
      packets: 24, packets_rev: 22, syn: 1, synack: 1, fin: 2, rst: 0, rtt_ms: 2.5, tcp_flags: 'APSF',
    });
    expect(web.first).toBe('2025-11-24T16:00:00.100000007Z');
    expect(web.last).toBe('2025-11-24T16:00:02.952000007Z');
    // From 50 ms the first file straddles the range: its records come from the packets, after the
    // later files' tables, and the SYN's record (the earliest) turns the merged flow to its way.
    const cut = (await flowsJson(range(50, 10_000))).flows.filter((f) => f.sport === 34855 || f.dport === 34855);
    expect(cut).toEqual([web]);
    // Its packets are in several files: the merge is what the records of each file add up to.
    const webFiles = (await storeFiles([store], 'ethA')).filter((p) => parsePcap(readFileSync(p)).records.some((r) => r.data.includes(Buffer.from([128, 232, 110, 120]))));
    expect(webFiles.length).toBeGreaterThanOrEqual(3);
    expect(one((f) => f.src === '192.168.1.52' || f.dst === '192.168.1.52')).toMatchObject({ community_id: '1:d/FP5EW3wiY1vCndhwleRRKHowQ=', proto: 'udp', src: '192.168.1.52', sport: 54585, packets: 1, packets_rev: 1, tcp_flags: null, rtt_ms: null });
    expect(one((f) => f.src === '192.168.170.8' || f.src === '192.168.170.56')).toMatchObject({ community_id: '1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=', proto: 132, packets: 1, packets_rev: 1 });
    // ICMP: the echo and its reply are one exchange for the Community ID (the spec's value), whichever record holds them.
    const echo = flows.filter((f) => f.proto === 'icmp' && [f.src, f.dst].includes('192.168.0.89'));
    expect(echo.reduce((n, f) => n + f.packets + f.packets_rev, 0)).toBe(2);
    for (const f of echo) expect(f.community_id).toBe('1:X0snYXpgwiv9TZtqg64sgzUn6Dk=');
    const echo6 = flows.filter((f) => f.proto === 'ipv6-icmp' && [f.src, f.dst].includes('3ffe:501:0:1001::2'));
    expect(echo6.reduce((n, f) => n + f.packets + f.packets_rev, 0)).toBe(2);
    for (const f of echo6) expect(f).toMatchObject({ community_id: '1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=', vlan: [42] });
    expect(one((f) => f.src === '10.9.9.1')).toMatchObject({ syn: 1, synack: 0, rst: 1, rtt_ms: null, tcp_flags: 'ARS' });
  });

  it('--iface, --csv and the terminal line show the same flows', async () => {
    const a = await flowsJson([...range(0, 10_000), '--iface', 'ethA']);
    expect(new Set(a.flows.map((f) => f.iface))).toEqual(new Set(['ethA']));
    const csv = await cli(['flows', '--config', config, '--csv', ...range(0, 10_000), '--iface', 'ethA']);
    const lines = csv.stdout.trim().split('\n');
    expect(lines[0]).toBe('community_id,iface,vlan,proto,src,sport,dst,dport,first,last,packets,bytes,packets_rev,bytes_rev,tcp_flags,syn,synack,fin,rst,rtt_ms');
    expect(lines.length).toBe(a.flows.length + 1);
    expect(lines).toContain('1:LQU9qZlK+B5F3KDmev6m5PMibrg=,ethA,,tcp,128.232.110.120,34855,66.35.250.204,80,2025-11-24T16:00:00.100000007Z,2025-11-24T16:00:02.952000007Z,24,' + a.flows.find((f) => f.sport === 34855)!.bytes + ',22,' + a.flows.find((f) => f.sport === 34855)!.bytes_rev + ',APSF,1,1,2,0,2.5');
    const text = await cli(['flows', '--config', config, ...range(0, 10_000), '--iface', 'ethA']);
    expect(text.stdout).toMatch(/^2025-11-24T16:00:00\.100000007Z ethA tcp +128\.232\.110\.120:34855 -> 66\.35\.250\.204:80 +24 pkts .* \/ 22 pkts .* flags APSF rtt 2\.5ms$/m);
  });

  it('--by keys: src, dst, conversation, port, proto, vlan, iface add up as documented', async () => {
    const all = sum(inRange(0, 10_000));
    for (const by of ['proto', 'vlan', 'iface']) {
      const s = await statsJson([...range(0, 10_000), '--by', by, '--top', '1000']);
      expect({ by, packets: s.rows.reduce((n, r) => n + r.packets, 0) }).toEqual({ by, packets: all.packets });
    }
    const iface = await statsJson([...range(0, 10_000), '--by', 'iface']);
    expect(iface.rows.map((r) => [r.key, r.packets]).sort()).toEqual(['ethA', 'ethB'].map((i) => [i, records.filter((r) => r.iface === i).length]));
    const conv = await statsJson([...range(0, 10_000), '--by', 'conversation', '--top', '1000']);
    expect(conv.rows.find((r) => r.key === '66.35.250.204 <-> 128.232.110.120')).toMatchObject({ packets: 46, flows: 1 });
    const port = await statsJson([...range(0, 10_000), '--by', 'port', '--top', '1000']);
    expect(port.rows.every((r) => typeof r.key === 'number')).toBe(true);
    const src = await statsJson([...range(0, 10_000), '--by', 'src', '--top', '3']);
    expect(src.rows.length).toBe(3);
    expect(src.rows[0]!.bytes).toBeGreaterThanOrEqual(src.rows[1]!.bytes);
  });

  it('every --by table is what the listed flows add up to, over whole files and ranges that cut them', async () => {
    // stats is counted by qe-flowstat, flows is merged here: two implementations of one merge.
    for (const [from, to] of [[0, 10_000], [700, 2_100], [50, 10_000]] as const) {
      const { flows } = await flowsJson(range(from, to));
      for (const by of STATS_BY) {
        const want = new Map<string | number, [number, number, number]>();
        const add = (key: string | number, f: (typeof flows)[number], flow: boolean) => {
          const w = want.get(key) ?? [0, 0, 0];
          want.set(key, [w[0] + f.packets + f.packets_rev, w[1] + f.bytes + f.bytes_rev, w[2] + (flow ? 1 : 0)]);
        };
        for (const f of flows) {
          const ip = f.src !== null;
          if (by === 'host' && ip) {
            add(f.src, f, true);
            add(f.dst, f, f.dst !== f.src);
          } else if (by === 'src' && ip) add(f.src, f, true);
          else if (by === 'dst' && ip) add(f.dst, f, true);
          else if (by === 'conversation' && ip) add((Buffer.compare(addressBytes(f.src), addressBytes(f.dst)) <= 0 ? [f.src, f.dst] : [f.dst, f.src]).join(' <-> '), f, true);
          else if (by === 'port' && ip && ['tcp', 'udp', 132].includes(f.proto)) add(f.dport, f, true);
          else if (by === 'proto') add(f.proto, f, true);
          else if (by === 'vlan') add(f.vlan.length ? f.vlan.join('.') : 'untagged', f, true);
          else if (by === 'iface') add(f.iface, f, true);
        }
        const s = await statsJson([...range(from, to), '--by', by, '--top', '100000']);
        expect({ from, to, by, rows: new Map(s.rows.map((r) => [r.key, [r.packets, r.bytes, r.flows]])) }).toEqual({ from, to, by, rows: want });
        expect(s.total.flows).toBe(flows.length);
      }
    }
  });

  it('--interval: each interval counts the packets whose timestamps fall in it', async () => {
    const s = await statsJson(['--from', iso(T0 + 500n * MS), '--to', iso(T0 + 2500n * MS - 1n), '--interval', '250ms']);
    expect(s.series!.length).toBe(8);
    for (const [k, p] of s.series!.entries()) {
      const lo = 500 + k * 250;
      expect({ k, packets: p.packets, bytes: p.bytes }).toEqual({ k, ...sum(records.filter((r) => r.tsNs >= T0 + BigInt(lo) * MS && r.tsNs < T0 + BigInt(lo + 250) * MS)) });
      expect(p.start).toBe(iso(T0 + BigInt(lo) * MS));
    }
    expect(s.series!.reduce((n, p) => n + p.packets, 0)).toBe(s.total.packets);
    const text = await cli(['stats', '--config', config, ...range(500, 999), '--interval', '250ms']);
    expect(text.stdout).toMatch(/^START +PACKETS\/S +BITS\/S$/m);
    expect(text.stdout).toMatch(/^2025-11-24T16:00:00\.750000000Z +[\d,.]+ +[\d.]+[kM]?bit\/s$/m);
  });

  it('a damaged or missing table is reported and its file counted from the packets', async () => {
    const [victim, gone] = readdirSync(store).filter((n) => n.endsWith('_ethB.pcap.qeflow')).slice(1, 3).map((n) => join(store, n));
    const good = readFileSync(victim!);
    const kept = readFileSync(gone!);
    const bad = Buffer.from(good);
    bad[bad.length - 20]! ^= 0xff;
    writeFileSync(victim!, bad);
    unlinkSync(gone!);
    try {
      const s = await statsJson(range(0, 10_000));
      expect(s.total).toMatchObject(sum(inRange(0, 10_000)));
      expect(s.stderr).toContain(`warning: ${victim}: marked complete but holds 0 whole segment(s) and a torn one: its pcap file's packets are counted by reading them (qe-packets index --rebuild rebuilds it)`);
      expect(s.stderr).toContain('note: 1 file of the range has no flow table yet: reading it (qe-packets index builds them)');
      expect(s.stderr).toMatch(/2 read; read/);
    } finally {
      writeFileSync(victim!, good);
      writeFileSync(gone!, kept);
    }
  });
});

describe('stats and flows refuse, in extract\'s words', () => {
  it('an empty range: exit 3 and what was searched', async () => {
    const r = await cli(['stats', '--config', config, ...range(3_600_000, 3_700_000)]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toBe('qe-packets stats: no packets between 2025-11-24T17:00:00.000000000Z and 2025-11-24T17:01:40.000000000Z (no capture file covers that range)');
    const f = await cli(['flows', '--config', config, ...range(0, 10_000), '--filter', 'host 203.0.113.9']);
    expect(f.exitCode).toBe(3);
    expect(f.stderr).toMatch(/^qe-packets flows: no packets between .* matching "host 203\.0\.113\.9" \(searched \d+ files\)$/);
  });

  it('a bad filter: libpcap\'s message, exit 2', async () => {
    for (const cmd of ['flows', 'stats']) {
      const r = await cli([cmd, '--config', config, ...range(0, 10_000), '--filter', 'hostt 10.0.0.1']);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toBe(`qe-packets ${cmd}: bad filter "hostt 10.0.0.1": can't parse filter expression: syntax error`);
    }
    // Even when no file is in the range: the filter is still checked.
    const empty = await cli(['stats', '--config', config, ...range(3_600_000, 3_700_000), '--filter', 'hostt 10.0.0.1']);
    expect(empty.exitCode).toBe(2);
    expect(empty.stderr).toBe('qe-packets stats: bad filter "hostt 10.0.0.1": can\'t parse filter expression: syntax error');
  });

  it('a reversed range, a bad --by, --top, --interval, and --json with --csv', async () => {
    const rev = await cli(['flows', '--config', config, '--from', iso(T0 + 5000n * MS), '--to', iso(T0)]);
    expect(rev.exitCode).toBe(2);
    expect(rev.stderr).toBe(`qe-packets flows: --from ${iso(T0 + 5000n * MS)} (2025-11-24T16:00:05.000000000Z) is after --to ${iso(T0)} (2025-11-24T16:00:00.000000000Z): swap them`);
    const by = await cli(['stats', '--config', config, ...range(0, 1), '--by', 'hosts']);
    expect(by.exitCode).toBe(2);
    expect(by.stderr).toBe('qe-packets stats: --by hosts: not a statistic; choose one of host, src, dst, conversation, port, proto, vlan, iface');
    const top = await cli(['stats', '--config', config, ...range(0, 1), '--top', '0']);
    expect(top.stderr).toBe('qe-packets stats: --top 0: not a positive whole number of rows, e.g. --top 20');
    const interval = await cli(['stats', '--config', config, ...range(0, 1), '--interval', 'often']);
    expect(interval.stderr).toBe('qe-packets stats: --interval often: not a duration; write e.g. 1s, 5m or 1h');
    const both = await cli(['flows', '--config', config, ...range(0, 1), '--json', '--csv']);
    expect(both.stderr).toBe('qe-packets flows: --json and --csv both given: choose one output format');
    const iface = await cli(['flows', '--config', config, ...range(0, 1), '--iface', 'ethC']);
    expect(iface.stderr).toBe('qe-packets flows: --iface ethC: no capture files for that interface in the store (interfaces in the store: ethA, ethB)');
  });
});

describe('flow tables in the store', () => {
  it('`qe-packets index` builds a missing or damaged flow table and leaves sound ones and the index alone', async () => {
    const pcaps = readdirSync(store).filter((n) => n.endsWith('_ethA.pcap')).map((n) => join(store, n));
    const [gone, torn] = [pcaps[0]!, pcaps[1]!];
    const records = (p: string) => decodeFlowTable(readFileSync(flowPathFor(p)), p).segments.flatMap((s) => s.records.map((r) => JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? String(v) : v)))).sort();
    const before = records(gone);
    const idxBefore = readFileSync(gone + '.qeidx');
    unlinkSync(flowPathFor(gone));
    writeFileSync(flowPathFor(torn), readFileSync(flowPathFor(torn)).subarray(0, 200));
    const r = await cli(['index', '--config', config, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.indexed).toBe(2);
    expect(j.rebuilt).toEqual([{ path: torn, reason: expect.stringMatching(/^damaged flow table/) }]);
    // qe-index builds what the capture helper wrote.
    expect(records(gone)).toEqual(before);
    expect(checkFlowTable(torn)).toMatchObject({ state: 'current' });
    expect(readFileSync(gone + '.qeidx')).toEqual(idxBefore);
    const again = JSON.parse((await cli(['index', '--config', config, '--json'])).stdout);
    expect(again.indexed).toBe(0);
  });
});
