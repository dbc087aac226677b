// The on-disk format of a capture file's index (docs/INDEX.md): the TypeScript copy of
// daemon/native/index-format.h, held to it by test/index-format.test.ts. Layout and meaning are
// described there; this module only names the numbers.

export const IDX_EXT = '.qeidx';
export const IDX_TMP_EXT = '.tmp';

export const IDX_MAGIC = Buffer.from('QEIDX\r\n\x1a', 'latin1');
export const IDX_VERSION = 2;
export const IDX_HEADER_LEN = 64;
export const IDX_SEGMENT_MAGIC = 0x47455351;
export const IDX_SEGMENT_HEADER_LEN = 64;
export const IDX_ENTRY_LEN = 40;
export const IDX_VALUE_LEN = 16;
export const IDX_BLOCK_SIZE_DEFAULT = 16384;
export const IDX_BLOCK_SIZE_MIN = 4096;
export const IDX_BLOCK_SIZE_MAX = 1 << 24;

export const IDX_FLAG_COMPLETE = 1;

/** index.fields names and their header bits. */
export const IDX_FIELDS = {
  mac: 1 << 0,
  vlan: 1 << 1,
  ip: 1 << 2,
  port: 1 << 3,
  proto: 1 << 4,
  tunnel: 1 << 5,
} as const;
export type IndexField = keyof typeof IDX_FIELDS;
export const IDX_FIELDS_KNOWN = 0x3f;

export const IDX_KEY = {
  mac: 1,
  vlan: 2,
  ipv4: 3,
  ipv6: 4,
  port: 5,
  proto: 6,
} as const;

/** Byte offsets in the file header. */
export const IDX_H = {
  version: 8,
  headerLen: 10,
  flags: 12,
  blockSize: 16,
  fields: 20,
  linktype: 24,
  builder: 28,
  pcapFirstNs: 32,
  crc: 60,
} as const;

/** Byte offsets in a segment header. */
export const IDX_S = {
  magic: 0,
  nkeys: 4,
  bodyLen: 8,
  offLo: 16,
  offHi: 24,
  records: 32,
  firstNs: 40,
  lastNs: 48,
  bodyCrc: 56,
  crc: 60,
} as const;

/** Byte offsets in a directory entry. */
export const IDX_E = {
  type: 0,
  valueLen: 1,
  keyCrc: 2,
  count: 4,
  off: 8,
  len: 16,
  crc: 20,
  value: 24,
} as const;

/** The fence after each segment header: the sort key of every IDX_FENCE_STRIDE-th directory entry, then their CRC-32. */
export const IDX_FENCE_STRIDE = 102;
export const IDX_FENCE_KEY_LEN = 17;

/** Keys in the fence of a segment of `nkeys` entries. */
export function fenceKeys(nkeys: number): number {
  return Math.ceil(nkeys / IDX_FENCE_STRIDE);
}

/** Bytes of the fence of a segment of `nkeys` entries: its keys and their CRC. */
export function fenceLen(nkeys: number): number {
  return fenceKeys(nkeys) * IDX_FENCE_KEY_LEN + 4;
}

/** Block table entry of a block in which no record of the segment starts. */
export const IDX_BT_NONE = 0xffffffff;
/** Block table entries per group; each group is followed by the CRC-32 of its entries. */
export const IDX_BT_GROUP = 64;

/** Blocks a segment covering [offLo, offHi) touches: its block table's entries. */
export function blockTableBlocks(offLo: number, offHi: number, blockSize: number): number {
  return offHi > offLo ? Math.floor((offHi - 1) / blockSize) - Math.floor(offLo / blockSize) + 1 : 0;
}

/** Bytes of a block table of `nblocks` entries: the entries and one CRC per group. */
export function blockTableLen(nblocks: number): number {
  return nblocks * 4 + Math.ceil(nblocks / IDX_BT_GROUP) * 4;
}

/** The index of a capture file (closed `X.pcap` or open `X.pcap.part`) is `<name>.qeidx`. */
export function indexPathFor(pcapPath: string): string {
  return pcapPath + IDX_EXT;
}
