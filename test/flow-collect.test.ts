// What a query takes from an open file's flow table and what it reads as packets: segments whose
// records lie inside the range are answered by them, one across an edge is read, and so is
// everything past the last whole segment (the flush being written, the packets not flushed yet).
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { TableMerger, planFiles } from '../daemon/src/flows/collect.js';
import { flowPathFor } from '../daemon/src/flows/format.js';
import { NativeStats } from '../daemon/src/flows/native-stats.js';
import { catalogFile } from '../daemon/src/store/catalog.js';
import { addressBytes } from '../daemon/src/flows/address.js';
import { BASE_NS, MS, recordEnds, tempDir, traffic, writeCaptureFile } from './lib/fixture.js';
import { encodeTable } from './lib/flow-table.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

describe('planFiles on an open file', () => {
  it('takes whole segments inside the range from the table, reads the one across an edge and the tail (here and in qe-flowstat)', async () => {
    const t = tempDir('collect');
    cleanups.push(t.cleanup);
    const packets = traffic(BASE_NS, 30, 3);
    const f = writeCaptureFile(t.dir, 'eth0', packets, { partial: true });
    const ends = recordEnds(packets);
    // Three flushes of 10 packets each; the table holds the first two whole and a torn third.
    const seg = (k: number) => ({
      offLo: k === 0 ? 24 : ends[k * 10 - 1]!,
      offHi: ends[k * 10 + 9]!,
      records: [{ src: addressBytes(`10.0.0.${k + 1}`), dst: addressBytes('10.9.9.9'), packets: 10, firstNs: packets[k * 10]!.tsNs, lastNs: packets[k * 10 + 9]!.tsNs }],
    });
    const table = encodeTable({ pcapFirstNs: packets[0]!.tsNs, segments: [seg(0), seg(1), seg(2)] });
    writeFileSync(flowPathFor(f.path), table.subarray(0, table.length - 30));
    const entry = catalogFile(f.path);
    // The merger here and qe-flowstat read the table by the same rules: the same plan, the same flows.
    const plan = async (fromNs: bigint, toNs: bigint) => {
      const q = { streams: [{ iface: 'eth0', files: [entry] }], fromNs, toNs, useIndex: true };
      const m = new TableMerger();
      const [p] = await planFiles(q, m);
      const n = new NativeStats(fromNs, toNs, 'src');
      const [np] = await planFiles(q, n);
      const flows = [...m.merger.values()].map((x) => x.src.join('.'));
      expect(np).toEqual(p);
      expect((await n.finish()).rows.map((x) => x.key).sort()).toEqual(flows);
      return { p: p!, flows };
    };
    // All of it: both whole segments from the table, the rest (the torn third) read.
    let r = await plan(BASE_NS - MS, BASE_NS + 3_600_000n * MS);
    expect(r.flows).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(r.p).toMatchObject({ fromTable: 2, read: [[ends[19], 'end']], why: 'tail' });
    // From inside the second flush: the first is outside, the second straddles and is read with the tail.
    r = await plan(packets[15]!.tsNs, BASE_NS + 3_600_000n * MS);
    expect(r.flows).toEqual([]);
    expect(r.p).toMatchObject({ fromTable: 0, read: [[ends[9], 'end']], why: 'edge' });
    // Up to inside the first flush: it is read, the second is after the range (skipped), the tail read.
    r = await plan(BASE_NS - MS, packets[4]!.tsNs);
    expect(r.p).toMatchObject({ fromTable: 0, read: [[24, ends[9]], [ends[19], 'end']], why: 'edge' });
  });
});
