// Writes flow tables (daemon/src/flows/format.ts) for tests: an independent encoder of the layout,
// so the decoder is checked against bytes it did not produce.
import { crc32 } from 'node:zlib';
import { FLOW_FLAG_COMPLETE, FLOW_H, FLOW_HEADER_LEN, FLOW_MAGIC, FLOW_R, FLOW_S, FLOW_T, FLOW_SEGMENT_HEADER_LEN, FLOW_SEGMENT_MAGIC, FLOW_VERSION, type FlowRecord } from '../../daemon/src/flows/format.js';

export interface TestSegment {
  offLo: number;
  offHi: number;
  records: Partial<FlowRecord>[];
}

/** A record as the layout says: 4-byte addresses unless IPv6, then the tail (FLOW_T). */
export function encodeRecord(r: Partial<FlowRecord>): Buffer {
  const ipVersion = r.ipVersion ?? 4;
  const alen = ipVersion === 6 ? 16 : 4;
  const t = FLOW_R.src + 2 * alen;
  const b = Buffer.alloc(t + 64);
  b[FLOW_R.ipVersion] = ipVersion;
  b[FLOW_R.proto] = r.proto ?? 6;
  b[FLOW_R.nvlan] = r.vlan?.length ?? 0;
  b[FLOW_R.flags] = r.flags ?? 0;
  b[FLOW_R.tcpFlagsFwd] = r.tcpFlagsFwd ?? 0;
  b[FLOW_R.tcpFlagsRev] = r.tcpFlagsRev ?? 0;
  b.writeUInt16LE(r.sport ?? 0, FLOW_R.sport);
  b.writeUInt16LE(r.dport ?? 0, FLOW_R.dport);
  (r.vlan ?? []).forEach((v, i) => b.writeUInt16LE(v, FLOW_R.vlan + 2 * i));
  (r.src ?? Buffer.alloc(0)).copy(b, FLOW_R.src, 0, alen);
  (r.dst ?? Buffer.alloc(0)).copy(b, FLOW_R.src + alen, 0, alen);
  b.writeBigUInt64LE(r.firstNs ?? 0n, t + FLOW_T.firstNs);
  b.writeBigUInt64LE(r.lastNs ?? 0n, t + FLOW_T.lastNs);
  b.writeBigUInt64LE(r.bytes ?? 0n, t + FLOW_T.bytes);
  b.writeBigUInt64LE(r.bytesRev ?? 0n, t + FLOW_T.bytesRev);
  b.writeUInt32LE(r.packets ?? 0, t + FLOW_T.packets);
  b.writeUInt32LE(r.packetsRev ?? 0, t + FLOW_T.packetsRev);
  b.writeUInt32LE(r.syn ?? 0, t + FLOW_T.syn);
  b.writeUInt32LE(r.synack ?? 0, t + FLOW_T.synack);
  b.writeUInt32LE(r.fin ?? 0, t + FLOW_T.fin);
  b.writeUInt32LE(r.rst ?? 0, t + FLOW_T.rst);
  b.writeUInt32LE(r.rttUs ?? 0, t + FLOW_T.rttUs);
  return b;
}

export function encodeSegment(s: TestSegment): Buffer {
  const body = Buffer.concat(s.records.map(encodeRecord));
  const h = Buffer.alloc(FLOW_SEGMENT_HEADER_LEN);
  h.writeUInt32LE(FLOW_SEGMENT_MAGIC, FLOW_S.magic);
  h.writeUInt32LE(s.records.length, FLOW_S.nrecords);
  h.writeBigUInt64LE(BigInt(body.length), FLOW_S.bodyLen);
  h.writeBigUInt64LE(BigInt(s.offLo), FLOW_S.offLo);
  h.writeBigUInt64LE(BigInt(s.offHi), FLOW_S.offHi);
  h.writeBigUInt64LE(BigInt(s.records.reduce((n, r) => n + (r.packets ?? 0) + (r.packetsRev ?? 0), 0)), FLOW_S.packets);
  const times = s.records.flatMap((r) => [r.firstNs ?? 0n, r.lastNs ?? 0n]);
  h.writeBigUInt64LE(times.length ? times.reduce((a, b) => (a < b ? a : b)) : 0n, FLOW_S.firstNs);
  h.writeBigUInt64LE(times.length ? times.reduce((a, b) => (a > b ? a : b)) : 0n, FLOW_S.lastNs);
  h.writeUInt32LE(crc32(body), FLOW_S.bodyCrc);
  h.writeUInt32LE(crc32(h.subarray(0, FLOW_S.crc)), FLOW_S.crc);
  return Buffer.concat([h, body]);
}

export function encodeTable(t: { complete?: boolean; linktype?: number; pcapFirstNs?: bigint; version?: number; segments: TestSegment[] }): Buffer {
  const h = Buffer.alloc(FLOW_HEADER_LEN);
  FLOW_MAGIC.copy(h, 0);
  h.writeUInt16LE(t.version ?? FLOW_VERSION, FLOW_H.version);
  h.writeUInt16LE(FLOW_HEADER_LEN, FLOW_H.headerLen);
  h.writeUInt32LE(t.complete ? FLOW_FLAG_COMPLETE : 0, FLOW_H.flags);
  h.writeUInt32LE(t.linktype ?? 1, FLOW_H.linktype);
  h.writeUInt32LE(1, FLOW_H.builder);
  h.writeBigUInt64LE(t.pcapFirstNs ?? 0n, FLOW_H.pcapFirstNs);
  h.writeUInt32LE(crc32(h.subarray(0, FLOW_H.crc)), FLOW_H.crc);
  return Buffer.concat([h, ...t.segments.map(encodeSegment)]);
}
