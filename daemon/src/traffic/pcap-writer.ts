// Streams pcap records to a file in large chunks, so files of many gigabytes never sit in memory.
// The byte layout comes from pcap/format.ts; this module only batches and writes.

import { open, type FileHandle } from 'node:fs/promises';
import {
  LINKTYPE_ETHERNET,
  RECORD_HEADER_LEN,
  encodeGlobalHeader,
  encodeRecordHeader,
} from '../pcap/format.js';

const CHUNK = 4 * 1024 * 1024;

export interface PcapWriterOptions {
  nanos?: boolean;
  snaplen?: number;
  linktype?: number;
}

export class PcapFileWriter {
  private chunk = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  packets = 0;
  /** Size of the file once everything added so far is flushed. */
  bytes = 0;

  private constructor(
    private readonly fh: FileHandle,
    private readonly nanos: boolean,
  ) {}

  static async create(path: string, opts: PcapWriterOptions = {}): Promise<PcapFileWriter> {
    const fh = await open(path, 'w');
    const nanos = opts.nanos !== false;
    const w = new PcapFileWriter(fh, nanos);
    w.put(encodeGlobalHeader({ nanos, snaplen: opts.snaplen ?? 262144, linktype: opts.linktype ?? LINKTYPE_ETHERNET }));
    return w;
  }

  /**
   * Adds one record. Returns a promise only when the chunk had to be written out first; callers
   * await it then, which keeps the per-packet path free of promise overhead.
   */
  add(tsNs: bigint, data: Buffer, origlen = data.length): Promise<void> | undefined {
    const need = RECORD_HEADER_LEN + data.length;
    if (this.used + need > this.chunk.length) {
      return this.flush().then(() => void this.add(tsNs, data, origlen));
    }
    this.put(encodeRecordHeader({ tsNs, caplen: data.length, origlen }, this.nanos));
    this.put(data);
    this.packets++;
    return undefined;
  }

  private put(b: Buffer): void {
    if (b.length > this.chunk.length) throw new RangeError('record larger than the write chunk');
    b.copy(this.chunk, this.used);
    this.used += b.length;
    this.bytes += b.length;
  }

  private async flush(): Promise<void> {
    let off = 0;
    while (off < this.used) {
      const { bytesWritten } = await this.fh.write(this.chunk, off, this.used - off);
      off += bytesWritten;
    }
    this.used = 0;
  }

  async close(): Promise<{ packets: number; bytes: number }> {
    try {
      await this.flush();
    } finally {
      await this.fh.close();
    }
    return { packets: this.packets, bytes: this.bytes };
  }
}
