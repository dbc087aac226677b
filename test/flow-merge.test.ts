// Merging flow records (daemon/src/flows/merge.ts) and the text of addresses, keys and flags a
// flow is shown with.
import { describe, expect, it } from 'vitest';
import { addressBytes, addressText } from '../daemon/src/flows/address.js';
import { FLOW_RF, encodeFlowRecord, type FlowRecord } from '../daemon/src/flows/format.js';
import { FlowMerger, flowKey, rawFlowKey, swapped } from '../daemon/src/flows/merge.js';
import { encodeRecord } from './lib/flow-table.js';
import { protoLabel, tcpFlagsText } from '../daemon/src/flows/render.js';
import { PcapRecordWalker } from '../daemon/src/flows/series.js';
import { buildPcap } from '../daemon/src/pcap/format.js';
import { NativeStats } from '../daemon/src/flows/native-stats.js';

const A = addressBytes('10.0.0.1');
const B = addressBytes('10.0.0.2');
function rec(o: Partial<FlowRecord>): FlowRecord {
  return {
    ipVersion: 4, proto: 6, flags: 0, tcpFlagsFwd: 0, tcpFlagsRev: 0, sport: 40000, dport: 80, vlan: [], src: A, dst: B,
    firstNs: 100n, lastNs: 200n, bytes: 100n, bytesRev: 0n, packets: 1, packetsRev: 0, syn: 0, synack: 0, fin: 0, rst: 0, rttUs: 0, ...o,
  };
}

describe('FlowMerger', () => {
  it('sums, ORs, takes the earliest first and latest last; a reversed record is swapped', () => {
    const m = new FlowMerger();
    m.add('eth0', rec({ packets: 3, bytes: 300n, packetsRev: 2, bytesRev: 50n, tcpFlagsFwd: 0x02, tcpFlagsRev: 0x12, syn: 1, synack: 1, flags: FLOW_RF.rtt, rttUs: 900 }));
    // The next file's record of the flow starts with the server's packet: its src is the server.
    m.add('eth0', swapped(rec({ firstNs: 300n, lastNs: 400n, packets: 5, bytes: 500n, packetsRev: 7, bytesRev: 70n, tcpFlagsFwd: 0x10, tcpFlagsRev: 0x11, fin: 2 })));
    expect(m.size).toBe(1);
    const f = [...m.values()][0]!;
    expect(f).toMatchObject({ src: A, sport: 40000, packets: 8, bytes: 800, packetsRev: 9, bytesRev: 120, tcpFlagsFwd: 0x12, tcpFlagsRev: 0x13, syn: 1, synack: 1, fin: 2, firstNs: 100n, lastNs: 400n, rttUs: 900, records: 2 });
  });

  it('a record that saw an earlier packet decides the orientation and the round trip, whatever the order of adding', () => {
    const early = rec({ firstNs: 10n, lastNs: 20n, packets: 1, tcpFlagsFwd: 0x02, flags: FLOW_RF.rtt, rttUs: 1500 });
    const late = swapped(rec({ firstNs: 50n, lastNs: 90n, packets: 4, packetsRev: 1, flags: FLOW_RF.rtt, rttUs: 99 }));
    for (const order of [[early, late], [late, early]]) {
      const m = new FlowMerger();
      for (const r of order) m.add('eth0', r);
      const f = [...m.values()][0]!;
      expect(f).toMatchObject({ src: A, dst: B, sport: 40000, dport: 80, packets: 5, packetsRev: 1, firstNs: 10n, lastNs: 90n, rttUs: 1500, tcpFlagsFwd: 0x02 });
    }
  });

  it('keys: interface, VLAN stack, protocol and ends apart; non-IP by EtherType', () => {
    const m = new FlowMerger();
    for (const r of [rec({}), rec({ vlan: [5] }), rec({ proto: 17 }), rec({ sport: 40001 })]) m.add('eth0', r);
    m.add('eth1', rec({}));
    const arp = { ipVersion: 0, proto: 0, sport: 0x0806, dport: 0, src: Buffer.alloc(0), dst: Buffer.alloc(0) };
    m.add('eth0', rec(arp));
    m.add('eth0', rec({ ...arp, packets: 4 }));
    m.add('eth0', rec({ ...arp, sport: 0x88cc }));
    expect(m.size).toBe(7);
    expect(flowKey('eth0', rec({}))).toBe(flowKey('eth0', swapped(rec({}))));
    expect([...m.values()].find((f) => f.ipVersion === 0 && f.sport === 0x0806)!.packets).toBe(5);
  });

  it('merging a table body from its bytes gives what merging its decoded records gives', () => {
    const v6 = { ipVersion: 6, src: addressBytes('2001:db8::9'), dst: addressBytes('2001:db8::1'), proto: 17, vlan: [7, 8] };
    const recs = [
      rec({ packets: 2, bytes: 20n, flags: FLOW_RF.rtt, rttUs: 40, firstNs: 50n }),
      swapped(rec({ packets: 1, packetsRev: 3, firstNs: 10n, lastNs: 300n, tcpFlagsFwd: 2 })),
      rec({ ...v6, packets: 4 }), swapped(rec({ ...v6, packets: 1, firstNs: 1n })),
      rec({ ipVersion: 0, proto: 0, sport: 0x0806, dport: 0, src: Buffer.alloc(0), dst: Buffer.alloc(0), vlan: [3] }),
      rec({ dst: A, sport: 9, dport: 10 }), rec({ dst: A, sport: 10, dport: 9, packets: 6 }),
    ];
    const body = Buffer.concat(recs.map(encodeRecord));
    let at = 0;
    for (const r of recs) {
      expect(rawFlowKey('eth1', body, at)).toBe(flowKey('eth1', r));
      at += r.ipVersion === 6 ? 112 : 88;
    }
    expect(at).toBe(body.length);
    const fromRecords = new FlowMerger();
    for (const r of recs) fromRecords.add('eth1', r);
    const fromBytes = new FlowMerger();
    fromBytes.addBody('eth1', body);
    const plain = (m: FlowMerger) => JSON.stringify(m.sorted().map((f) => ({ ...f, src: f.src.toString('hex'), dst: f.dst.toString('hex') })), (_, v) => (typeof v === 'bigint' ? String(v) : v));
    expect(plain(fromBytes)).toBe(plain(fromRecords));
    expect(fromBytes.size).toBe(4);
  });
});

describe('how flows are shown', () => {
  it('addresses in RFC 5952 text, both ways', () => {
    for (const [text, canon] of [['2001:db8::1', '2001:db8::1'], ['2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['::', '::'], ['fe80::200:86ff:fe05:80da', 'fe80::200:86ff:fe05:80da'], ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], ['::ffff:10.1.2.3', '::ffff:a01:203'], ['192.168.0.1', '192.168.0.1']])
      expect(addressText(addressBytes(text!))).toBe(canon);
  });

  it('protocols and EtherTypes by name, TCP flags as letters', () => {
    expect(protoLabel({ ipVersion: 4, proto: 6, sport: 1 })).toBe('tcp');
    expect(protoLabel({ ipVersion: 6, proto: 58, sport: 1 })).toBe('ipv6-icmp');
    expect(protoLabel({ ipVersion: 4, proto: 47, sport: 1 })).toBe(47);
    expect(protoLabel({ ipVersion: 0, proto: 0, sport: 0x0806 })).toBe('arp');
    expect(protoLabel({ ipVersion: 0, proto: 0, sport: 0x88b5 })).toBe('ethertype-0x88b5');
    expect(tcpFlagsText(0x02 | 0x10 | 0x01 | 0x08)).toBe('APSF');
    expect(tcpFlagsText(0xff)).toBe('CEUAPRSF');
  });

  it('host rows: a host sending to itself counts twice, its flow once (qe-flowstat)', async () => {
    const rows = async (by: 'host' | 'conversation') => {
      const n = new NativeStats(0n, 2n ** 63n, by);
      await n.addBody('eth0', Buffer.concat([encodeFlowRecord(rec({ dst: A, packets: 2, bytes: 20n })), encodeFlowRecord(rec({ packets: 3, bytes: 30n }))]));
      return (await n.finish()).rows;
    };
    expect(await rows('host')).toEqual([
      { key: '10.0.0.1', packets: 7, bytes: 70, flows: 2 },
      { key: '10.0.0.2', packets: 3, bytes: 30, flows: 1 },
    ]);
    expect((await rows('conversation')).map((r) => r.key)).toEqual(['10.0.0.1 <-> 10.0.0.2', '10.0.0.1 <-> 10.0.0.1']);
  });

  it('the series walker finds every record header of a pcap stream cut anywhere', () => {
    const recs = Array.from({ length: 50 }, (_, i) => ({ tsNs: 1000n + BigInt(i), data: Buffer.alloc(20 + i * 7, i), origlen: 100 + i }));
    const pcap = buildPcap(recs);
    for (const step of [1, 3, 16, 17, 64, 1000, pcap.length]) {
      const seen: [bigint, number][] = [];
      const w = new PcapRecordWalker((ts, len) => seen.push([ts, len]));
      for (let i = 0; i < pcap.length; i += step) w.push(pcap.subarray(i, i + step));
      expect(seen).toEqual(recs.map((r) => [r.tsNs, r.origlen]));
    }
  });
});
