// Traffic for the flow table tests: conversations with a known shape (TCP handshakes with a set
// round trip, teardowns, resets, a retransmitted SYN, ICMP and ICMPv6 echo and one-way messages,
// fragmented datagrams and an orphan later fragment, VLAN/QinQ/four-tag stacks, ARP and LLDP),
// interleaved with the index's every-header traffic (index-traffic.ts) for breadth.
import { rng } from './fixture.js';
import { ether, indexTraffic, ipv4, ipv6, ext, tcp, udp, type TrafficPacket } from './index-traffic.js';

const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;

function seg(sport: number, dport: number, flags: number, payload = 0): Buffer {
  const t = tcp(sport, dport, payload);
  t[13] = flags;
  return t;
}

function icmp(type: number, code: number): Buffer {
  return Buffer.from([type, code, 0, 0, 0, 7, 0, 1, 9, 9, 9, 9]);
}

type Tags = Array<[number, number]>;

/** `sessions` conversations of each kind plus `background` packets of indexTraffic, by time. */
export function flowTraffic(sessions: number, background: number, seed: number, startNs = 1_714_557_600_000_000_000n): TrafficPacket[] {
  const r = rng(seed);
  const out: TrafficPacket[] = [];
  const at = (t: bigint, data: Buffer, kind: string, origlen?: number) => out.push({ tsNs: t, data, kind, ...(origlen ? { origlen } : {}) });
  const span = 2_000_000_000n;
  const start = () => startNs + BigInt(Math.floor(r() * Number(span)));
  const host4 = (i: number) => `10.${20 + (i % 7)}.${i % 250}.${1 + (i % 200)}`;
  const host6 = (i: number) => `2001:db8:${(i % 9).toString(16)}::${(i + 1).toString(16)}`;
  const tagSets: Tags[] = [[], [[0x8100, 100]], [[0x88a8, 200], [0x8100, 300]], [[0x88a8, 5], [0x8100, 6], [0x8100, 7], [0x8100, 8]]];
  for (let i = 0; i < sessions; i++) {
    const tags = tagSets[i % tagSets.length]!;
    const v6 = i % 3 === 2;
    const [cli, srv] = v6 ? [host6(i), host6(i + 50)] : [host4(i), host4(i + 50)];
    const ip = (src: string, dst: string, proto: number, body: Buffer) =>
      ether(1, 2, tags, v6 ? 0x86dd : 0x0800, v6 ? ipv6(src, dst, proto, body) : ipv4(src, dst, proto, body, { id: i }));
    const cport = 30000 + i, sport = [80, 443, 22][i % 3]!;
    let t = start();
    const rtt = BigInt(100_000 + Math.floor(r() * 5_000_000));
    const step = () => (t += BigInt(1 + Math.floor(r() * 1_000_000)));
    // A whole TCP conversation: handshake, data both ways, both FINs.
    if (i % 4 !== 3) at(t, ip(cli, srv, 6, seg(cport, sport, SYN)), 'syn');
    else {
      at(t, ip(cli, srv, 6, seg(cport, sport, SYN)), 'syn'); // retransmitted: the round trip is from the first
      at(t + rtt / 2n, ip(cli, srv, 6, seg(cport, sport, SYN)), 'syn-again');
    }
    t += rtt;
    at(t, ip(srv, cli, 6, seg(sport, cport, SYN | ACK)), 'synack');
    at(step(), ip(cli, srv, 6, seg(cport, sport, ACK)), 'ack');
    at(step(), ip(cli, srv, 6, seg(cport, sport, PSH | ACK, 100 + i)), 'data');
    at(step(), ip(srv, cli, 6, seg(sport, cport, PSH | ACK, 900)), 'data-rev');
    at(step(), ip(cli, srv, 6, seg(cport, sport, FIN | ACK)), 'fin');
    at(step(), ip(srv, cli, 6, seg(sport, cport, FIN | ACK)), 'fin-rev');
    at(step(), ip(cli, srv, 6, seg(cport, sport, ACK)), 'last-ack');
    // An odd handshake: a SYN-ACK from the SYN's own end first; the round trip is to the other end's.
    if (i % 6 === 1) {
      t = start();
      at(t, ip(cli, srv, 6, seg(cport + 2, 25, SYN)), 'odd-syn');
      at(step(), ip(cli, srv, 6, seg(cport + 2, 25, SYN | ACK)), 'odd-synack-same-end');
      at(t + rtt, ip(srv, cli, 6, seg(25, cport + 2, SYN | ACK)), 'odd-synack');
    }
    // A refused connection: SYN, then RST-ACK.
    t = start();
    at(t, ip(cli, srv, 6, seg(cport + 1, 8080, SYN)), 'syn-refused');
    at(step(), ip(srv, cli, 6, seg(8080, cport + 1, RST | ACK)), 'rst');
    // Echo request and reply (one flow), then a one-way message (its own).
    t = start();
    at(t, ip(cli, srv, v6 ? 58 : 1, icmp(v6 ? 128 : 8, 0)), 'echo');
    at(step(), ip(srv, cli, v6 ? 58 : 1, icmp(v6 ? 129 : 0, 0)), 'echo-reply');
    at(step(), ip(srv, cli, v6 ? 58 : 1, icmp(v6 ? 1 : 3, 3)), 'unreachable');
    // ICMPv6 node information query and reply (one flow, a two-way pair of the Community ID's table);
    // mobile prefix solicitation and advertisement (not in it: two flows).
    if (v6) {
      at(step(), ip(cli, srv, 58, icmp(139, 0)), 'node-info-query');
      at(step(), ip(srv, cli, 58, icmp(140, 0)), 'node-info-reply');
      at(step(), ip(cli, srv, 58, icmp(146, 0)), 'mobile-prefix-solicit');
      at(step(), ip(srv, cli, 58, icmp(147, 0)), 'mobile-prefix-advert');
    }
    // A UDP datagram in two fragments, from the client; a later fragment whose first was never seen.
    t = start();
    const dgram = udp(5353, 53, 160);
    if (v6) {
      at(t, ether(1, 2, tags, 0x86dd, ipv6(cli, srv, 17, dgram.subarray(0, 104), [ext.fragment(0, true, 7000 + i)])), 'frag-first');
      at(step(), ether(1, 2, tags, 0x86dd, ipv6(cli, srv, 17, dgram.subarray(104), [ext.fragment(104, false, 7000 + i)])), 'frag-later');
      at(step(), ether(1, 2, tags, 0x86dd, ipv6(cli, srv, 17, dgram.subarray(104), [ext.fragment(104, false, 9000 + i)])), 'frag-orphan');
    } else {
      at(t, ether(1, 2, tags, 0x0800, ipv4(cli, srv, 17, dgram.subarray(0, 96), { id: 7000 + i, mf: true })), 'frag-first');
      at(step(), ether(1, 2, tags, 0x0800, ipv4(cli, srv, 17, dgram.subarray(96), { id: 7000 + i, fragOffset: 96 })), 'frag-later');
      at(step(), ether(1, 2, tags, 0x0800, ipv4(cli, srv, 17, dgram.subarray(96), { id: 9000 + i, fragOffset: 96 })), 'frag-orphan');
    }
    // Non-IP frames: per EtherType and VLAN stack.
    at(start(), ether(3, 0xffff, tags, 0x0806, Buffer.alloc(28, 1)), 'arp');
    at(start(), ether(4, 5, tags, 0x88cc, Buffer.alloc(40, 2)), 'lldp');
  }
  out.push(...indexTraffic(background, seed + 1, startNs));
  // By time (stable): every flow's packets in the order they were sent.
  return out.map((p, i) => [p, i] as const).sort(([a, i], [b, j]) => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : i - j)).map(([p]) => p);
}
