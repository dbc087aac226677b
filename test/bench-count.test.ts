// The benchmark's own packet counting: it decides what "written" means for every tool, so it is
// checked against files with known contents (and the fast pcap scan against the full parser).

import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countPcap, countStenotype } from '../bench/capture/count.js';
import { decodeGlobalHeader, parsePcap, scanRecords } from '../daemon/src/pcap/format.js';
import { generateFrames, writePcapFile } from '../daemon/src/traffic/generate.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'qe-count-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('scanRecords', () => {
  it('agrees with parsePcap, including where a torn record starts', async () => {
    const file = join(dir, 'scan.pcap');
    await writePcapFile(file, { profile: 'mixed', count: 3000, seed: 4 });
    const whole = await readFile(file);
    const torn = whole.subarray(0, whole.length - 7);
    for (const b of [whole, torn]) {
      const p = parsePcap(b);
      const s = scanRecords(b, decodeGlobalHeader(b));
      expect(s.count).toBe(p.records.length);
      expect(s.end).toBe(p.wholeEnd);
      expect(s.dataBytes).toBe(p.records.reduce((n, r) => n + r.caplen, 0));
    }
  });
});

describe('countPcap', () => {
  it('counts a file larger than its read chunk exactly', async () => {
    const file = join(dir, 'big.pcap');
    const r = await writePcapFile(file, { profile: '1500', count: 25_000, seed: 2 });
    expect(r.bytes).toBeGreaterThan(32 * 1024 * 1024);
    const c = await countPcap(file);
    expect(c).toMatchObject({ packets: 25_000, frameBytes: r.frameBytes, fileBytes: r.bytes, trailingBytes: 0 });
  });

  it('leaves a torn last record out and reports its bytes', async () => {
    const file = join(dir, 'torn.pcap');
    const r = await writePcapFile(file, { profile: 'imix', count: 1000, seed: 2 });
    await truncate(file, r.bytes - 10);
    const c = await countPcap(file);
    expect(c.packets).toBe(999);
    expect(c.trailingBytes).toBeGreaterThan(0);
  });

  it('counts an empty capture (header only) as zero', async () => {
    const file = join(dir, 'empty.pcap');
    await writePcapFile(file, { profile: '64', count: 0 });
    expect((await countPcap(file)).packets).toBe(0);
  });
});

/** A TPACKET_V3 block as the kernel hands it to Stenotype: descriptor, then chained packets. */
function block(frames: Buffer[], size: number): Buffer {
  const b = Buffer.alloc(size);
  const first = 48;
  b.writeUInt32LE(2, 0); // TPACKET_V3
  b.writeUInt32LE(first, 4); // offset_to_priv
  b.writeUInt32LE(1, 8); // block_status: TP_STATUS_USER
  b.writeUInt32LE(frames.length, 12);
  b.writeUInt32LE(first, 16);
  let off = first;
  frames.forEach((f, i) => {
    const mac = 68; // tpacket3_hdr plus sockaddr_ll, aligned
    const len = (mac + f.length + 15) & ~15;
    b.writeUInt32LE(i === frames.length - 1 ? 0 : len, off); // tp_next_offset
    b.writeUInt32LE(f.length, off + 12); // tp_snaplen
    b.writeUInt32LE(f.length, off + 16); // tp_len
    b.writeUInt16LE(mac, off + 24);
    f.copy(b, off + mac);
    off += len;
  });
  b.writeUInt32LE(off, 20); // blk_len
  return b;
}

describe('countStenotype', () => {
  const size = 256 * 1024;
  it('counts packets over blocks and skips never-written (zero) blocks', async () => {
    const frames = [...generateFrames('imix', 300, 8)];
    const file = join(dir, 'steno');
    await writeFile(file, Buffer.concat([block(frames.slice(0, 100), size), block(frames.slice(100), size), Buffer.alloc(size)]));
    const c = await countStenotype(file, size);
    expect(c.packets).toBe(300);
    expect(c.frameBytes).toBe(frames.reduce((n, f) => n + f.length, 0));
  });

  it('refuses a block whose packet chain disagrees with its count', async () => {
    const b = block([...generateFrames('64', 10, 1)], size);
    b.writeUInt32LE(11, 12);
    const file = join(dir, 'steno-bad');
    await writeFile(file, b);
    await expect(countStenotype(file, size)).rejects.toThrow(/ends after 10\/11/);
  });
});
