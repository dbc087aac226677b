// A traffic set for the index and filter-semantics tests: IPv4 and IPv6 (with extension headers)
// over TCP/UDP/ICMP, 802.1Q and QinQ tags, fragmented datagrams, ARP, a VXLAN tunnel and non-IP
// frames, between a pool of hosts small enough that filters match something.
import { rng } from './fixture.js';

export const V4_HOSTS = ['10.0.0.1', '10.0.0.2', '10.0.1.7', '10.1.2.3', '192.168.5.9', '172.16.0.4'];
export const V6_HOSTS = ['2001:db8::1', '2001:db8::2', '2001:db8:1::9', 'fd00::5'];
export const PORTS = [53, 80, 443, 8080, 5000, 123];
export const VLANS = [100, 101, 200];
export const MACS = ['02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03'];

const mac = (s: string) => Buffer.from(s.replace(/:/g, ''), 'hex');
const v4 = (s: string) => Buffer.from(s.split('.').map(Number));
export function v6(s: string): Buffer {
  const [a, b = ''] = s.split('::');
  const ga = a ? a.split(':') : [];
  const gb = b ? b.split(':') : [];
  const all = [...ga, ...Array<string>(8 - ga.length - gb.length).fill('0'), ...gb];
  return Buffer.from(all.map((g) => g.padStart(4, '0')).join(''), 'hex');
}

function csum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length & 1) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

function l2(src: string, dst: string, tags: number[][], ethertype: number): Buffer {
  const parts = [mac(dst), mac(src)];
  for (const [tpid, id] of tags) {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(tpid!, 0);
    t.writeUInt16BE(id!, 2);
    parts.push(t);
  }
  const et = Buffer.alloc(2);
  et.writeUInt16BE(ethertype, 0);
  return Buffer.concat([...parts, et]);
}

function l4(proto: number, sport: number, dport: number, payload: Buffer): Buffer {
  if (proto === 1 || proto === 58) {
    const h = Buffer.alloc(8);
    h[0] = proto === 1 ? 8 : 128;
    return Buffer.concat([h, payload]);
  }
  const h = Buffer.alloc(proto === 6 ? 20 : 8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  if (proto === 6) {
    h[12] = 0x50;
    h[13] = 0x18;
  } else h.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([h, payload]);
}

function ipv4(src: string, dst: string, proto: number, body: Buffer, id: number, fragOff = 0, more = false): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + body.length, 2);
  h.writeUInt16BE(id, 4);
  h.writeUInt16BE((more ? 0x2000 : 0) | (fragOff >> 3), 6);
  h[8] = 64;
  h[9] = proto;
  v4(src).copy(h, 12);
  v4(dst).copy(h, 16);
  h.writeUInt16BE(csum(h), 10);
  return Buffer.concat([h, body]);
}

function ipv6(src: string, dst: string, nh: number, body: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(body.length, 4);
  h[6] = nh;
  h[7] = 64;
  v6(src).copy(h, 8);
  v6(dst).copy(h, 24);
  return Buffer.concat([h, body]);
}

function ext(nh: number): Buffer {
  const e = Buffer.alloc(8);
  e[0] = nh;
  e[2] = 1; // a PadN option filling the header
  e[3] = 4;
  return e;
}

function fragHdr(nh: number, off: number, more: boolean, id: number): Buffer {
  const f = Buffer.alloc(8);
  f[0] = nh;
  f.writeUInt16BE(off | (more ? 1 : 0), 2);
  f.writeUInt32BE(id, 4);
  return f;
}

/**
 * `count` frames (a fragmented datagram counts as one), seeded. A `background` share of them is
 * untagged plain TCP/UDP between random hosts and ports outside the pools, so what a filter over
 * the pools matches is sparse, as a query for one host in a real store is.
 */
export function mixedTraffic(count: number, seed: number, background = 0): Buffer[] {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const out: Buffer[] = [];
  let id = 1;
  for (let i = 0; i < count; i++) {
    if (r() < background) {
      const proto = r() < 0.5 ? 6 : 17;
      const host = () => `10.200.${Math.floor(r() * 250)}.${1 + Math.floor(r() * 250)}`;
      const port = () => 10000 + Math.floor(r() * 50000);
      const body = l4(proto, port(), port(), Buffer.alloc(Math.floor(r() * 400), i & 0xff));
      out.push(Buffer.concat([l2('02:00:00:00:00:0a', '02:00:00:00:00:0b', [], 0x0800), ipv4(host(), host(), proto, body, id++)]));
      continue;
    }
    const tagKind = r();
    const tags = tagKind < 0.55 ? [] : tagKind < 0.85 ? [[0x8100, pick(VLANS)]] : [[0x88a8, pick(VLANS)], [0x8100, pick(VLANS)]];
    const sm = pick(MACS);
    const dm = pick(MACS);
    const payload = Buffer.alloc(Math.floor(r() * 120), i & 0xff);
    const kind = r();
    if (kind < 0.45) {
      const proto = pick([6, 17, 17, 1]);
      const [s, d] = [pick(V4_HOSTS), pick(V4_HOSTS)];
      out.push(Buffer.concat([l2(sm, dm, tags, 0x0800), ipv4(s, d, proto, l4(proto, pick(PORTS), pick(PORTS), payload), id++)]));
    } else if (kind < 0.65) {
      const proto = pick([6, 17, 58]);
      const body = l4(proto, pick(PORTS), pick(PORTS), payload);
      const withExt = r() < 0.4;
      const ip = withExt ? ipv6(pick(V6_HOSTS), pick(V6_HOSTS), 0, Buffer.concat([ext(60), ext(proto), body])) : ipv6(pick(V6_HOSTS), pick(V6_HOSTS), proto, body);
      out.push(Buffer.concat([l2(sm, dm, tags, 0x86dd), ip]));
    } else if (kind < 0.75) {
      // A UDP datagram in three fragments (the ports only in the first).
      const [s, d] = [pick(V4_HOSTS), pick(V4_HOSTS)];
      const dgram = l4(17, pick(PORTS), pick(PORTS), Buffer.alloc(200, i & 0xff));
      const fid = id++;
      const head = l2(sm, dm, tags, 0x0800);
      out.push(Buffer.concat([head, ipv4(s, d, 17, dgram.subarray(0, 80), fid, 0, true)]));
      out.push(Buffer.concat([head, ipv4(s, d, 17, dgram.subarray(80, 160), fid, 80, true)]));
      out.push(Buffer.concat([head, ipv4(s, d, 17, dgram.subarray(160), fid, 160, false)]));
    } else if (kind < 0.8) {
      const [s, d] = [pick(V6_HOSTS), pick(V6_HOSTS)];
      const dgram = l4(17, pick(PORTS), pick(PORTS), Buffer.alloc(150, i & 0xff));
      const fid = id++;
      const head = l2(sm, dm, tags, 0x86dd);
      out.push(Buffer.concat([head, ipv6(s, d, 44, Buffer.concat([fragHdr(17, 0, true, fid), dgram.subarray(0, 80)]))]));
      out.push(Buffer.concat([head, ipv6(s, d, 44, Buffer.concat([fragHdr(17, 80, false, fid), dgram.subarray(80)]))]));
    } else if (kind < 0.87) {
      const a = Buffer.alloc(28);
      a.writeUInt16BE(1, 0);
      a.writeUInt16BE(0x0800, 2);
      a[4] = 6;
      a[5] = 4;
      a.writeUInt16BE(1, 6);
      mac(sm).copy(a, 8);
      v4(pick(V4_HOSTS)).copy(a, 14);
      v4(pick(V4_HOSTS)).copy(a, 24);
      out.push(Buffer.concat([l2(sm, 'ff:ff:ff:ff:ff:ff', tags, 0x0806), a]));
    } else if (kind < 0.94) {
      // VXLAN: the inner frame's hosts and ports are for the `tunnel` field.
      const inner = Buffer.concat([l2(sm, dm, [], 0x0800), ipv4(pick(V4_HOSTS), pick(V4_HOSTS), 6, l4(6, pick(PORTS), pick(PORTS), payload), id++)]);
      const vx = Buffer.alloc(8);
      vx[0] = 0x08;
      vx.writeUIntBE(42, 4, 3);
      out.push(Buffer.concat([l2(sm, dm, tags, 0x0800), ipv4(pick(V4_HOSTS), pick(V4_HOSTS), 17, l4(17, 49152, 4789, Buffer.concat([vx, inner])), id++)]));
    } else {
      out.push(Buffer.concat([l2(sm, dm, tags, 0x88b5), Buffer.alloc(46, i & 0xff)]));
    }
  }
  return out.map((f) => (f.length < 60 ? Buffer.concat([f, Buffer.alloc(60 - f.length)]) : f));
}
