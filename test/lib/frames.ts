// Test frames that identify themselves: each carries a sequence number after its Ethernet
// header, so any loss, duplicate or reordering shows. Some are 802.1Q or QinQ tagged.
const ETH_TEST = 0x88b5; // IEEE local experimental ethertype

export interface FrameOptions {
  count: number;
  seed?: number;
  /** Share of 802.1Q-tagged frames (every 7th of those is QinQ). */
  vlanShare?: number;
  sizes?: number[];
  srcMac?: number;
}

export function testFrames(o: FrameOptions): Buffer[] {
  const sizes = o.sizes ?? [60, 128, 594, 1000, 1514];
  let rnd = o.seed ?? 1;
  const next = () => {
    rnd = (rnd * 1103515245 + 12345) & 0x7fffffff;
    return rnd / 0x7fffffff;
  };
  const frames: Buffer[] = [];
  for (let i = 0; i < o.count; i++) {
    const size = sizes[Math.floor(next() * sizes.length)]!;
    const f = Buffer.alloc(size);
    f.writeUIntBE(0x020000000002, 0, 6);
    f.writeUIntBE(o.srcMac ?? 0x020000000001, 6, 6);
    let off = 12;
    const tagged = next() < (o.vlanShare ?? 0.1);
    if (tagged) {
      if (i % 7 === 0) {
        f.writeUInt16BE(0x88a8, off); // service tag (QinQ outer)
        f.writeUInt16BE(200, off + 2);
        off += 4;
      }
      f.writeUInt16BE(0x8100, off);
      f.writeUInt16BE(100 + (i % 5), off + 2);
      off += 4;
    }
    f.writeUInt16BE(ETH_TEST, off);
    f.writeUInt32BE(i, off + 2);
    for (let j = off + 6; j < size; j++) f[j] = (i + j) & 0xff;
    frames.push(f);
  }
  return frames;
}

/** Where a test frame carries its sequence number (after any VLAN or QinQ tags). */
export function seqOffset(data: Buffer): number {
  let off = 12;
  while (data.readUInt16BE(off) === 0x8100 || data.readUInt16BE(off) === 0x88a8) off += 4;
  return off + 2;
}

export const seqOf = (data: Buffer): number => data.readUInt32BE(seqOffset(data));
