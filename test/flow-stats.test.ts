// qe-flowstat (daemon/native/qe-flowstat.c), which `stats` hands its flow tables and records to:
// its stdin words held to the TypeScript; every way a table can be wrong planned and worded as the
// TypeScript reader (collect.ts, which `flows` uses) plans it; what it refuses to read.
import { spawnSync } from 'node:child_process';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TableMerger, planFiles } from '../daemon/src/flows/collect.js';
import { FLOW_H, FLOW_RECORD_LEN_V4, FLOW_VERSION, flowPathFor } from '../daemon/src/flows/format.js';
import { FLOWSTAT_COMMANDS, NativeStats } from '../daemon/src/flows/native-stats.js';
import { addressBytes } from '../daemon/src/flows/address.js';
import { catalogFile } from '../daemon/src/store/catalog.js';
import { crc32 } from 'node:zlib';
import { root } from './lib/cli.js';
import { headerConstants } from './lib/c-header.js';
import { BASE_NS, MS, recordEnds, tempDir, traffic, writeCaptureFile } from './lib/fixture.js';
import { encodeRecord, encodeTable } from './lib/flow-table.js';

const tool = join(root, 'build', 'native', 'qe-flowstat');
const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

describe('qe-flowstat\'s stdin words', () => {
  it('are flow-stats-protocol.h\'s, one for one', () => {
    const c = headerConstants(readFileSync(join(root, 'daemon', 'native', 'flow-stats-protocol.h'), 'utf8'));
    c.delete('QE_FLOW_STATS_PROTOCOL_H');
    const fromHeader = Object.fromEntries([...c].map(([k, v]) => [k.replace(/^QE_FS_/, '').toLowerCase(), v]));
    expect(fromHeader).toEqual(FLOWSTAT_COMMANDS);
  });
});

describe('a store file\'s table, read by qe-flowstat and by the TypeScript reader', () => {
  // One closed file of 30 packets and its complete table; each case damages a copy of the table.
  function store() {
    const t = tempDir('flowstat');
    cleanups.push(t.cleanup);
    const packets = traffic(BASE_NS, 30, 5);
    const f = writeCaptureFile(t.dir, 'eth0', packets);
    const ends = recordEnds(packets);
    const rec = (k: number) => ({ src: addressBytes(`10.0.0.${k}`), dst: addressBytes('10.9.9.9'), sport: 1000 + k, dport: 80, packets: 10, firstNs: packets[k * 10]!.tsNs, lastNs: packets[k * 10 + 9]!.tsNs });
    const good = encodeTable({ complete: true, pcapFirstNs: packets[0]!.tsNs, segments: [{ offLo: 24, offHi: ends[29]!, records: [rec(0), rec(1), rec(2)] }] });
    return { f, good, packets, ends };
  }

  const reheader = (b: Buffer) => {
    b.writeUInt32LE(crc32(b.subarray(0, FLOW_H.crc)), FLOW_H.crc);
    return b;
  };

  async function both(pcap: string, fromNs: bigint, toNs: bigint) {
    const entry = catalogFile(pcap);
    const q = { streams: [{ iface: 'eth0', files: [entry] }], fromNs, toNs, useIndex: true };
    const m = new TableMerger();
    const [ts] = await planFiles(q, m);
    const n = new NativeStats(fromNs, toNs, 'src');
    const [native] = await planFiles(q, n);
    const rows = (await n.finish()).rows;
    return { ts: ts!, native: native!, tsFlows: [...m.merger.values()].map((x) => x.src.join('.')).sort(), nativeFlows: rows.map((r) => String(r.key)).sort() };
  }

  it('plans each case alike, with the same words, and merges the same flows', async () => {
    const { f, good, packets } = store();
    const table = flowPathFor(f.path);
    const cases: [string, (b: Buffer) => Buffer | undefined][] = [
      ['sound', (b) => b],
      ['missing', () => undefined],
      ['empty', () => Buffer.alloc(0)],
      ['short header', (b) => b.subarray(0, 40)],
      ['bad magic', (b) => (b.write('NOTAFLOW', 0, 'latin1'), b)],
      ['newer version', (b) => (b.writeUInt16LE(FLOW_VERSION + 1, FLOW_H.version), reheader(b))],
      ['older version', (b) => (b.writeUInt16LE(FLOW_VERSION - 1, FLOW_H.version), reheader(b))],
      ['header checksum', (b) => (b[FLOW_H.crc]! ^= 1, b)],
      ['header_len too small', (b) => (b.writeUInt16LE(32, FLOW_H.headerLen), reheader(b))],
      ['another link type', (b) => (b.writeUInt32LE(101, FLOW_H.linktype), reheader(b))],
      ['another file\'s table', (b) => (b.writeBigUInt64LE(packets[0]!.tsNs + 1n, FLOW_H.pcapFirstNs), reheader(b))],
      ['torn body', (b) => b.subarray(0, b.length - 7)],
      ['flipped record byte', (b) => (b[b.length - 30]! ^= 0x10, b)],
      ['torn, not complete', (b) => (b.writeUInt32LE(0, FLOW_H.flags), reheader(b).subarray(0, b.length - 7))],
      ['trailing junk', (b) => Buffer.concat([b, Buffer.alloc(10)])],
      ['complete, longer pcap', (b) => b],
      ['pcap cut by a byte', (b) => b],
    ];
    for (const [name, damage] of cases) {
      const t = damage(Buffer.from(good));
      if (t === undefined) unlinkSync(table);
      else writeFileSync(table, t);
      let pcapBefore: Buffer | undefined;
      if (name.includes('pcap')) {
        pcapBefore = readFileSync(f.path);
        writeFileSync(f.path, name === 'pcap cut by a byte' ? pcapBefore.subarray(0, pcapBefore.length - 1) : Buffer.concat([pcapBefore, Buffer.alloc(16)]));
      }
      try {
        for (const [from, to] of [[BASE_NS - MS, BASE_NS + 3_600_000n * MS], [packets[15]!.tsNs, packets[25]!.tsNs]] as const) {
          const r = await both(f.path, from, to);
          expect({ name, from, plan: r.native, flows: r.nativeFlows }).toEqual({ name, from, plan: r.ts, flows: r.tsFlows });
          if (name === 'sound' && from < BASE_NS) expect(r.ts).toMatchObject({ fromTable: 1, bytes: 0 });
          // What each case is (so the comparison above compares something): an open file's torn flush is read, not refused.
          const why = name === 'sound' ? (from < BASE_NS ? undefined : 'edge') : name === 'missing' ? 'no-table' : name === 'torn, not complete' ? 'tail' : 'table-unusable';
          expect({ name, from, why: r.ts.why }).toEqual({ name, from, why });
        }
      } finally {
        if (pcapBefore) writeFileSync(f.path, pcapBefore);
      }
    }
  });

  it('a file gone since the catalog was read: read whole, as the reader says', async () => {
    const { f, good } = store();
    writeFileSync(flowPathFor(f.path), good);
    const entry = catalogFile(f.path);
    unlinkSync(f.path);
    const q = { streams: [{ iface: 'eth0', files: [entry] }], fromNs: 0n, toNs: 2n ** 62n, useIndex: true };
    const [ts] = await planFiles(q, new TableMerger());
    const n = new NativeStats(0n, 2n ** 62n, 'host');
    const [native] = await planFiles(q, n);
    await n.finish();
    expect(native).toEqual(ts);
    expect(ts).toMatchObject({ why: 'no-table', read: 'all' });
  });
});

describe('qe-flowstat refuses what it cannot read', () => {
  const run = (args: string[], input: string | Buffer) => spawnSync(tool, args, { input, encoding: 'utf8' });
  const args = ['--from-ns', '0', '--to-ns', '100', '--by', 'host'];

  it('a bad option, a bad --by, a missing end, an unknown word, a body of part of a record', () => {
    expect(run(['--from-ns', '0'], '')).toMatchObject({ status: 2, stderr: expect.stringContaining('usage: qe-flowstat') });
    expect(run([...args.slice(0, 4), '--by', 'hosts'], '')).toMatchObject({ status: 2, stderr: 'qe-flowstat: --by hosts: not a statistic (host, src, dst, conversation, port, proto, vlan or iface)\n' });
    expect(run(args, 'plan\n')).toMatchObject({ status: 2, stderr: 'qe-flowstat: stdin ended before "end"\n' });
    expect(run(args, 'count\n')).toMatchObject({ status: 2, stderr: expect.stringContaining('unknown command "count"') });
    // 87 bytes of an IPv4 record: one short of its 88. Then a record of ip_version 5.
    const notWhole = `qe-flowstat: body of ${FLOW_RECORD_LEN_V4 - 1} bytes: not whole flow records (ip_version 0, 4 or 6; 88 or 112 bytes)\n`;
    expect(run(args, `body 0 ${FLOW_RECORD_LEN_V4 - 1}\n\x04${'\0'.repeat(FLOW_RECORD_LEN_V4 - 2)}`)).toMatchObject({ status: 2, stderr: notWhole });
    expect(run(args, `body 0 ${FLOW_RECORD_LEN_V4}\n\x05${'\0'.repeat(FLOW_RECORD_LEN_V4 - 1)}`)).toMatchObject({ status: 2, stderr: notWhole.replace(`${FLOW_RECORD_LEN_V4 - 1} bytes`, `${FLOW_RECORD_LEN_V4} bytes`) });
    expect(run(args, `body 0 ${FLOW_RECORD_LEN_V4}\nabc`)).toMatchObject({ status: 2, stderr: `qe-flowstat: stdin ended inside a body of ${FLOW_RECORD_LEN_V4} bytes\n` });
    expect(run(args, 'table 0 0 10\n')).toMatchObject({ status: 2, stderr: expect.stringContaining('expected table <iface> <partial> <size> <path>') });
    expect(run(args, 'body x 0\n')).toMatchObject({ status: 2, stderr: 'qe-flowstat: <iface>: expected a whole number, got "x"\n' });
  });

  it('finds every flow again after its table grew, and keeps which end spoke first', () => {
    // More flows than the first table holds (2^16 before it grows): each flow's second record,
    // sent after the growth, must merge into its first, whose src it takes when it is the earlier.
    const v4 = 70_000;
    const v6 = 3_000;
    const first: Buffer[] = [];
    const second: Buffer[] = [];
    const flow = (i: number) => {
      const ipVersion = i < v4 ? 4 : i < v4 + v6 ? 6 : 0;
      const src = ipVersion === 6 ? Buffer.from(`20010db8${i.toString(16).padStart(24, '0')}`, 'hex') : Buffer.from([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]);
      const dst = ipVersion === 6 ? Buffer.from('20010db8ffff00000000000000000001', 'hex') : Buffer.from([192, 168, 0, 1]);
      const vlan = i % 3 === 0 ? [] : i % 3 === 1 ? [100] : [100, 200 + (i % 7)];
      return { ipVersion, src, dst, vlan, sport: ipVersion === 0 ? 0x0800 + i - v4 - v6 : 1000 + (i % 5000), dport: 80 };
    };
    const n = v4 + v6 + 5;
    for (let i = 0; i < n; i++) {
      const f = flow(i);
      first.push(encodeRecord({ ...f, packets: 1, bytes: 100n, firstNs: 1000n }));
      // The other end's record: the earlier one for even flows.
      second.push(encodeRecord({ ...f, src: f.dst, dst: f.src, sport: f.ipVersion === 0 ? f.sport : f.dport, dport: f.sport, packets: 1, bytes: 60n, firstNs: i % 2 === 0 ? 10n : 2000n }));
    }
    const body = (bs: Buffer[]) => {
      const b = Buffer.concat(bs);
      return Buffer.concat([Buffer.from(`body 0 ${b.length}\n`), b]);
    };
    const out = run(['--from-ns', '0', '--to-ns', '1000000', '--by', 'src'], Buffer.concat([body(first), body(second), Buffer.from('end\n')]));
    expect(out.stderr).toBe('');
    const [total, ...rows] = out.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(total).toEqual({ packets: 2 * n, bytes: 160 * n, flows: n, rows: rows.length });
    const byKey = new Map((rows as [string, number, number, number][]).map((r) => [r[0], r]));
    // Even IPv4 and IPv6 flows spoke first from the far end; odd ones from their own.
    expect(byKey.get('c0a80001')).toEqual(['c0a80001', v4, 80 * v4, v4 / 2]);
    expect(byKey.get('20010db8ffff00000000000000000001')).toEqual(['20010db8ffff00000000000000000001', v6, 80 * v6, v6 / 2]);
    expect(byKey.get('0a000001')).toEqual(['0a000001', 2, 160, 1]);
    expect(rows.length).toBe(2 + v4 / 2 + v6 / 2);
  });

  it('reads an IPv6 record between IPv4 ones at its own length', () => {
    const v4 = encodeRecord({ src: Buffer.from([10, 0, 0, 1]), dst: Buffer.from([10, 0, 0, 2]), packets: 3, bytes: 100n });
    const v6 = encodeRecord({ ipVersion: 6, src: Buffer.from('20010db8000000000000000000000001', 'hex'), dst: Buffer.from('20010db8000000000000000000000002', 'hex'), packets: 2, bytes: 50n });
    const body = Buffer.concat([v4, v6, v4]);
    expect(body.length).toBe(88 + 112 + 88);
    const out = run(args, Buffer.concat([Buffer.from(`body 0 ${body.length}\n`), body, Buffer.from('end\n')]));
    expect(out.status).toBe(0);
    expect(out.stdout).toBe('{"packets":8,"bytes":250,"flows":2,"rows":4}\n["0a000001",6,200,1]\n["0a000002",6,200,1]\n["20010db8000000000000000000000001",2,50,1]\n["20010db8000000000000000000000002",2,50,1]\n');
  });
});
