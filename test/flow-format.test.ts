// The flow table format has one C header (daemon/native/flow-format.h) and one TypeScript copy
// (daemon/src/flows/format.ts). Every #define of the header must equal its TypeScript constant,
// and every TypeScript constant must have its #define: a number changed on one side only fails
// here. The decoder is then held to the header's rules: what fails a checksum, a torn last
// segment, a newer version or another file's table is refused or left out, never half-trusted.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import * as format from '../daemon/src/flows/format.js';
import { decodeFlowTable, FlowTableUnusable, FLOW_RECORD_LEN_V4 } from '../daemon/src/flows/format.js';
import { root } from './lib/cli.js';
import { camel, headerConstants, type Value } from './lib/c-header.js';
import { encodeRecord, encodeTable } from './lib/flow-table.js';

const headerText = readFileSync(join(root, 'daemon', 'native', 'flow-format.h'), 'utf8');

/** The TypeScript constant a header name stands for, by the naming rule both files follow. */
function tsValue(mod: Record<string, unknown>, name: string): Value | undefined {
  const n = name.replace(/^QE_FLOW_/, '');
  const group = /^(H|S|R|RF|T)_(.+)$/.exec(n);
  if (group) return (mod[`FLOW_${group[1]}`] as Record<string, number>)[camel(group[2]!)];
  if (n === 'MAGIC') return (mod.FLOW_MAGIC as Buffer).toString('latin1');
  if (n === 'MAGIC_LEN') return (mod.FLOW_MAGIC as Buffer).length;
  const v = mod[`FLOW_${n}`];
  return typeof v === 'number' || typeof v === 'string' ? v : undefined;
}

function drift(text: string, mod: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const c = headerConstants(text);
  for (const [name, v] of c) {
    if (name === 'QE_FLOW_FORMAT_H') continue;
    const t = tsValue(mod, name);
    if (t === undefined) problems.push(`${name} (${JSON.stringify(v)}) has no TypeScript constant`);
    else if (t !== v) problems.push(`${name} is ${JSON.stringify(v)} in the header but ${JSON.stringify(t)} in format.ts`);
  }
  const named = new Set<string>();
  for (const [k, v] of Object.entries(mod)) {
    if (!k.startsWith('FLOW_')) continue;
    if (typeof v === 'number' || typeof v === 'string' || Buffer.isBuffer(v)) named.add(`QE_${k}`);
    else if (v && typeof v === 'object') for (const f of Object.keys(v)) named.add(`QE_${k}_${f.replace(/[A-Z]/g, (ch) => `_${ch}`).toUpperCase()}`);
  }
  for (const n of named) if (!c.has(n)) problems.push(`format.ts has ${n.replace(/^QE_/, '')} but the header has no ${n}`);
  return problems;
}

describe('flow format: header and TypeScript copy', () => {
  it('reads every constant of the header', () => {
    const c = headerConstants(headerText);
    expect(c.get('QE_FLOW_MAGIC')).toBe('QEFLOW\r\n');
    expect(c.get('QE_FLOW_SEGMENT_MAGIC')).toBe(0x574c4651);
    expect(c.get('QE_FLOW_T_RTT_US')).toBe(56);
    expect(c.get('QE_FLOW_RECORD_LEN_V4')).toBe(88);
    expect(c.get('QE_FLOW_RECORD_LEN_V6')).toBe(112);
    expect(c.get('QE_FLOW_RF_FRAGMENTS')).toBe(4);
    expect(c.size).toBeGreaterThan(45);
  });

  it('agrees with format.ts, both ways', () => {
    expect(drift(headerText, format as unknown as Record<string, unknown>)).toEqual([]);
  });

  it('fails when one side drifts', () => {
    const mod = format as unknown as Record<string, unknown>;
    const bumped = headerText.replace('#define QE_FLOW_RECORD_LEN_V4 88', '#define QE_FLOW_RECORD_LEN_V4 96');
    expect(drift(bumped, mod)).toEqual(['QE_FLOW_RECORD_LEN_V4 is 96 in the header but 88 in format.ts']);
    const moved = headerText.replace('#define QE_FLOW_T_RST 52', '#define QE_FLOW_T_RST 53');
    expect(drift(moved, mod)).toEqual(['QE_FLOW_T_RST is 53 in the header but 52 in format.ts']);
    const added = headerText.replace('#define QE_FLOW_R_VLAN 10', '#define QE_FLOW_R_VLAN 10\n#define QE_FLOW_R_TTL 108');
    expect(drift(added, mod)).toEqual(['QE_FLOW_R_TTL (108) has no TypeScript constant']);
    const tsOnly = { ...mod, FLOW_R: { ...(mod.FLOW_R as object), ttl: 108 } };
    expect(drift(headerText, tsOnly)).toEqual(['format.ts has FLOW_R_TTL but the header has no QE_FLOW_R_TTL']);
    const magic = headerText.replace('"QEFLOW\\r\\n"', '"QEFLOW\\r\\r"');
    expect(drift(magic, mod)).toEqual(['QE_FLOW_MAGIC is "QEFLOW\\r\\r" in the header but "QEFLOW\\r\\n" in format.ts']);
  });
});

const src = Buffer.from([10, 0, 0, 1]);
const dst = Buffer.from([10, 0, 0, 2]);
const rec = (over: Partial<format.FlowRecord> = {}): Partial<format.FlowRecord> => ({ src, dst, sport: 40000, dport: 80, packets: 3, packetsRev: 2, bytes: 300n, bytesRev: 200n, firstNs: 5n, lastNs: 9n, ...over });
const pcap = { linktype: 1, size: 1000, firstNs: 5n };

describe('flow table decoder', () => {
  it('decodes every field of a record', () => {
    const r = {
      ipVersion: 6, proto: 17, flags: 7, tcpFlagsFwd: 0x12, tcpFlagsRev: 0x18, sport: 53, dport: 5353, vlan: [10, 20, 4095],
      src: Buffer.alloc(16, 0xfe), dst: Buffer.alloc(16, 0x01), firstNs: 2n ** 62n, lastNs: 2n ** 62n + 1n, bytes: 2n ** 40n, bytesRev: 7n,
      packets: 0xfffffffe, packetsRev: 1, syn: 2, synack: 3, fin: 4, rst: 5, rttUs: 1234,
    };
    expect(format.decodeFlowRecord(encodeRecord(r))).toEqual(r);
    const v4 = format.decodeFlowRecord(encodeRecord(rec()));
    expect(v4.src).toEqual(src);
    expect(v4.vlan).toEqual([]);
  });

  it('reads a complete table and an open file\'s segments', () => {
    const full = decodeFlowTable(encodeTable({ complete: true, pcapFirstNs: 5n, segments: [{ offLo: 24, offHi: 1000, records: [rec(), rec({ sport: 1 })] }] }), 'x.qeflow', pcap);
    expect(full.complete).toBe(true);
    expect(full.coveredEnd).toBe(1000);
    expect(full.segments[0]!.records.map((r) => r.sport)).toEqual([40000, 1]);
    const part = decodeFlowTable(encodeTable({ pcapFirstNs: 5n, segments: [{ offLo: 24, offHi: 500, records: [rec()] }, { offLo: 500, offHi: 800, records: [rec()] }] }), 'x.part.qeflow', pcap);
    expect(part.complete).toBe(false);
    expect(part.segments.length).toBe(2);
    expect(part.coveredEnd).toBe(800);
  });

  it('reads IPv4, IPv6 and non-IP records of one segment, each at its own length', () => {
    const v6 = { ipVersion: 6, src: Buffer.from('20010db8000000000000000000000001', 'hex'), dst: Buffer.from('20010db8000000000000000000000002', 'hex') };
    const arp = { ipVersion: 0, proto: 0, sport: 0x0806, dport: 0, src: Buffer.alloc(0), dst: Buffer.alloc(0), packetsRev: 0, bytesRev: 0n };
    const table = encodeTable({ complete: true, pcapFirstNs: 5n, segments: [{ offLo: 24, offHi: 1000, records: [rec(), rec(v6), rec(arp), rec({ sport: 7, lastNs: 11n })] }] });
    // Headers 64 + 64, then 88 + 112 + 88 + 88 bytes of records.
    expect(table.length).toBe(128 + 88 + 112 + 88 + 88);
    const t = decodeFlowTable(table, 'x.qeflow', pcap);
    const got = t.segments[0]!.records.map((r) => [r.ipVersion, r.src.toString('hex'), r.dst.toString('hex'), r.sport, r.packets, r.lastNs]);
    expect(got).toEqual([
      [4, '0a000001', '0a000002', 40000, 3, 9n],
      [6, '20010db8000000000000000000000001', '20010db8000000000000000000000002', 40000, 3, 9n],
      [0, '', '', 0x0806, 3, 9n],
      [4, '0a000001', '0a000002', 7, 3, 11n],
    ]);
  });

  it('leaves out a torn last segment, and one past the end of the pcap file', () => {
    const two = encodeTable({ pcapFirstNs: 5n, segments: [{ offLo: 24, offHi: 500, records: [rec()] }, { offLo: 500, offHi: 800, records: [rec(), rec()] }] });
    for (const cut of [two.length - 1, two.length - FLOW_RECORD_LEN_V4, two.length - 2 * FLOW_RECORD_LEN_V4 - 10]) {
      const t = decodeFlowTable(two.subarray(0, cut), 'x', pcap);
      expect(t.droppedSegments).toBe(1);
      expect(t.coveredEnd).toBe(500);
    }
    const flipped = Buffer.from(two);
    flipped[flipped.length - 5]! ^= 1; // last body byte: its CRC fails
    expect(decodeFlowTable(flipped, 'x', pcap).coveredEnd).toBe(500);
    // The pcap file holds 600 bytes so far: the segment to 800 waits until it is there.
    expect(decodeFlowTable(two, 'x', { ...pcap, size: 600 }).coveredEnd).toBe(500);
  });

  it('refuses damage, a newer version and another file\'s table, with a message naming the file', () => {
    const good = encodeTable({ complete: true, pcapFirstNs: 5n, segments: [{ offLo: 24, offHi: 1000, records: [rec()] }] });
    const expectRefused = (b: Buffer, kind: string, text: RegExp, p = pcap) => {
      let err: unknown;
      try {
        decodeFlowTable(b, '/s/x.pcap.qeflow', p);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FlowTableUnusable);
      expect((err as FlowTableUnusable).kind).toBe(kind);
      expect((err as Error).message).toMatch(/^\/s\/x\.pcap\.qeflow: /);
      expect((err as Error).message).toMatch(text);
    };
    expectRefused(encodeTable({ version: 3, complete: true, segments: [] }), 'version', /version 3, this qe-packets reads version 2: its pcap file's packets are counted by reading them/);
    // Version 1 (every record 112 bytes) is refused too: qe-packets index rebuilds it.
    expectRefused(encodeTable({ version: 1, complete: true, segments: [] }), 'version', /version 1, this qe-packets reads version 2/);
    // A record of an unknown IP version: its length is unknown, so the body is not whole records.
    const odd = encodeTable({ complete: true, pcapFirstNs: 5n, segments: [{ offLo: 24, offHi: 1000, records: [rec()] }] });
    odd[128] = 5;
    odd.writeUInt32LE(crc32(odd.subarray(128)), 64 + 56);
    odd.writeUInt32LE(crc32(odd.subarray(64, 64 + 60)), 64 + 60);
    expectRefused(odd, 'damaged', /segment at 64: body of 88 bytes is not its 1 records/);
    const header = Buffer.from(good);
    header[20]! ^= 1;
    expectRefused(header, 'damaged', /file header fails its checksum/);
    const body = Buffer.from(good);
    body[good.length - 30]! ^= 1; // the only segment of a complete table
    expectRefused(body, 'damaged', /marked complete but holds 0 whole segment/);
    expectRefused(good, 'mismatch', /first record is at 5 ns, the file starts at 6 ns/, { ...pcap, firstNs: 6n });
    expectRefused(good, 'mismatch', /complete table of 1000 pcap bytes, its file has 1200/, { ...pcap, size: 1200 });
    expectRefused(Buffer.from('QEFLOW'), 'damaged', /6 bytes, shorter than the 64-byte header/);
    const wrongCount = encodeTable({ complete: true, pcapFirstNs: 5n, segments: [{ offLo: 24, offHi: 1000, records: [rec()] }] });
    wrongCount.writeUInt32LE(99, 64 + 32); // packets in the segment header
    wrongCount.writeUInt32LE(crc32(wrongCount.subarray(64, 64 + 60)), 64 + 60);
    expectRefused(wrongCount, 'damaged', /its records hold 5 packets, its header says 99/);
    // A middle segment failing its body checksum is damage, not a torn tail.
    const mid = encodeTable({ pcapFirstNs: 5n, segments: [{ offLo: 24, offHi: 500, records: [rec()] }, { offLo: 500, offHi: 800, records: [rec()] }] });
    mid[64 + 64 + 3]! ^= 1;
    expectRefused(mid, 'damaged', /segment at 64 fails its body checksum and is not the last/);
  });
});
