// The Internet checksum (RFC 1071) used by IPv4 headers, ICMP, TCP and UDP. Generated frames must
// carry correct checksums so that tshark's validation finds nothing and the frames look real.

/** Adds the 16-bit big-endian words of b[start, end) to a running one's-complement sum. */
export function sum16(b: Buffer, start = 0, end = b.length, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8;
  return sum;
}

/** Folds a running sum to 16 bits and complements it. */
export function finish(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

export function internetChecksum(b: Buffer, start = 0, end = b.length): number {
  return finish(sum16(b, start, end));
}

/**
 * The partial sum of the TCP/UDP pseudo-header: the addresses, the protocol and the upper-layer
 * length. The IPv4 and IPv6 layouts differ in field widths but sum to the same words.
 */
export function pseudoHeaderSum(src: Buffer, dst: Buffer, protocol: number, length: number): number {
  return sum16(src) + sum16(dst) + protocol + (length >>> 16) + (length & 0xffff);
}
