// Flow table size at the condition: IMIX traffic with 100,000 concurrent flows, in files of
// the product's default size (storage.file_size 1 GiB). The bench store's share (its own traffic:
// thousands of short flows at a time, 100 MB files) says what a mix of short flows costs; this says
// what the target is about. Every flow sends in turn (TCP and UDP over IPv4 and IPv6), frames of
// 64, 570 and 1518 bytes in IMIX's 7:4:1, so each flow has a record in every file. Only the files
// closed at full size count: the last one of an import is cut short and holds every flow too.
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FLOW_EXT } from '../../daemon/src/flows/format.js';
import { encodeGlobalHeader } from '../../daemon/src/pcap/format.js';
import { CAPTURE_IF } from '../capture/netns.js';
import { run } from '../capture/proc.js';
import { round } from '../capture/stats.js';
import { DAEMON_CLI, daemonConfig } from '../capture/tools.js';

export const TARGET_FLOWS = 100_000;
const FILE_SIZE_MB = 1074; // 1 GiB, storage.file_size's default
const IMIX = [64, 64, 64, 64, 64, 64, 64, 570, 570, 570, 570, 1518];

/** Writes `bytes` of IMIX over `flows` concurrent flows to `path`. */
function writeImix(path: string, bytes: number, flows: number, startNs: bigint): number {
  const fd = openSync(path, 'w');
  writeSync(fd, encodeGlobalHeader({ nanos: true, snaplen: 262144, linktype: 1 }));
  const buf = Buffer.alloc(8 << 20);
  let used = 0;
  let written = 24;
  let packets = 0;
  let ts = startNs;
  for (let k = 0; written < bytes; k++) {
    const flow = k % flows;
    const size = IMIX[k % IMIX.length]!;
    if (used + 16 + size > buf.length) {
      writeSync(fd, buf, 0, used);
      used = 0;
    }
    ts += 300n; // about 10 Gbit/s of IMIX
    buf.writeUInt32LE(Number(ts / 1_000_000_000n), used);
    buf.writeUInt32LE(Number(ts % 1_000_000_000n), used + 4);
    buf.writeUInt32LE(size, used + 8);
    buf.writeUInt32LE(size, used + 12);
    const f = buf.subarray(used + 16, used + 16 + size);
    f.fill(0);
    const v6 = flow % 8 === 0;
    const udp = flow % 5 === 0;
    const fromClient = (k / flows) % 2 < 1;
    f.writeUIntBE(0x020000000001, 0, 6);
    f.writeUIntBE(0x020000000002, 6, 6);
    let l4: number;
    if (v6) {
      f.writeUInt16BE(0x86dd, 12);
      f.writeUInt32BE(0x60000000, 14);
      f.writeUInt16BE(size - 54, 18);
      f[20] = udp ? 17 : 6;
      f[21] = 64;
      const client = Buffer.from([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, (flow >>> 24) & 255, (flow >>> 16) & 255, (flow >>> 8) & 255, flow & 255]);
      const server = Buffer.from([0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 + (flow % 200)]);
      (fromClient ? client : server).copy(f, 22);
      (fromClient ? server : client).copy(f, 38);
      l4 = 54;
    } else {
      f.writeUInt16BE(0x0800, 12);
      f[14] = 0x45;
      f.writeUInt16BE(size - 14, 16);
      f[22] = 64;
      f[23] = udp ? 17 : 6;
      const client = 0x0a000000 + flow;
      const server = 0xac100000 + (flow % 200);
      f.writeUInt32BE(fromClient ? client : server, 26);
      f.writeUInt32BE(fromClient ? server : client, 30);
      l4 = 34;
    }
    const cport = 1024 + (flow % 60000);
    const sport = udp ? 53 : 443;
    f.writeUInt16BE(fromClient ? cport : sport, l4);
    f.writeUInt16BE(fromClient ? sport : cport, l4 + 2);
    if (!udp) {
      f[l4 + 12] = 0x50;
      f[l4 + 13] = 0x10; // ACK: a flow in mid-life
    } else f.writeUInt16BE(size - l4, l4 + 4);
    used += 16 + size;
    written += 16 + size;
    packets++;
  }
  writeSync(fd, buf, 0, used);
  closeSync(fd);
  return packets;
}

export interface FlowSizeAtTarget {
  flows: number;
  fileSizeBytes: number;
  imixPackets: number;
  /** Files closed at full size, their pcap and flow table bytes. */
  files: number;
  pcapBytes: number;
  flowBytes: number;
  pctOfPcap: number;
  bytesPerRecord: number;
  error?: string;
}

export async function flowSizeAtTarget(workDir: string, startNs: bigint): Promise<FlowSizeAtTarget> {
  const dir = join(workDir, 'flow-size');
  const store = join(dir, 'store');
  await mkdir(store, { recursive: true });
  const input = join(dir, 'imix.pcap');
  const fileSizeBytes = FILE_SIZE_MB * 1e6;
  try {
    // Two full files and a remainder.
    const imixPackets = writeImix(input, 2.2 * fileSizeBytes, TARGET_FLOWS, startNs);
    const config = join(dir, 'config.yaml');
    await writeFile(config, daemonConfig({ iface: CAPTURE_IF, outDir: store, capacityMB: 4 * FILE_SIZE_MB, fileSizeMB: FILE_SIZE_MB, bufferMiB: 64, snaplen: 262144, fsync: false }));
    const imp = await run(process.execPath, [DAEMON_CLI, 'capture', '--read', input, '--config', config], { reject: false });
    await rm(input, { force: true });
    const base = { flows: TARGET_FLOWS, fileSizeBytes, imixPackets, files: 0, pcapBytes: 0, flowBytes: 0, pctOfPcap: NaN, bytesPerRecord: NaN };
    if (imp.exitCode !== 0) return { ...base, error: `capture --read exit ${imp.exitCode}: ${String(imp.stderr).slice(-300)}` };
    let files = 0;
    let pcapBytes = 0;
    let flowBytes = 0;
    for (const name of await readdir(store)) {
      if (!name.endsWith('.pcap')) continue;
      const size = (await stat(join(store, name))).size;
      if (size < fileSizeBytes * 0.99) continue; // the import's last file, cut short
      files++;
      pcapBytes += size;
      flowBytes += (await stat(join(store, name + FLOW_EXT))).size;
    }
    if (files === 0) return { ...base, error: `no file of the import reached ${FILE_SIZE_MB} MB: ${(await readdir(store)).join(', ')}` };
    return { ...base, files, pcapBytes, flowBytes, pctOfPcap: round((100 * flowBytes) / pcapBytes, 3) ?? NaN, bytesPerRecord: round(flowBytes / files / TARGET_FLOWS, 1) ?? NaN };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
