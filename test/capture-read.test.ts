// `capture --read`: existing pcap and pcapng files through the same write path.
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeEach, describe, expect, it } from 'vitest';
import { parseHelperLine } from '../daemon/src/capture/protocol.js';
import { buildPcap, parsePcap } from '../daemon/src/pcap/format.js';
import { cli, helperPath, readRecords, storeFiles, tempDir, writeConfig } from './lib/cli.js';
import { frame } from './lib/fixture.js';
import { testFrames } from './lib/frames.js';
import { checkIndex } from '../daemon/src/store/index-check.js';

let dir: string;
let store: string;
let config: string;
const frames = testFrames({ count: 2000, seed: 21, vlanShare: 0.15 });
const ts0 = 1_764_000_000_123_456_000n;
const input = (nanos: boolean) => buildPcap(frames.map((data, i) => ({ tsNs: ts0 + BigInt(i) * 1_000_000n + (nanos ? BigInt(i % 1000) : 0n), data })), { nanos });

beforeEach(async () => {
  dir = await tempDir();
  store = join(dir, 'store');
  await mkdir(store);
  config = await writeConfig(dir, { paths: [store], file_size: '256KiB', capacity: '64MiB' });
});

async function writeInput(): Promise<string> {
  const file = join(dir, 'in.pcap');
  await writeFile(file, input(true));
  return file;
}

/** The same pcap with every field big-endian, as written on a big-endian machine. */
function toBigEndian(le: Buffer): Buffer {
  const be = Buffer.from(le);
  const { records } = parsePcap(le);
  be.writeUInt32BE(le.readUInt32LE(0), 0);
  be.writeUInt16BE(le.readUInt16LE(4), 4);
  be.writeUInt16BE(le.readUInt16LE(6), 6);
  for (const o of [8, 12, 16, 20]) be.writeUInt32BE(le.readUInt32LE(o), o);
  for (const r of records) for (const o of [0, 4, 8, 12]) be.writeUInt32BE(le.readUInt32LE(r.offset + o), r.offset + o);
  return be;
}

async function importAndRead(file: string, extra: string[] = []) {
  const summary = join(dir, 'summary.json');
  const r = await cli(['capture', '--read', file, '--config', config, '--summary', summary, ...extra]);
  expect(r.exitCode, r.all).toBe(0);
  return { result: r, summary: JSON.parse(await readFile(summary, 'utf8')), records: await readRecords(await storeFiles([store])) };
}

describe('capture --read', () => {
  for (const [name, make, nanos] of [
    ['microsecond pcap', () => input(false), false],
    ['nanosecond pcap', () => input(true), true],
    ['big-endian pcap', () => toBigEndian(input(false)), false],
  ] as const) {
    it(`imports a ${name} exactly, rotated by size`, async () => {
      const file = join(dir, 'in.pcap');
      await writeFile(file, make());
      const { records, summary, result } = await importAndRead(file);
      expect(records.map((r) => r.data)).toEqual(frames);
      const want = parsePcap(input(nanos)).records;
      expect(records.map((r) => r.tsNs)).toEqual(want.map((r) => r.tsNs));
      expect(summary.files.length).toBeGreaterThan(3);
      expect(summary.interfaces.import).toMatchObject({ received: 2000, written: 2000, filtered: 0, writer_drops: 0 });
      expect(result.all).toMatch(/2000 packets read, 0 filtered out, 2000 written/);
      const files = await storeFiles([store]);
      expect(files.every((f) => /_import(~\d+)?\.pcap$/.test(f))).toBe(true);
    });
  }

  it('indexes what it imports with the configured index.fields; index.fields: [] writes no index', async () => {
    config = await writeConfig(dir, { paths: [store], file_size: '256KiB', capacity: '64MiB', index_fields: ['mac', 'vlan'] });
    await importAndRead(await writeInput());
    const files = await storeFiles([store]);
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) expect(checkIndex(f, { fields: ['mac', 'vlan'], blockSizeBytes: 16384 }), f).toMatchObject({ state: 'current' });
    const off = join(dir, 'store-off');
    await mkdir(off);
    config = await writeConfig(dir, { paths: [off], file_size: '256KiB', capacity: '64MiB', index_fields: [] });
    await cli(['capture', '--read', await writeInput(), '--config', config]);
    const names = await readdir(off);
    expect(names.filter((n) => n.endsWith('.pcap')).length).toBeGreaterThan(3);
    expect(names.filter((n) => n.includes('.qeidx'))).toEqual([]);
  });

  // Nanosecond pcap in host byte order is written in runs straight from the input; these cover
  // where a run must end: a file's duration, a record cut by the snaplen, and input from a pipe.
  it('imports a nanosecond pcap exactly when runs end at each file duration and at records longer than the snaplen', async () => {
    const file = join(dir, 'in.pcap');
    const spaced = buildPcap(frames.map((data, i) => ({ tsNs: ts0 + BigInt(i) * 10_000_000n + BigInt(i % 7), data })), { nanos: true });
    await writeFile(file, spaced);
    await writeConfig(dir, { paths: [store], file_size: '16MiB', file_duration: '1s', capacity: '64MiB', snaplen: 400 });
    const { records, summary } = await importAndRead(file);
    const want = parsePcap(spaced).records;
    expect(want.some((r) => r.data.length > 400) && want.some((r) => r.data.length <= 400)).toBe(true);
    expect(records.map((r) => r.data)).toEqual(want.map((r) => r.data.subarray(0, 400)));
    expect(records.map((r) => r.origlen)).toEqual(want.map((r) => r.data.length));
    expect(records.map((r) => r.tsNs)).toEqual(want.map((r) => r.tsNs));
    // 2000 records 10 ms apart, in files of less than one second each
    const files = await storeFiles([store]);
    expect(files.length).toBeGreaterThanOrEqual(20);
    for (const f of files) {
      const recs = parsePcap(await readFile(f)).records;
      expect(recs[recs.length - 1]!.tsNs - recs[0]!.tsNs).toBeLessThan(1_000_000_000n);
    }
    expect(summary.interfaces.import).toMatchObject({ received: 2000, written: 2000, writer_drops: 0 });
  });

  it('imports a nanosecond pcap from a pipe exactly, rotated by size', async () => {
    const fifo = join(dir, 'in.fifo');
    await execa('mkfifo', [fifo]);
    const feed = execa('sh', ['-c', 'exec cat "$1" > "$2"', 'sh', await writeInput(), fifo]);
    const r = await cli(['capture', '--read', fifo, '--config', config]);
    await feed;
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toMatch(/2000 packets read, 0 filtered out, 2000 written/);
    const files = await storeFiles([store]);
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) expect((await stat(f)).size).toBeLessThanOrEqual(256 * 1024);
    const records = await readRecords(files);
    expect(records.map((r) => r.data)).toEqual(frames);
    expect(records.map((r) => r.tsNs)).toEqual(parsePcap(input(true)).records.map((r) => r.tsNs));
  });

  it('imports pcapng (converted by editcap) with a BPF filter and a label', async () => {
    const file = join(dir, 'in.pcap');
    await writeFile(file, input(true));
    await execa('editcap', ['-F', 'pcapng', file, join(dir, 'in.pcapng')]);
    await writeConfig(dir, { paths: [store], file_size: '256KiB', capacity: '64MiB', filter: 'vlan' });
    const { records, summary } = await importAndRead(join(dir, 'in.pcapng'), ['--iface', 'old-tap']);
    const tagged = frames.filter((f) => f.readUInt16BE(12) === 0x8100 || f.readUInt16BE(12) === 0x88a8);
    expect(records.map((r) => r.data)).toEqual(tagged);
    expect(summary.interfaces['old-tap']).toMatchObject({ received: 2000, written: tagged.length, filtered: 2000 - tagged.length });
    // tshark agrees with what was kept
    const files = await storeFiles([store]);
    const counts = await Promise.all(files.map(async (f) => Number((await execa('capinfos', ['-c', '-M', '-T', '-r', f])).stdout.split('\t')[1])));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(tagged.length);
  });

  it('imports raw IP (link type 101) with a BPF filter, and extracts from it with one', async () => {
    // A raw-IP file names its link type LINKTYPE_RAW (101), libpcap's compiler DLT_RAW (12 here):
    // the number must be mapped before compiling, or every filter fails on such a file.
    const ipv4 = Array.from({ length: 300 }, (_, i) =>
      frame({ src: `10.1.0.${1 + (i % 7)}`, dst: '10.2.0.1', proto: i % 3 === 0 ? 'tcp' : 'udp', sport: 40000 + i, dport: i % 4 === 0 ? 53 : 443, payload: 40 + (i % 50) }).subarray(14),
    );
    const file = join(dir, 'raw.pcap');
    await writeFile(file, buildPcap(ipv4.map((data, i) => ({ tsNs: ts0 + BigInt(i) * 1_000_000n, data })), { nanos: true, linktype: 101 }));
    const udp = ipv4.filter((d) => d[9] === 17);
    expect(udp.length).toBeGreaterThan(10);
    expect(udp.length).toBeLessThan(ipv4.length);
    await writeConfig(dir, { paths: [store], file_size: '256KiB', capacity: '64MiB', filter: 'udp' });
    const { records, summary } = await importAndRead(file);
    expect(records.map((r) => r.data)).toEqual(udp);
    expect(summary.interfaces.import).toMatchObject({ received: ipv4.length, written: udp.length });
    const out = join(dir, 'out.pcap');
    const x = await cli(['extract', '--config', config, '--from', '2025-01-01T00:00:00Z', '--filter', 'udp port 53', '-w', out]);
    expect(x.exitCode, x.all).toBe(0);
    // tcpdump, which maps link types itself, says what the filter keeps.
    const want = join(dir, 'want.pcap');
    await execa('tcpdump', ['-r', file, '-w', want, 'udp port 53']);
    const dns = parsePcap(await readFile(want)).records.map((r) => r.data);
    expect(dns.length).toBeGreaterThan(0);
    expect(parsePcap(await readFile(out)).records.map((r) => r.data)).toEqual(dns);
  });

  it.each([false, true])('imports the whole records of a truncated file and says what it left out (nanoseconds: %s)', async (nanos) => {
    const whole = input(nanos);
    const file = join(dir, 'cut.pcap');
    await writeFile(file, whole.subarray(0, whole.length - 100));
    const { records, result } = await importAndRead(file);
    expect(records.map((r) => r.data)).toEqual(frames.slice(0, -1));
    expect(result.all).toMatch(/incomplete record and were not imported/);
  });

  it('refuses a file that is not a capture, and one that does not exist, writing nothing', async () => {
    const file = join(dir, 'text.pcap');
    await writeFile(file, 'hello, this is not a pcap file at all\n');
    const r = await cli(['capture', '--read', file, '--config', config]);
    expect(r.exitCode).toBe(1);
    expect(r.all).toMatch(/error: .*text\.pcap/);
    const missing = await cli(['capture', '--read', join(dir, 'none.pcap'), '--config', config]);
    expect(missing.exitCode).toBe(1);
    expect(missing.all).toMatch(/none\.pcap: No such file/);
    expect(await storeFiles([store])).toEqual([]);
  });

  it('speaks the helper protocol exactly as protocol.ts defines it', async () => {
    const file = join(dir, 'in.pcap');
    await writeFile(file, input(true));
    const r = await execa(helperPath, ['--read', file, '--iface', 'x', '--dir', store, '--file-size', '100000', '--filter', 'not vlan']);
    const msgs = r.stdout.trim().split('\n').map(parseHelperLine);
    const types = new Set(msgs.map((m) => m.type));
    expect([...types].sort()).toEqual(['done', 'file_closed', 'file_opened', 'started', 'stats']);
    const closed = msgs.filter((m) => m.type === 'file_closed');
    const total = closed.reduce((a, m) => a + (m.type === 'file_closed' ? m.packets : 0), 0);
    expect(total).toBe(frames.filter((f) => f.readUInt16BE(12) === 0x88b5).length);
    const bad = await execa(helperPath, ['--read', file, '--iface', 'x', '--dir', store, '--filter', 'port http2x'], { reject: false });
    expect(bad.exitCode).toBe(2);
    const err = bad.stdout.trim().split('\n').map(parseHelperLine).find((m) => m.type === 'error');
    expect(err).toMatchObject({ code: 'bad_filter', fatal: true });
  });
});
