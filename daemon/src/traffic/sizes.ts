// Fixed-size benchmark traffic: UDP/IPv4 frames of the sizes benchmark literature names by their
// on-the-wire length. Sizes here are pcap lengths (no FCS): wire − 4 bytes.
//   64    → 60-byte frames (the Ethernet minimum, 64 on the wire)
//   1500  → 1514-byte frames (1500-byte IP MTU, 1518 on the wire)
//   imix  → simple IMIX 7:4:1 of 64/594/1518 wire bytes = 60/590/1514 in pcap
//           (average 357.8 bytes per frame in pcap, 361.8 on the wire)

import {
  ETHERTYPE_IPV4,
  FCS_LEN,
  PROTO_UDP,
  writeEthernetHeader,
  writeIpv4Header,
  writeUdpHeader,
  type Addr,
  type Mac,
} from './frames.js';
import { Prng } from './prng.js';

export type SizeProfile = '64' | '1500' | 'imix';

/** Wire sizes (with FCS) of one repeating cycle of the profile, in their proportions. */
export const WIRE_CYCLE: Readonly<Record<SizeProfile, readonly number[]>> = {
  '64': [64],
  '1500': [1518],
  imix: [...Array<number>(7).fill(64), ...Array<number>(4).fill(594), 1518],
};

export function pcapLength(wireSize: number): number {
  return wireSize - FCS_LEN;
}

const FLOWS = 16;
// 'Q0PK': its first two bytes rule out the RTCP (version bits) and CLTP (TPDU code) heuristics.
const MAGIC = Buffer.from('Q0PK');

interface Flow {
  l2: { src: Mac; dst: Mac };
  src: Addr;
  dst: Addr;
  srcPort: number;
  dstPort: number;
  ipId: number;
}

function makeFlows(rng: Prng): Flow[] {
  const flows: Flow[] = [];
  for (let i = 0; i < FLOWS; i++) {
    // 198.18.0.0/15 is reserved for benchmarking (RFC 2544); locally administered MACs.
    flows.push({
      l2: {
        src: Buffer.from([0x02, 0x42, 0x51, 0x45, 0x00, i]),
        dst: Buffer.from([0x02, 0x42, 0x51, 0x45, 0x01, i]),
      },
      src: Buffer.from([198, 18, rng.int(256), rng.range(1, 254)]),
      dst: Buffer.from([198, 19, rng.int(256), rng.range(1, 254)]),
      // Fixed unassigned ports: random payload on a well-known port (53, 4789, ...) would be
      // dissected as that protocol and reported malformed.
      srcPort: 40000 + i,
      dstPort: 41000 + i,
      ipId: rng.int(65536),
    });
  }
  return flows;
}

/**
 * Endless frames of a size profile. Sizes follow the cycle exactly, shuffled within each cycle so
 * any 12 consecutive IMIX frames hold exactly 7 small, 4 medium and 1 large.
 */
export function* sizedFrames(profile: SizeProfile, rng: Prng): Generator<Buffer> {
  const flows = makeFlows(rng);
  // Payload bytes are slices of one random pool: cheap per frame yet not all zeros, so
  // compression or deduplication downstream cannot make a capture look faster than it is.
  const pool = rng.fill(Buffer.allocUnsafe(64 * 1024));
  const cycle = WIRE_CYCLE[profile].map(pcapLength);
  let seq = 0;
  for (;;) {
    const order = cycle.length > 1 ? rng.shuffle([...cycle]) : cycle;
    for (const len of order) {
      const f = flows[rng.int(FLOWS)]!;
      // Built in place, one buffer per frame: this path writes the multi-gigabyte benchmark files.
      const frame = Buffer.allocUnsafe(len);
      const ipOff = writeEthernetHeader(frame, 0, f.l2, ETHERTYPE_IPV4);
      const udpOff = ipOff + 20;
      const dataOff = udpOff + 8;
      // A fixed tag and a sequence number lead the payload: random leading bytes would match
      // some heuristic dissector (RTCP, CLTP, ...) now and then and show up as malformed.
      MAGIC.copy(frame, dataOff);
      frame.writeUInt32BE(seq, dataOff + 4);
      seq = (seq + 1) >>> 0;
      const rest = len - dataOff - 8;
      const off = rng.int(pool.length - rest);
      pool.copy(frame, dataOff + 8, off, off + rest);
      const ep = { src: f.src, dst: f.dst };
      writeUdpHeader(frame, udpOff, ep, f.srcPort, f.dstPort, len - dataOff);
      f.ipId = (f.ipId + 1) & 0xffff;
      writeIpv4Header(frame, ipOff, { ...ep, protocol: PROTO_UDP, id: f.ipId }, len - udpOff);
      yield frame;
    }
  }
}
