// Encoders for the protocol headers the generator emits: Ethernet with optional 802.1Q / 802.1ad
// tags, IPv4, IPv6, TCP, UDP, ICMP, ICMPv6 and ARP. Each returns a fresh Buffer with lengths and
// checksums filled in, so callers only describe what the frame means.

import { finish, pseudoHeaderSum, sum16 } from './checksum.js';

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

/**
 * Frames are stored as a capturing host sees them: without the 4-byte FCS, padded to the
 * 60-byte Ethernet minimum (64 bytes on the wire). A 1500-byte IP MTU gives 1514-byte frames.
 */
export const MIN_FRAME = 60;
export const FCS_LEN = 4;

export type Mac = Buffer;
export type Addr = Buffer; // 4 bytes (IPv4) or 16 bytes (IPv6)

/** Outer tag first. A QinQ frame has an 802.1ad service tag followed by an 802.1Q customer tag. */
export interface VlanTag {
  tpid: typeof ETHERTYPE_VLAN | typeof ETHERTYPE_QINQ;
  vid: number;
  pcp?: number;
}

export interface L2 {
  src: Mac;
  dst: Mac;
  tags?: readonly VlanTag[];
}

export function ethernetHeaderLen(l2: L2): number {
  return 14 + 4 * (l2.tags?.length ?? 0);
}

/** Writes the Ethernet header (and tags) at `off`; returns where the payload starts. */
export function writeEthernetHeader(b: Buffer, off: number, l2: L2, ethertype: number): number {
  l2.dst.copy(b, off);
  l2.src.copy(b, off + 6);
  off += 12;
  for (const t of l2.tags ?? []) {
    b.writeUInt16BE(t.tpid, off);
    b.writeUInt16BE((((t.pcp ?? 0) & 7) << 13) | (t.vid & 0x0fff), off + 2);
    off += 4;
  }
  b.writeUInt16BE(ethertype, off);
  return off + 2;
}

export function ethernet(l2: L2, ethertype: number, payload: Buffer): Buffer {
  // alloc, not allocUnsafe: the padding up to the minimum frame must be zeros.
  const frame = Buffer.alloc(Math.max(MIN_FRAME, ethernetHeaderLen(l2) + payload.length));
  payload.copy(frame, writeEthernetHeader(frame, 0, l2, ethertype));
  return frame;
}

export interface Ipv4Opts {
  src: Addr;
  dst: Addr;
  protocol: number;
  id: number;
  ttl?: number;
  dontFragment?: boolean;
}

/** Writes a 20-byte IPv4 header with its checksum at `off`; returns where the payload starts. */
export function writeIpv4Header(b: Buffer, off: number, o: Ipv4Opts, payloadLen: number): number {
  b[off] = 0x45;
  b[off + 1] = 0;
  b.writeUInt16BE(20 + payloadLen, off + 2);
  b.writeUInt16BE(o.id & 0xffff, off + 4);
  b.writeUInt16BE(o.dontFragment === false ? 0 : 0x4000, off + 6);
  b[off + 8] = o.ttl ?? 64;
  b[off + 9] = o.protocol;
  b.writeUInt16BE(0, off + 10);
  o.src.copy(b, off + 12);
  o.dst.copy(b, off + 16);
  b.writeUInt16BE(finish(sum16(b, off, off + 20)), off + 10);
  return off + 20;
}

export function ipv4(o: Ipv4Opts, payload: Buffer): Buffer {
  const p = Buffer.allocUnsafe(20 + payload.length);
  payload.copy(p, writeIpv4Header(p, 0, o, payload.length));
  return p;
}

export interface Ipv6Opts {
  src: Addr;
  dst: Addr;
  nextHeader: number;
  hopLimit?: number;
  flowLabel?: number;
}

export function ipv6(o: Ipv6Opts, payload: Buffer): Buffer {
  const p = Buffer.alloc(40 + payload.length);
  p.writeUInt32BE((6 << 28) | ((o.flowLabel ?? 0) & 0xfffff), 0);
  p.writeUInt16BE(payload.length, 4);
  p[6] = o.nextHeader;
  p[7] = o.hopLimit ?? 64;
  o.src.copy(p, 8);
  o.dst.copy(p, 24);
  payload.copy(p, 40);
  return p;
}

/** Addresses of the enclosing IP header, needed for the transport pseudo-header checksum. */
export interface Endpoints {
  src: Addr;
  dst: Addr;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export interface TcpOpts {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** Announced only on SYN and SYN/ACK, as real stacks do. */
  mss?: number;
}

export function tcp(ep: Endpoints, o: TcpOpts, payload: Buffer = Buffer.alloc(0)): Buffer {
  const optLen = o.mss === undefined ? 0 : 4;
  const hdrLen = 20 + optLen;
  const s = Buffer.alloc(hdrLen + payload.length);
  s.writeUInt16BE(o.srcPort, 0);
  s.writeUInt16BE(o.dstPort, 2);
  s.writeUInt32BE(o.seq >>> 0, 4);
  s.writeUInt32BE((o.flags & TCP_ACK ? o.ack : 0) >>> 0, 8);
  s[12] = (hdrLen / 4) << 4;
  s[13] = o.flags;
  s.writeUInt16BE(o.window, 14);
  if (o.mss !== undefined) {
    s[20] = 2; // kind: maximum segment size
    s[21] = 4;
    s.writeUInt16BE(o.mss, 22);
  }
  payload.copy(s, hdrLen);
  s.writeUInt16BE(finish(sum16(s, 0, s.length, pseudoHeaderSum(ep.src, ep.dst, PROTO_TCP, s.length))), 16);
  return s;
}

/**
 * Writes a UDP header at `off` for the `payloadLen` bytes that must already follow it, since the
 * checksum covers them. Returns the end of the datagram.
 */
export function writeUdpHeader(b: Buffer, off: number, ep: Endpoints, srcPort: number, dstPort: number, payloadLen: number): number {
  const len = 8 + payloadLen;
  b.writeUInt16BE(srcPort, off);
  b.writeUInt16BE(dstPort, off + 2);
  b.writeUInt16BE(len, off + 4);
  b.writeUInt16BE(0, off + 6);
  const c = finish(sum16(b, off, off + len, pseudoHeaderSum(ep.src, ep.dst, PROTO_UDP, len)));
  // A computed zero is sent as all ones: zero means "no checksum" in UDP.
  b.writeUInt16BE(c === 0 ? 0xffff : c, off + 6);
  return off + len;
}

export function udp(ep: Endpoints, srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const d = Buffer.allocUnsafe(8 + payload.length);
  payload.copy(d, 8);
  writeUdpHeader(d, 0, ep, srcPort, dstPort, payload.length);
  return d;
}

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;

/** ICMP (v4) echo; `ep` is given for ICMPv6, whose checksum covers a pseudo-header. */
export function icmpEcho(type: number, id: number, seq: number, data: Buffer, ep?: Endpoints): Buffer {
  const m = Buffer.alloc(8 + data.length);
  m[0] = type;
  m.writeUInt16BE(id, 4);
  m.writeUInt16BE(seq, 6);
  data.copy(m, 8);
  const initial = ep ? pseudoHeaderSum(ep.src, ep.dst, PROTO_ICMPV6, m.length) : 0;
  m.writeUInt16BE(finish(sum16(m, 0, m.length, initial)), 2);
  return m;
}

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export function arp(op: number, senderMac: Mac, senderIp: Addr, targetMac: Mac, targetIp: Addr): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0); // hardware: Ethernet
  a.writeUInt16BE(ETHERTYPE_IPV4, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(op, 6);
  senderMac.copy(a, 8);
  senderIp.copy(a, 14);
  targetMac.copy(a, 18);
  targetIp.copy(a, 24);
  return a;
}

/** An IPv4 or IPv6 packet carrying `payload`, chosen by the address family. */
export function ipPacket(ep: Endpoints, protocol: number, id: number, payload: Buffer, ttl = 64): Buffer {
  return ep.src.length === 4
    ? ipv4({ src: ep.src, dst: ep.dst, protocol, id, ttl }, payload)
    : ipv6({ src: ep.src, dst: ep.dst, nextHeader: protocol, hopLimit: ttl, flowLabel: id }, payload);
}

export function ipEthertype(ep: Endpoints): number {
  return ep.src.length === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6;
}
