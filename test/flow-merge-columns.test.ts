// The merger's columns and open-addressing table against a plain reference merge written from the
// rules in merge.ts's header: many flows (the table grows and probes past collisions), both
// orientations, VLAN stacks with junk in the unused tag slots, IPv6, frames that are not IP,
// round trips, two interfaces, records in random order and split across bodies.
import { describe, expect, it } from 'vitest';
import { FLOW_R, FLOW_RF, encodeFlowRecord, flowBodyRecords, type FlowRecord } from '../daemon/src/flows/format.js';
import { FlowMerger, flowKey, swapped } from '../daemon/src/flows/merge.js';
import { NativeStats } from '../daemon/src/flows/native-stats.js';
import { STATS_BY, totalsOf } from '../daemon/src/flows/stats.js';
import { oracleRows } from './lib/stats-oracle.js';
import { rng } from './lib/fixture.js';

interface Expected {
  iface: string;
  r: FlowRecord;
  firstSeen: number;
  rttFrom?: { ns: bigint; us: number };
  records: number;
}

function identities(r: () => number, n: number): Omit<FlowRecord, 'firstNs' | 'lastNs' | 'packets' | 'packetsRev' | 'bytes' | 'bytesRev' | 'flags' | 'rttUs'>[] {
  const out = [];
  for (let i = 0; i < n; i++) {
    const kind = r();
    const ipVersion = kind < 0.1 ? 0 : kind < 0.35 ? 6 : 4;
    const alen = ipVersion === 4 ? 4 : ipVersion === 6 ? 16 : 0;
    const addr = () => Buffer.from(Array.from({ length: alen }, () => Math.floor(r() * (ipVersion === 4 ? 4 : 256))));
    const nvlan = Math.floor(r() * 4);
    out.push({
      ipVersion,
      proto: ipVersion ? [6, 17, 1][Math.floor(r() * 3)]! : 0,
      tcpFlagsFwd: 0,
      tcpFlagsRev: 0,
      sport: ipVersion ? Math.floor(r() * 8) : [0x0806, 0x88cc][Math.floor(r() * 2)]!,
      dport: ipVersion ? Math.floor(r() * 8) : 0,
      vlan: Array.from({ length: nvlan }, () => 1 + Math.floor(r() * 3)),
      src: addr(),
      dst: addr(),
      syn: 0,
      synack: 0,
      fin: 0,
      rst: 0,
    });
  }
  return out;
}

describe('FlowMerger against a reference merge', () => {
  it('merges 60,000 records of 20,000 flows as the rules say, and qe-flowstat counts the same flows', async () => {
    const r = rng(42);
    const ids = identities(r, 20_000);
    const want = new Map<string, Expected>();
    const bodies: { iface: string; parts: Buffer[] }[] = [
      { iface: 'eth0', parts: [] },
      { iface: 'eth1', parts: [] },
    ];
    let seen = 0;
    for (let k = 0; k < 60_000; k++) {
      const id = ids[Math.floor(r() * ids.length)]!;
      const firstNs = BigInt(Math.floor(r() * 1e6)) * 1000n;
      let rec: FlowRecord = {
        ...id,
        firstNs,
        lastNs: firstNs + BigInt(Math.floor(r() * 1e6)),
        packets: Math.floor(r() * 100),
        packetsRev: Math.floor(r() * 100),
        bytes: BigInt(Math.floor(r() * 1e9)),
        bytesRev: BigInt(Math.floor(r() * 1e5)),
        tcpFlagsFwd: Math.floor(r() * 256),
        tcpFlagsRev: Math.floor(r() * 256),
        syn: Math.floor(r() * 3),
        synack: Math.floor(r() * 3),
        fin: Math.floor(r() * 3),
        rst: Math.floor(r() * 3),
        flags: (r() < 0.2 ? FLOW_RF.rtt : 0) | (r() < 0.1 ? FLOW_RF.fragments : 0),
        rttUs: Math.floor(r() * 1e5),
      };
      // Non-IP records have no ends to exchange.
      if (id.ipVersion && r() < 0.5) rec = swapped(rec);
      const which = bodies[r() < 0.7 ? 0 : 1]!;
      const b = encodeFlowRecord(rec);
      // Junk in the tag slots a record does not use: not part of its identity.
      for (let i = rec.vlan.length; i < 3; i++) b.writeUInt16LE(Math.floor(r() * 65536), FLOW_R.vlan + 2 * i);
      which.parts.push(b);

      const key = flowKey(which.iface, rec);
      const e = want.get(key);
      const order = seen++;
      const rtt = rec.flags & FLOW_RF.rtt ? { ns: rec.firstNs, us: rec.rttUs } : undefined;
      if (!e) {
        want.set(key, { iface: which.iface, r: { ...rec, flags: rec.flags }, firstSeen: order, records: 1, ...(rtt ? { rttFrom: rtt } : {}) });
        continue;
      }
      const same = !id.ipVersion || (e.r.sport === rec.sport && e.r.src.equals(rec.src) && e.r.dport === rec.dport && e.r.dst.equals(rec.dst));
      // The earliest record (the first seen of equal ones) decides the orientation.
      const earlier = rec.firstNs < e.r.firstNs;
      let base = e.r;
      let add = rec;
      if (!same) {
        if (earlier) base = swapped(base);
        else add = swapped(rec);
      }
      e.r = {
        ...base,
        packets: base.packets + add.packets,
        packetsRev: base.packetsRev + add.packetsRev,
        bytes: base.bytes + add.bytes,
        bytesRev: base.bytesRev + add.bytesRev,
        tcpFlagsFwd: base.tcpFlagsFwd | add.tcpFlagsFwd,
        tcpFlagsRev: base.tcpFlagsRev | add.tcpFlagsRev,
        syn: base.syn + add.syn,
        synack: base.synack + add.synack,
        fin: base.fin + add.fin,
        rst: base.rst + add.rst,
        flags: base.flags | add.flags,
        firstNs: earlier ? rec.firstNs : base.firstNs,
        lastNs: rec.lastNs > base.lastNs ? rec.lastNs : base.lastNs,
      };
      e.records++;
      if (rtt && (!e.rttFrom || rtt.ns < e.rttFrom.ns)) e.rttFrom = rtt;
    }

    const m = new FlowMerger();
    // Bodies of a few hundred records each, interleaving the interfaces.
    const sequence: [string, Buffer][] = [];
    for (let at = 0; at < 60_000; at += 500) for (const b of bodies) if (b.parts.length > at) sequence.push([b.iface, Buffer.concat(b.parts.slice(at, at + 500))]);
    for (const [iface, body] of sequence) m.addBody(iface, body);
    expect(m.size).toBe(want.size);
    const got = [...m.values()];
    expect(got.length).toBe(want.size);
    for (const f of got) {
      const e = want.get(flowKey(f.iface, { ...f, bytes: 0n, bytesRev: 0n }))!;
      expect(e, flowKey(f.iface, { ...f, bytes: 0n, bytesRev: 0n })).toBeDefined();
      const w = e.r;
      expect({ src: f.src.toString('hex'), dst: f.dst.toString('hex'), sport: f.sport, dport: f.dport, vlan: f.vlan, ipVersion: f.ipVersion, proto: f.proto }).toEqual({ src: w.src.toString('hex'), dst: w.dst.toString('hex'), sport: w.sport, dport: w.dport, vlan: w.vlan, ipVersion: w.ipVersion, proto: w.proto });
      expect({ packets: f.packets, packetsRev: f.packetsRev, bytes: f.bytes, bytesRev: f.bytesRev, fwd: f.tcpFlagsFwd, rev: f.tcpFlagsRev, syn: f.syn, synack: f.synack, fin: f.fin, rst: f.rst }).toEqual({ packets: w.packets, packetsRev: w.packetsRev, bytes: Number(w.bytes), bytesRev: Number(w.bytesRev), fwd: w.tcpFlagsFwd, rev: w.tcpFlagsRev, syn: w.syn, synack: w.synack, fin: w.fin, rst: w.rst });
      expect({ firstNs: f.firstNs, lastNs: f.lastNs, flags: f.flags, records: f.records, rttUs: e.rttFrom ? f.rttUs : undefined, rttFromNs: f.rttFromNs }).toEqual({ firstNs: w.firstNs, lastNs: w.lastNs, flags: w.flags, records: e.records, rttUs: e.rttFrom?.us, rttFromNs: e.rttFrom?.ns });
    }
    // qe-flowstat, given the same bodies in the same order, merges the same flows (their number,
    // ends and orientation: every key of every statistic) and counts them as the rules say.
    for (const by of STATS_BY) {
      for (const top of [20, undefined]) {
        const n = new NativeStats(0n, 2n ** 63n, by, top);
        for (const [iface, body] of sequence) await n.addBody(iface, body);
        const s = await n.finish();
        expect(s.total, by).toEqual(totalsOf(got));
        expect(s.rows, `${by} --top ${top}`).toEqual(oracleRows(got, by, top));
      }
    }
    // Both record lengths were in the bodies: IPv4 and non-IP records of 88 bytes, IPv6 of 112.
    const lengths = new Set(sequence.flatMap(([, body]) => { const l: number[] = []; for (let o = 0; o < body.length; o += body[o] === 6 ? 112 : 88) l.push(body[o] === 6 ? 112 : 88); return l; }));
    expect([...lengths].sort()).toEqual([112, 88]);
    for (const [, body] of sequence) expect(flowBodyRecords(body)).toBeGreaterThan(0);
  });
});

describe('qe-flowstat against FlowMerger when records tie', () => {
  it('the record seen first keeps its orientation against later ones of the same time, as in the merger', async () => {
    const r = rng(7);
    const ids = identities(r, 300);
    const m = new FlowMerger();
    const n = { src: new NativeStats(0n, 2n ** 63n, 'src'), port: new NativeStats(0n, 2n ** 63n, 'port') };
    for (let k = 0; k < 30; k++) {
      const parts: Buffer[] = [];
      for (let i = 0; i < 100; i++) {
        const id = ids[Math.floor(r() * ids.length)]!;
        // Three instants only: most records of a flow tie with its earliest.
        const firstNs = BigInt(Math.floor(r() * 3)) * 1000n;
        let rec: FlowRecord = { ...id, firstNs, lastNs: firstNs + 5n, packets: 1 + Math.floor(r() * 9), packetsRev: Math.floor(r() * 9), bytes: BigInt(Math.floor(r() * 1e4)), bytesRev: 0n, flags: 0, rttUs: 0 };
        if (id.ipVersion && r() < 0.5) rec = swapped(rec);
        parts.push(encodeFlowRecord(rec));
      }
      const body = Buffer.concat(parts);
      m.addBody('eth0', body);
      await n.src.addBody('eth0', body);
      await n.port.addBody('eth0', body);
    }
    const got = [...m.values()];
    expect((await n.src.finish()).rows).toEqual(oracleRows(got, 'src'));
    expect((await n.port.finish()).rows).toEqual(oracleRows(got, 'port'));
  });
});
