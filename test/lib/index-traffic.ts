// Traffic for the index tests: every header the packet parser walks (daemon/native/packet-fields.c),
// built byte by byte so each case is known exactly: VLAN and QinQ tags, MPLS, IPv6 extension headers,
// IPv4 and IPv6 fragments, VXLAN/GRE/GTP-U/IP-in-IP tunnels, ARP and other non-IP frames, SCTP.
// Inner (tunnelled) addresses and ports use their own ranges (172.31.x.x, fd31::, ports 7000-7999),
// so a test can tell that they are indexed only with `tunnel`.
import { rng } from './fixture.js';

export interface TrafficPacket {
  tsNs: bigint;
  data: Buffer;
  origlen?: number;
  /** What the packet is, for failure messages. */
  kind: string;
}

const mac = (n: number) => Buffer.from([0x02, 0, 0, 0, (n >> 8) & 0xff, n & 0xff]);
const v4 = (s: string) => Buffer.from(s.split('.').map(Number));
function v6(s: string): Buffer {
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}
const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

function csum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

export function tcp(sport: number, dport: number, payload = 20): Buffer {
  const b = Buffer.alloc(20 + payload, 0x5a);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt32BE(1, 4);
  b[12] = 0x50;
  b[13] = 0x18;
  b.writeUInt16BE(65535, 14);
  b.writeUInt16BE(0, 16);
  return b;
}

/** A TCP header with these flags (sequence 1, no options, window 65535), then `payload`. */
export function tcpSegment(sport: number, dport: number, flags: number, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(1, 4);
  h[12] = 0x50;
  h[13] = flags;
  h.writeUInt16BE(65535, 14);
  return Buffer.concat([h, typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload]);
}

export function udp(sport: number, dport: number, payload: Buffer | number = 20): Buffer {
  const p = typeof payload === 'number' ? Buffer.alloc(payload, 0x33) : payload;
  const b = Buffer.concat([Buffer.alloc(8), p]);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt16BE(b.length, 4);
  return b;
}

export function sctp(sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12 + 16);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt32BE(0x1234, 4);
  b[12] = 0; // DATA chunk
  b.writeUInt16BE(16, 14);
  return b;
}

const icmpEcho = () => Buffer.from([8, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4]);

export function ipv4(src: string, dst: string, proto: number, payload: Buffer, o: { id?: number; mf?: boolean; fragOffset?: number } = {}): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(o.id ?? 1, 4);
  h.writeUInt16BE((o.mf ? 0x2000 : 0) | ((o.fragOffset ?? 0) >> 3), 6);
  h[8] = 64;
  h[9] = proto;
  v4(src).copy(h, 12);
  v4(dst).copy(h, 16);
  h.writeUInt16BE(csum(h), 10);
  return Buffer.concat([h, payload]);
}

/** An IPv6 header and its extension headers (`ext`: [type, body] pairs in order, before `proto`). */
export function ipv6(src: string, dst: string, proto: number, payload: Buffer, ext: Array<[number, Buffer]> = []): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < ext.length; i++) {
    const [, body] = ext[i]!;
    const next = i + 1 < ext.length ? ext[i + 1]![0] : proto;
    parts.push(Buffer.concat([Buffer.from([next]), body]));
  }
  const rest = Buffer.concat([...parts, payload]);
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(rest.length, 4);
  h[6] = ext.length ? ext[0]![0] : proto;
  h[7] = 64;
  v6(src).copy(h, 8);
  v6(dst).copy(h, 24);
  return Buffer.concat([h, rest]);
}

/** Extension header bodies (after the next-header byte). */
export const ext = {
  hopByHop: (): [number, Buffer] => [0, Buffer.from([0, 1, 4, 0, 0, 0, 0])], // len 0: PadN
  routing: (): [number, Buffer] => [43, Buffer.concat([Buffer.from([2, 0, 1]), Buffer.alloc(4), v6('fd00::99')])], // type 0, 1 left
  destOpts: (): [number, Buffer] => [60, Buffer.from([0, 1, 4, 0, 0, 0, 0])],
  ah: (): [number, Buffer] => [51, Buffer.concat([Buffer.from([4, 0, 0]), Buffer.alloc(4, 0x11), Buffer.alloc(4, 0), Buffer.alloc(12, 0x22)])], // (4+2)*4 = 24 bytes
  fragment: (offset: number, more: boolean, id: number): [number, Buffer] => {
    const b = Buffer.alloc(7);
    b.writeUInt16BE((offset & 0xfff8) | (more ? 1 : 0), 1);
    b.writeUInt32BE(id, 3);
    return [44, b];
  },
};

export function ether(src: number, dst: number, tags: Array<[number, number]>, type: number, payload: Buffer): Buffer {
  const parts = [mac(dst), mac(src)];
  for (const [tpid, vid] of tags) parts.push(u16(tpid), u16(vid));
  parts.push(u16(type), payload);
  const f = Buffer.concat(parts);
  return f.length < 60 ? Buffer.concat([f, Buffer.alloc(60 - f.length)]) : f;
}

function mpls(labels: number[], payload: Buffer): Buffer {
  const parts = labels.map((l, i) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(((l << 12) | (i === labels.length - 1 ? 0x100 : 0) | 64) >>> 0);
    return b;
  });
  return Buffer.concat([...parts, payload]);
}

function arp(op: number, sha: number, spa: string, tpa: string): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt16BE(1, 0);
  b.writeUInt16BE(0x0800, 2);
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(op, 6);
  mac(sha).copy(b, 8);
  v4(spa).copy(b, 14);
  v4(tpa).copy(b, 24);
  return b;
}

function vxlan(inner: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = 0x08;
  h.writeUIntBE(5001, 4, 3);
  return Buffer.concat([h, inner]);
}

function gre(proto: number, payload: Buffer, o: { key?: number; seq?: number; checksum?: boolean } = {}): Buffer {
  let flags = 0;
  const opt: Buffer[] = [];
  if (o.checksum) {
    flags |= 0x8000;
    opt.push(Buffer.alloc(4));
  }
  if (o.key !== undefined) {
    flags |= 0x2000;
    const b = Buffer.alloc(4);
    b.writeUInt32BE(o.key);
    opt.push(b);
  }
  if (o.seq !== undefined) {
    flags |= 0x1000;
    const b = Buffer.alloc(4);
    b.writeUInt32BE(o.seq);
    opt.push(b);
  }
  return Buffer.concat([u16(flags), u16(proto), ...opt, payload]);
}

function gtpu(inner: Buffer, withExt: boolean): Buffer {
  const opt = withExt ? Buffer.from([0, 1, 0, 0x85, 1, 0x10, 0x09, 0]) : Buffer.alloc(0); // seq, N-PDU, next=PDU session container (1 word)
  const h = Buffer.alloc(8);
  h[0] = 0x30 | (withExt ? 0x04 : 0);
  h[1] = 0xff;
  h.writeUInt16BE(opt.length + inner.length, 2);
  h.writeUInt32BE(0xabcdef, 4);
  return Buffer.concat([h, opt, inner]);
}

const HOSTS4 = ['10.0.0.1', '10.0.0.2', '10.1.2.3', '192.168.7.9'];
const HOSTS6 = ['2001:db8::1', '2001:db8::2', 'fd00:1::7'];
const PORTS = [22, 53, 80, 443, 5060, 40000];

/** `count` packets of every kind, in a deterministic random order. */
export function indexTraffic(count: number, seed: number, startNs = 1_714_557_600_000_000_000n): TrafficPacket[] {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)]!;
  const port = () => pick(PORTS) + (r() < 0.3 ? Math.floor(r() * 20) : 0);
  const inner4 = () => `172.31.${Math.floor(r() * 4)}.${1 + Math.floor(r() * 50)}`;
  const innerPort = () => 7000 + Math.floor(r() * 40);
  const l4 = (): [number, Buffer] => {
    const k = r();
    return k < 0.45 ? [6, tcp(port(), port(), Math.floor(r() * 300))] : k < 0.85 ? [17, udp(port(), port(), Math.floor(r() * 300))] : k < 0.93 ? [132, sctp(port(), port())] : [1, icmpEcho()];
  };
  const out: TrafficPacket[] = [];
  let ts = startNs;
  let fragId = 100;
  const push = (data: Buffer, kind: string, origlen?: number) => {
    out.push({ tsNs: ts, data, kind, ...(origlen ? { origlen } : {}) });
    ts += BigInt(1 + Math.floor(r() * 5_000_000));
  };
  const macs = () => [1 + Math.floor(r() * 6), 1 + Math.floor(r() * 6)] as const;
  while (out.length < count) {
    const [sm, dm] = macs();
    const k = Math.floor(r() * 16);
    const [proto, payload] = l4();
    switch (k) {
      case 0:
      case 1:
        push(ether(sm, dm, [], 0x0800, ipv4(pick(HOSTS4), pick(HOSTS4), proto, payload)), 'ipv4');
        break;
      case 2:
        push(ether(sm, dm, [[0x8100, 10 + Math.floor(r() * 5)]], 0x0800, ipv4(pick(HOSTS4), pick(HOSTS4), proto, payload)), 'vlan');
        break;
      case 3:
        push(ether(sm, dm, [[0x88a8, 300 + Math.floor(r() * 3)], [0x8100, 20 + Math.floor(r() * 3)]], 0x86dd, ipv6(pick(HOSTS6), pick(HOSTS6), proto === 1 ? 58 : proto, payload)), 'qinq-ipv6');
        break;
      case 4:
        push(ether(sm, dm, [], 0x8847, mpls([16 + Math.floor(r() * 100), 2000], ipv4(pick(HOSTS4), pick(HOSTS4), proto, payload))), 'mpls-ipv4');
        break;
      case 5:
        push(ether(sm, dm, [[0x8100, 11]], 0x8847, mpls([77], ipv6(pick(HOSTS6), pick(HOSTS6), proto === 1 ? 58 : proto, payload))), 'vlan-mpls-ipv6');
        break;
      case 6: {
        const chain = [[ext.hopByHop()], [ext.hopByHop(), ext.routing(), ext.destOpts()], [ext.ah()], [ext.destOpts(), ext.ah()]][Math.floor(r() * 4)]!;
        push(ether(sm, dm, [], 0x86dd, ipv6(pick(HOSTS6), pick(HOSTS6), proto === 1 ? 58 : proto, payload, chain)), 'ipv6-ext');
        break;
      }
      case 7: {
        // An IPv4 datagram in three fragments; now and then the later ones come in other blocks.
        const src = pick(HOSTS4), dst = pick(HOSTS4), id = fragId++;
        const body = proto === 6 ? tcp(port(), port(), 200) : udp(port(), port(), 200);
        const p = proto === 6 ? 6 : 17;
        push(ether(sm, dm, [], 0x0800, ipv4(src, dst, p, body.subarray(0, 96), { id, mf: true })), 'ipv4-frag-first');
        push(ether(sm, dm, [], 0x0800, ipv4(src, dst, p, body.subarray(96, 192), { id, mf: true, fragOffset: 96 })), 'ipv4-frag-mid');
        for (let i = Math.floor(r() * 40); i > 0; i--) push(ether(1, 2, [], 0x0800, ipv4('10.9.9.9', '10.9.9.8', 17, udp(9, 9, 1000))), 'filler');
        push(ether(sm, dm, [], 0x0800, ipv4(src, dst, p, body.subarray(192), { id, fragOffset: 192 })), 'ipv4-frag-last');
        break;
      }
      case 8: {
        const src = pick(HOSTS6), dst = pick(HOSTS6), id = 0x10000 + fragId++;
        const body = udp(port(), port(), 150);
        push(ether(sm, dm, [], 0x86dd, ipv6(src, dst, 17, body.subarray(0, 104), [ext.fragment(0, true, id)])), 'ipv6-frag-first');
        push(ether(sm, dm, [], 0x86dd, ipv6(src, dst, 17, body.subarray(104), [ext.hopByHop(), ext.fragment(104, false, id)])), 'ipv6-frag-last');
        break;
      }
      case 9:
        push(ether(sm, dm, [], 0x0800, ipv4(pick(HOSTS4), pick(HOSTS4), 17, udp(port(), 4789, vxlan(ether(50, 51, [], 0x0800, ipv4(inner4(), inner4(), 6, tcp(innerPort(), innerPort()))))))), 'vxlan');
        break;
      case 10:
        push(ether(sm, dm, [], 0x0800, ipv4(pick(HOSTS4), pick(HOSTS4), 47, gre(0x6558, ether(52, 53, [], 0x0800, ipv4(inner4(), inner4(), 17, udp(innerPort(), innerPort()))), { key: 42 }))), 'gre-eth');
        break;
      case 11:
        push(ether(sm, dm, [], 0x86dd, ipv6(pick(HOSTS6), pick(HOSTS6), 47, gre(0x0800, ipv4(inner4(), inner4(), 6, tcp(innerPort(), innerPort())), { checksum: true, seq: 7 }))), 'gre-ip');
        break;
      case 12:
        push(ether(sm, dm, [], 0x0800, ipv4(pick(HOSTS4), pick(HOSTS4), 17, udp(2152, 2152, gtpu(ipv4(inner4(), inner4(), 17, udp(innerPort(), innerPort())), r() < 0.5)))), 'gtpu');
        break;
      case 13:
        push(ether(sm, 0xffff, [], 0x0806, arp(1, sm, pick(HOSTS4), pick(HOSTS4))), 'arp');
        break;
      case 14:
        push(ether(sm, dm, r() < 0.5 ? [[0x8100, 99]] : [], 0x88cc, Buffer.alloc(40, 1)), 'lldp');
        break;
      case 15: {
        // Cut by the snaplen: inside the IPv4 header, inside TCP's ports, or right after the MACs.
        const full = ether(sm, dm, [[0x8100, 12]], 0x0800, ipv4(pick(HOSTS4), pick(HOSTS4), 6, tcp(port(), port(), 100)));
        const cut = pick([10, 14, 25, 38, 41, 45]);
        push(full.subarray(0, cut), `cut-at-${cut}`, full.length);
        break;
      }
    }
  }
  return out;
}
