// The Community ID flow hash, version 1 (github.com/corelight/community-id-spec): the string Zeek's
// conn.log, Suricata's EVE and Arkime carry for a flow, so our records join with theirs. Computed
// here from a flow record's addresses, protocol and ports (ICMP: type and code) rather than
// stored: the hash is a function of the key and costs nothing to keep.
import { createHash } from 'node:crypto';

const TCP = 6;
const UDP = 17;
const SCTP = 132;
export const ICMP = 1;
export const ICMP6 = 58;

// Zeek's ICMP "counter-types": a request and its reply map to the same pair of port equivalents,
// so both directions of an exchange get one ID. Types not listed are one-way (type, code).
const ICMP_PAIRS: ReadonlyArray<[number, number]> = [
  [8, 0], // echo, echo reply
  [13, 14], // timestamp
  [15, 16], // information
  [10, 9], // router solicitation, advertisement
  [17, 18], // address mask
];
const ICMP6_PAIRS: ReadonlyArray<[number, number]> = [
  [128, 129], // echo
  [130, 131], // multicast listener query, report
  [133, 134], // router solicitation, advertisement
  [135, 136], // neighbor solicitation, advertisement
  [139, 140], // node information query, reply
  [144, 145], // home agent address discovery
];

function twoWay(pairs: ReadonlyArray<[number, number]>): Map<number, number> {
  const m = new Map<number, number>();
  for (const [a, b] of pairs) {
    m.set(a, b);
    m.set(b, a);
  }
  return m;
}
const ICMP_COUNTER = twoWay(ICMP_PAIRS);
const ICMP6_COUNTER = twoWay(ICMP6_PAIRS);

export interface CommunityIdInput {
  proto: number;
  /** 4 or 16 bytes, network order. */
  src: Buffer;
  dst: Buffer;
  /** Ports; for ICMP/ICMPv6 the type and code. */
  sport: number;
  dport: number;
}

/** The port equivalents of an ICMP message, and whether the exchange is one-way (no reordering). */
export function icmpPorts(proto: number, type: number, code: number): { sport: number; dport: number; oneWay: boolean } {
  const counter = (proto === ICMP6 ? ICMP6_COUNTER : ICMP_COUNTER).get(type);
  return counter === undefined ? { sport: type, dport: code, oneWay: true } : { sport: type, dport: counter, oneWay: false };
}

/** `1:<base64 of the SHA-1>` for the flow, with the spec's default seed 0. */
export function communityId(f: CommunityIdInput, seed = 0): string {
  let { src, dst, sport, dport } = f;
  const hasPorts = f.proto === TCP || f.proto === UDP || f.proto === SCTP || f.proto === ICMP || f.proto === ICMP6;
  let oneWay = false;
  if (f.proto === ICMP || f.proto === ICMP6) ({ sport, dport, oneWay } = icmpPorts(f.proto, sport, dport));
  // The smaller (address, port) end goes first, so both directions of a flow hash alike.
  if (!oneWay) {
    const c = Buffer.compare(src, dst);
    if (c > 0 || (c === 0 && hasPorts && sport > dport)) [src, dst, sport, dport] = [dst, src, dport, sport];
  }
  const h = createHash('sha1');
  const head = Buffer.alloc(2);
  head.writeUInt16BE(seed & 0xffff);
  h.update(head).update(src).update(dst).update(Buffer.from([f.proto, 0]));
  if (hasPorts) {
    const p = Buffer.alloc(4);
    p.writeUInt16BE(sport, 0);
    p.writeUInt16BE(dport, 2);
    h.update(p);
  }
  return `1:${h.digest('base64')}`;
}
