// "Realistic" traffic for the `mixed` profile: interleaved conversations that a dissector can
// follow end to end — HTTP over TCP (handshake, request, segmented response, close) on IPv4 and
// IPv6, DNS queries and answers over UDP, ICMP/ICMPv6 echo, ARP — with about one conversation in
// ten on an 802.1Q VLAN and a few inside 802.1ad QinQ. Sequence numbers, lengths and checksums
// are all consistent, so tshark reports no malformed packets and no checksum errors.

import { DNS_A, DNS_AAAA, dnsQuery, dnsResponse, type DnsQuestion } from './dns.js';
import {
  ARP_REPLY,
  ARP_REQUEST,
  ETHERTYPE_ARP,
  ETHERTYPE_QINQ,
  ETHERTYPE_VLAN,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_SYN,
  arp,
  ethernet,
  icmpEcho,
  ipEthertype,
  ipPacket,
  tcp,
  udp,
  type Endpoints,
  type L2,
  type Mac,
  type VlanTag,
} from './frames.js';
import { Prng } from './prng.js';

interface Host {
  mac: Mac;
  v4: Buffer;
  v6: Buffer;
}

/** One side of a conversation: where its frames come from and go to. */
interface Side {
  l2: L2;
  ep: Endpoints;
  nextIpId: () => number;
}

type Session = Iterator<Buffer, void>;

const ACTIVE_SESSIONS = 6;
const BROADCAST = Buffer.alloc(6, 0xff);
const ZERO_MAC = Buffer.alloc(6);

// Conversation kinds and how often each starts; TCP conversations are long, so most frames are TCP.
const KINDS = { http4: 4, http6: 1, dns4: 6, dns6: 2, icmp4: 2, icmp6: 1, arp: 2 } as const;
type Kind = keyof typeof KINDS;

function host(prefix4: number[], prefix6: number[], i: number): Host {
  const v6 = Buffer.alloc(16);
  Buffer.from(prefix6).copy(v6);
  v6.writeUInt16BE(i, 14);
  return {
    mac: Buffer.from([0x02, 0x51, 0x45, prefix4[1]!, prefix4[2]!, i & 0xff]),
    v4: Buffer.from([...prefix4, i]),
    v6,
  };
}

export function* mixedFrames(rng: Prng): Generator<Buffer> {
  // Benchmarking ranges only: 198.18.0.0/15 (RFC 2544) and 2001:2::/48 (RFC 5180).
  const clients = Array.from({ length: 24 }, (_, i) => host([198, 18, 0], [0x20, 0x01, 0, 2], 10 + i));
  const servers = Array.from({ length: 8 }, (_, i) => host([198, 19, 0], [0x20, 0x01, 0, 2, 0, 1], 1 + i));
  const resolver = host([198, 19, 255], [0x20, 0x01, 0, 2, 0, 0xff], 53);
  const text = printablePool(rng, 64 * 1024);

  const start = (): Session => {
    const kind = rng.weighted<Kind>(KINDS);
    const tags = pickTags(rng);
    const c = rng.pick(clients);
    switch (kind) {
      case 'http4':
      case 'http6': {
        const [a, b] = sides(rng, c, rng.pick(servers), kind === 'http6', tags);
        return httpConversation(rng, a, b, text);
      }
      case 'dns4':
      case 'dns6': {
        const [a, b] = sides(rng, c, resolver, kind === 'dns6', tags);
        return dnsExchange(rng, a, b, kind === 'dns6');
      }
      case 'icmp4':
      case 'icmp6': {
        const [a, b] = sides(rng, c, rng.pick(servers), kind === 'icmp6', tags);
        return pings(rng, a, b, kind === 'icmp6');
      }
      case 'arp':
        return arpExchange(c, rng.pick(servers), tags);
    }
  };

  const active: Session[] = [];
  for (;;) {
    while (active.length < ACTIVE_SESSIONS) active.push(start());
    const i = rng.int(active.length);
    const r = active[i]!.next();
    if (r.done) active.splice(i, 1);
    else yield r.value;
  }
}

function pickTags(rng: Prng): VlanTag[] {
  const r = rng.float();
  if (r < 0.015) {
    return [
      { tpid: ETHERTYPE_QINQ, vid: rng.pick([100, 200]) },
      { tpid: ETHERTYPE_VLAN, vid: rng.pick([10, 20, 30]) },
    ];
  }
  if (r < 0.1) return [{ tpid: ETHERTYPE_VLAN, vid: rng.pick([10, 20, 30, 40]), pcp: rng.pick([0, 0, 5]) }];
  return [];
}

function sides(rng: Prng, a: Host, b: Host, v6: boolean, tags: VlanTag[]): [Side, Side] {
  const side = (from: Host, to: Host): Side => {
    let id = rng.int(65536);
    return {
      l2: { src: from.mac, dst: to.mac, tags },
      ep: v6 ? { src: from.v6, dst: to.v6 } : { src: from.v4, dst: to.v4 },
      nextIpId: () => (id = (id + 1) & 0xffff),
    };
  };
  return [side(a, b), side(b, a)];
}

function ipFrame(s: Side, protocol: number, payload: Buffer, ttl = 64): Buffer {
  return ethernet(s.l2, ipEthertype(s.ep), ipPacket(s.ep, protocol, s.nextIpId(), payload, ttl));
}

function printablePool(rng: Prng, n: number): Buffer {
  const alphabet = Buffer.from('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,\n');
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = alphabet[rng.int(alphabet.length)]!;
  return b;
}

const NAMES = ['www', 'api', 'cdn', 'static', 'mail', 'login', 'img'];
const DOMAINS = ['example.com', 'example.net', 'example.org', 'shop.example', 'news.example'];
const PATHS = ['/', '/index.html', '/api/v1/items', '/static/app.js', '/img/logo.png', '/search?q=packets'];

function* httpConversation(rng: Prng, client: Side, server: Side, text: Buffer): Generator<Buffer, void> {
  const cport = rng.range(32768, 60999);
  const sport = 80;
  const mss = client.ep.src.length === 4 ? 1460 : 1440;
  let cseq = rng.u32();
  let sseq = rng.u32();
  const seg = (from: 'c' | 's', flags: number, payload?: Buffer, synMss?: number): Buffer => {
    const [s, src, dst, seq, ack, window] =
      from === 'c' ? [client, cport, sport, cseq, sseq, 64240] : [server, sport, cport, sseq, cseq, 65160];
    const t = tcp(s.ep, { srcPort: src, dstPort: dst, seq, ack, flags, window, ...(synMss ? { mss: synMss } : {}) }, payload);
    return ipFrame(s, PROTO_TCP, t, from === 'c' ? 64 : 57);
  };
  const add = (a: number, n: number): number => (a + n) >>> 0;

  yield seg('c', TCP_SYN, undefined, mss);
  cseq = add(cseq, 1);
  yield seg('s', TCP_SYN | TCP_ACK, undefined, mss);
  sseq = add(sseq, 1);
  yield seg('c', TCP_ACK);

  const name = `${rng.pick(NAMES)}.${rng.pick(DOMAINS)}`;
  const request = Buffer.from(
    `GET ${rng.pick(PATHS)} HTTP/1.1\r\nHost: ${name}\r\nUser-Agent: qe-packets-gen/1\r\nAccept: */*\r\n\r\n`,
  );
  yield seg('c', TCP_PSH | TCP_ACK, request);
  cseq = add(cseq, request.length);
  yield seg('s', TCP_ACK);

  // Response bodies from a few hundred bytes to tens of kilobytes, spread log-uniformly.
  const bodyLen = Math.round(Math.exp(Math.log(200) + rng.float() * (Math.log(30000) - Math.log(200))));
  const off = rng.int(text.length - bodyLen);
  const response = Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${bodyLen}\r\n\r\n`),
    text.subarray(off, off + bodyLen),
  ]);
  for (let at = 0, n = 0; at < response.length; n++) {
    const chunk = response.subarray(at, at + mss);
    at += chunk.length;
    const last = at >= response.length;
    yield seg('s', TCP_ACK | (last ? TCP_PSH : 0), chunk);
    sseq = add(sseq, chunk.length);
    // Delayed ACKs: every second segment, and the last one.
    if (last || n % 2 === 1) yield seg('c', TCP_ACK);
  }

  yield seg('c', TCP_FIN | TCP_ACK);
  cseq = add(cseq, 1);
  yield seg('s', TCP_FIN | TCP_ACK);
  sseq = add(sseq, 1);
  yield seg('c', TCP_ACK);
}

function* dnsExchange(rng: Prng, client: Side, resolver: Side, v6: boolean): Generator<Buffer, void> {
  const q: DnsQuestion = {
    id: rng.int(65536),
    name: `${rng.pick(NAMES)}.${rng.pick(DOMAINS)}`,
    type: v6 ? DNS_AAAA : DNS_A,
  };
  const port = rng.range(32768, 60999);
  yield ipFrame(client, PROTO_UDP, udp(client.ep, port, 53, dnsQuery(q)));
  const answers = Array.from({ length: rng.range(1, 3) }, () =>
    v6
      ? Buffer.from([0x20, 0x01, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, rng.int(256), rng.range(1, 254)])
      : Buffer.from([198, 19, rng.int(256), rng.range(1, 254)]),
  );
  yield ipFrame(resolver, PROTO_UDP, udp(resolver.ep, 53, port, dnsResponse(q, answers, rng.range(30, 3600))));
}

function* pings(rng: Prng, client: Side, server: Side, v6: boolean): Generator<Buffer, void> {
  const id = rng.int(65536);
  const [protocol, request, reply] = v6
    ? [PROTO_ICMPV6, ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY]
    : [PROTO_ICMP, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY];
  const count = rng.range(1, 3);
  for (let seq = 1; seq <= count; seq++) {
    // 56 data bytes as ping(8) sends: a timestamp-like prefix, then a counting pattern.
    const data = Buffer.alloc(56);
    rng.fill(data, 0, 8);
    for (let i = 8; i < 56; i++) data[i] = i;
    yield ipFrame(client, protocol, icmpEcho(request, id, seq, data, v6 ? client.ep : undefined));
    yield ipFrame(server, protocol, icmpEcho(reply, id, seq, data, v6 ? server.ep : undefined));
  }
}

function* arpExchange(asker: Host, owner: Host, tags: VlanTag[]): Generator<Buffer, void> {
  yield ethernet({ src: asker.mac, dst: BROADCAST, tags }, ETHERTYPE_ARP, arp(ARP_REQUEST, asker.mac, asker.v4, ZERO_MAC, owner.v4));
  yield ethernet({ src: owner.mac, dst: asker.mac, tags }, ETHERTYPE_ARP, arp(ARP_REPLY, owner.mac, owner.v4, asker.mac, asker.v4));
}
