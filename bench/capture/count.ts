// Counts the packets a tool actually left on disk, independent of what the tool says it wrote:
// pcap files are walked record by record (pcap/format.ts), Stenotype's files block by block.

import { open } from 'node:fs/promises';
import { GLOBAL_HEADER_LEN, decodeGlobalHeader, scanRecords, type GlobalHeader } from '../../daemon/src/pcap/format.js';

const READ_CHUNK = 16 * 1024 * 1024;

export interface FileCount {
  path: string;
  packets: number;
  /** Sum of captured frame lengths. */
  frameBytes: number;
  fileBytes: number;
  /** Bytes after the last whole record (a torn last record) or unreadable blocks. */
  trailingBytes: number;
}

/** Streams through a pcap file in large reads, carrying a partial record over to the next read. */
export async function countPcap(path: string): Promise<FileCount> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const result: FileCount = { path, packets: 0, frameBytes: 0, fileBytes: size, trailingBytes: 0 };
    if (size < GLOBAL_HEADER_LEN) {
      result.trailingBytes = size;
      return result;
    }
    const head = Buffer.alloc(GLOBAL_HEADER_LEN);
    await fh.read(head, 0, GLOBAL_HEADER_LEN, 0);
    const g: GlobalHeader = decodeGlobalHeader(head);
    let buf = Buffer.allocUnsafe(READ_CHUNK + 300_000);
    let have = 0;
    let pos = GLOBAL_HEADER_LEN;
    for (;;) {
      if (buf.length - have < READ_CHUNK) {
        // A record larger than the chunk (snaplen up to 256 KiB): grow once.
        const bigger = Buffer.allocUnsafe(have + READ_CHUNK);
        buf.copy(bigger, 0, 0, have);
        buf = bigger;
      }
      const { bytesRead } = await fh.read(buf, have, READ_CHUNK, pos);
      pos += bytesRead;
      have += bytesRead;
      const { count, dataBytes, end } = scanRecords(buf.subarray(0, have), g, 0);
      result.packets += count;
      result.frameBytes += dataBytes;
      buf.copy(buf, 0, end, have);
      have -= end;
      if (bytesRead === 0) break;
    }
    result.trailingBytes = have;
    return result;
  } finally {
    await fh.close();
  }
}

// Stenotype writes the kernel's TPACKET_V3 blocks as they are (struct tpacket_block_desc, then
// packets each led by a struct tpacket3_hdr), one block per --blocksize_kb (1 MiB by default).
const TPACKET_V3 = 2;
const BD_NUM_PKTS = 12;
const BD_FIRST_PKT = 16;
const BD_BLK_LEN = 20;
const PH_NEXT = 0;
const PH_SNAPLEN = 12;

/**
 * Counts packets in one Stenotype packet file. Each block's num_pkts is checked against a walk of
 * its packet headers, so a file that is not what we think fails loudly instead of miscounting.
 * Zero-filled blocks (preallocated, never written) are skipped.
 */
export async function countStenotype(path: string, blockSize = 1 << 20): Promise<FileCount> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const result: FileCount = { path, packets: 0, frameBytes: 0, fileBytes: size, trailingBytes: 0 };
    const perRead = Math.max(1, Math.floor(READ_CHUNK / blockSize)) * blockSize;
    const buf = Buffer.allocUnsafe(perRead);
    for (let pos = 0; pos < size; pos += perRead) {
      const { bytesRead } = await fh.read(buf, 0, perRead, pos);
      for (let b = 0; b < bytesRead; b += blockSize) {
        if (b + blockSize > bytesRead) {
          result.trailingBytes += bytesRead - b;
          break;
        }
        const version = buf.readUInt32LE(b);
        if (version === 0) continue;
        if (version !== TPACKET_V3) throw new Error(`${path}: block at ${pos + b} has version ${version}`);
        const n = buf.readUInt32LE(b + BD_NUM_PKTS);
        const blkLen = buf.readUInt32LE(b + BD_BLK_LEN);
        let p = b + buf.readUInt32LE(b + BD_FIRST_PKT);
        for (let i = 0; i < n; i++) {
          if (p + 32 > b + Math.min(blkLen, blockSize)) throw new Error(`${path}: block at ${pos + b} overruns after ${i}/${n} packets`);
          result.frameBytes += buf.readUInt32LE(p + PH_SNAPLEN);
          const next = buf.readUInt32LE(p + PH_NEXT);
          if (next === 0 && i !== n - 1) throw new Error(`${path}: block at ${pos + b} ends after ${i + 1}/${n} packets`);
          p += next;
        }
        result.packets += n;
      }
    }
    return result;
  } finally {
    await fh.close();
  }
}
