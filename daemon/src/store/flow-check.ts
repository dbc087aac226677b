// Whether a closed capture file's flow table can be kept as it is, or must be (re)built: asked
// beside the index's question (index-check.ts) by `qe-packets index` and the daemon's background
// indexing. A table is kept only when the reader trusts it (every checksum, its version, this
// very pcap file) and it is complete: one segment covering the file to its end.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { FLOW_FLAG_COMPLETE, FLOW_H, FLOW_HEADER_LEN, FLOW_MAGIC, FLOW_S, FLOW_SEGMENT_HEADER_LEN, FLOW_SEGMENT_MAGIC, FLOW_VERSION, FlowTableUnusable, decodeFlowHeader, decodeFlowSegment, decodeFlowTable, flowPathFor } from '../flows/format.js';
import { IndexUnusable, pcapFacts } from '../index/reader.js';
import type { IndexState, IndexVerify } from './index-check.js';

/** The reader's message without the path it starts with and the consequence it ends with. */
function reasonOf(e: Error, path: string): string {
  return e.message.replace(`${path}: `, '').replace(/: (its pcap file's packets are counted|not this file's table).*$/, '');
}

/**
 * The state of the flow table of a closed pcap file. 'full' decodes it all (every checksum);
 * 'headers' checks the file header, the segment header and the length they promise (the daemon at
 * each start: a reader checks the body of what it reads). Throws only when the pcap file itself
 * cannot be read.
 */
export function checkFlowTable(pcapPath: string, verify: IndexVerify = 'full'): IndexState {
  const path = flowPathFor(pcapPath);
  let buf: Buffer;
  try {
    buf = verify === 'full' ? readFileSync(path) : readHead(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    return { state: 'damaged', reason: (e as Error).message };
  }
  let pcap;
  try {
    pcap = pcapFacts(pcapPath);
  } catch (e) {
    if (e instanceof IndexUnusable) return { state: 'stale', reason: e.message };
    throw e;
  }
  try {
    if (verify === 'full') {
      const t = decodeFlowTable(buf, path, pcap);
      if (!t.complete) return { state: 'stale', reason: 'not marked complete (the table of a file that was still open)' };
      return { state: 'current', indexBytes: buf.length };
    }
    return headersState(buf, path, pcap);
  } catch (e) {
    if (!(e instanceof FlowTableUnusable)) throw e;
    if (e.kind === 'version') return { state: 'version', found: buf.readUInt16LE(FLOW_H.version), expected: FLOW_VERSION };
    if (e.kind === 'mismatch') return { state: 'stale', reason: reasonOf(e, path) };
    return { state: 'damaged', reason: reasonOf(e, path) };
  }
}

/** The file header, the first segment header, and the table's size on disk (stored after them). */
function readHead(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const b = Buffer.alloc(Math.min(size, FLOW_HEADER_LEN + FLOW_SEGMENT_HEADER_LEN) + 8);
    const n = readSync(fd, b, 0, b.length - 8, 0);
    b.writeBigUInt64LE(BigInt(size), n);
    return b.subarray(0, n + 8);
  } finally {
    closeSync(fd);
  }
}

function headersState(b: Buffer, path: string, pcap: { linktype: number; size: number; firstNs: bigint }): IndexState {
  const size = Number(b.readBigUInt64LE(b.length - 8));
  const head = b.subarray(0, b.length - 8);
  if (head.length < FLOW_HEADER_LEN || !head.subarray(0, FLOW_MAGIC.length).equals(FLOW_MAGIC)) return { state: 'damaged', reason: 'not a flow table (bad magic or cut short)' };
  const h = decodeFlowHeader(head);
  if (h.version !== FLOW_VERSION) return { state: 'version', found: h.version, expected: FLOW_VERSION };
  if (crc32(head.subarray(0, FLOW_H.crc)) !== head.readUInt32LE(FLOW_H.crc)) return { state: 'damaged', reason: 'file header fails its checksum' };
  if (h.linktype !== pcap.linktype || h.pcapFirstNs !== pcap.firstNs) return { state: 'stale', reason: 'the table of another pcap file' };
  if (head.length < h.headerLen + FLOW_SEGMENT_HEADER_LEN) return { state: 'damaged', reason: 'cut short before its segment' };
  const s = head.subarray(h.headerLen, h.headerLen + FLOW_SEGMENT_HEADER_LEN);
  if (s.readUInt32LE(FLOW_S.magic) !== FLOW_SEGMENT_MAGIC || crc32(s.subarray(0, FLOW_S.crc)) !== s.readUInt32LE(FLOW_S.crc)) return { state: 'damaged', reason: 'segment header fails its checksum' };
  const seg = decodeFlowSegment(s, h.headerLen);
  if ((h.flags & FLOW_FLAG_COMPLETE) === 0) return { state: 'stale', reason: 'not marked complete (the table of a file that was still open)' };
  if (h.headerLen + FLOW_SEGMENT_HEADER_LEN + seg.bodyLen !== size) return { state: 'damaged', reason: `${size} bytes, its headers say ${h.headerLen + FLOW_SEGMENT_HEADER_LEN + seg.bodyLen}` };
  if (seg.offHi !== pcap.size) return { state: 'stale', reason: `covers ${seg.offHi} bytes of the pcap file, which holds ${pcap.size}` };
  return { state: 'current', indexBytes: size };
}
