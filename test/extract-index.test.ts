// Extraction through the index (read-plan + qe-extract --ranges): the same bytes as a scan, fewer
// bytes read, a note when the filter cannot be narrowed, damaged indexes never trusted, --explain.
// Indexes come from the test-side writer (test/lib/index-build.ts); test/index-agreement.test.ts
// does the same over the native builder's indexes.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDX_VERSION, indexPathFor, type IndexField } from '../daemon/src/index/format.js';
import { buildPcap, parsePcap } from '../daemon/src/pcap/format.js';
import { IndexReader } from '../daemon/src/index/reader.js';
import { formatIsoNs } from '../daemon/src/time/format-time.js';
import { cliPath, helperPath, sleep } from './lib/cli.js';
import { BASE_NS, MS, tempDir, writeCaptureFile, writeConfig, type FixtureFile } from './lib/fixture.js';
import { buildIndex } from './lib/index-build.js';
import { mixedTraffic } from './lib/mixed-traffic.js';

const FIELDS: IndexField[] = ['mac', 'ip', 'port', 'proto', 'vlan'];
let root: string;
let cleanup: () => void;
let config: string;
let files: FixtureFile[];
let n = 0;

beforeAll(() => {
  ({ dir: root, cleanup } = tempDir('extract-index'));
  const dir = join(root, 'store');
  files = [];
  // Two interfaces, three files each, the last an open .part; 4 KiB blocks so files have many.
  for (const [k, iface] of ['eth0', 'eth1'].entries()) {
    let t = BASE_NS + BigInt(k) * 7n;
    for (let f = 0; f < 3; f++) {
      const frames = mixedTraffic(3000, 100 * k + f + 1, 0.95);
      const packets = frames.map((data, i) => ({ tsNs: t + BigInt(i) * MS, data }));
      t = packets[packets.length - 1]!.tsNs + MS;
      const file = writeCaptureFile(dir, iface, packets, { partial: f === 2 });
      writeFileSync(indexPathFor(file.path), buildIndex(readFileSync(file.path), { fields: FIELDS, blockSize: 4096, ...(f === 2 ? { segmentEvery: 250 } : {}) }));
      files.push(file);
    }
  }
  config = join(root, 'config.yaml');
  writeConfig(config, [dir]);
});
afterAll(() => cleanup());

const FROM = formatIsoNs(BASE_NS - 1000n * MS);
const TO = formatIsoNs(BASE_NS + 10_000n * MS);

function extract(filter: string, extra: string[] = []): { status: number | null; out: Buffer; stderr: string } {
  const out = join(root, `out-${++n}.pcap`);
  const r = spawnSync('node', [cliPath, 'extract', '--config', config, '--from', FROM, '--to', TO, '--filter', filter, '-w', out, ...extra], { encoding: 'utf8' });
  let bytes = Buffer.alloc(0);
  try {
    bytes = readFileSync(out);
  } catch {
    // no output: the status says why
  }
  return { status: r.status, out: bytes, stderr: r.stderr };
}

function explainJson(filter: string, extra: string[] = []) {
  const r = spawnSync('node', [cliPath, 'extract', '--config', config, '--from', FROM, '--to', TO, '--filter', filter, '--explain', '--json', ...extra], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { files: number; files_read_through_index: number; bytes_to_read: number; bytes_full_scan: number; plan: string | null; candidate_blocks: number; per_file: { read: string; note?: string }[] };
}

describe('extract through the index', () => {
  it.each([
    'host 10.0.0.1',
    'host 10.0.0.1 and port 53',
    'src host 192.168.5.9 or dst host 172.16.0.4',
    'net 10.0.0.0/16',
    'port 53',
    'udp port 123',
    'portrange 440-450',
    'ip6 host 2001:db8::2',
    'icmp6',
    'vlan 200',
    'vlan 101 and host 10.1.2.3',
    'ether host 02:00:00:00:00:03 and tcp',
  ])('%s: byte for byte what --no-index writes, reading less', (filter) => {
    const withIndex = extract(filter);
    const scan = extract(filter, ['--no-index']);
    expect(withIndex.status, withIndex.stderr).toBe(scan.status);
    expect(withIndex.out.equals(scan.out)).toBe(true);
    expect(parsePcap(scan.out).records.length).toBeGreaterThan(0);
    const e = explainJson(filter);
    expect(e.files_read_through_index).toBe(6);
    expect(e.bytes_to_read).toBeLessThan(e.bytes_full_scan);
    expect(withIndex.stderr).not.toMatch(/note|warning/);
    expect(withIndex.stderr).toMatch(/wrote .* packets? .*; read .* of .* \(6 of 6 files through their index\)/);
  });

  it('returns every fragment of a datagram a port query matches, through the index and without', () => {
    const scan = parsePcap(extract('udp port 5000', ['--no-index']).out).records;
    const later = scan.filter((r) => {
      const d = r.data;
      let p = 12;
      while (d.readUInt16BE(p) === 0x8100 || d.readUInt16BE(p) === 0x88a8) p += 4;
      return d.readUInt16BE(p) === 0x0800 && (d.readUInt16BE(p + 2 + 6) & 0x1fff) !== 0;
    });
    expect(later.length).toBeGreaterThan(0);
    expect(extract('udp port 5000').out.equals(extract('udp port 5000', ['--no-index']).out)).toBe(true);
  });

  it('scans, and says so, when the filter cannot be narrowed', () => {
    const r = extract('not port 53');
    expect(r.stderr).toMatch(/note: the filter cannot be narrowed by an index.*scanning 6 files/);
    expect(r.out.equals(extract('not port 53', ['--no-index']).out)).toBe(true);
    expect(explainJson('not port 53').plan).toBeNull();
  });

  it('refuses a filter libpcap cannot compile in --explain too, in the words of the extraction itself', () => {
    const r = spawnSync('node', [cliPath, 'extract', '--config', config, '--from', FROM, '--to', TO, '--filter', 'udp and (', '--explain'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^qe-packets extract: bad filter "udp and \(": .*syntax error/m);
  });

  it('explains the plan in words', () => {
    const r = spawnSync('node', [cliPath, 'extract', '--config', config, '--from', FROM, '--to', TO, '--filter', 'host 10.0.0.1 and port 53', '--explain'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/index lookups: \(ipv4 10\.0\.0\.1 and \(port 53 or port 0\)\)/);
    expect(r.stdout).toMatch(/files in range: 6 .* read through it: 6/);
    expect(r.stdout).toMatch(/candidate blocks: [0-9,]+, records to read: ~[0-9,]+ of [0-9,]+/);
    expect(r.stdout).toMatch(/bytes to read: .* of .*\(.*%\)/);
    expect(r.stdout).toMatch(/estimated time: .*a full scan/);
    const scan = explainJson('host 10.0.0.1', ['--no-index']);
    expect(scan.files_read_through_index).toBe(0);
    expect(scan.bytes_to_read).toBe(scan.bytes_full_scan);
  });

  it('never trusts a damaged or truncated index: warns, scans that file, same result', () => {
    const victim = indexPathFor(files[1]!.path);
    const good = readFileSync(victim);
    try {
      const bad = Buffer.from(good);
      bad[good.length - 1]! ^= 0x40; // a posting list: its structure check catches it when read
      bad[70]! ^= 0x01; // the segment header: its CRC
      writeFileSync(victim, bad);
      const r = extract('host 10.0.0.1');
      expect(r.stderr).toMatch(new RegExp(`warning: ${victim}: .*not used.*scanned`));
      expect(r.out.equals(extract('host 10.0.0.1', ['--no-index']).out)).toBe(true);
      const e = explainJson('host 10.0.0.1');
      expect(e.files_read_through_index).toBe(5);
      truncateSync(victim, 40);
      expect(extract('host 10.0.0.1').stderr).toMatch(/shorter than the 64-byte header/);
    } finally {
      writeFileSync(victim, good);
    }
  });

  it('refuses an index of a newer format version, naming both, and scans that file', () => {
    const victim = indexPathFor(files[3]!.path);
    const good = readFileSync(victim);
    try {
      writeFileSync(victim, buildIndex(readFileSync(files[3]!.path), { fields: FIELDS, blockSize: 4096, version: IDX_VERSION + 1 }));
      const r = extract('port 53');
      expect(r.stderr).toMatch(new RegExp(`warning: ${victim}: index format version ${IDX_VERSION + 1}, this qe-packets reads version ${IDX_VERSION}: the pcap file is scanned instead`));
      expect(r.out.equals(extract('port 53', ['--no-index']).out)).toBe(true);
      expect(explainJson('port 53').per_file.filter((f) => f.read === 'index-unusable').length).toBe(1);
    } finally {
      writeFileSync(victim, good);
    }
  });

  it("never trusts another file's index: warns that it is not this file's, scans that file, same result", () => {
    const victim = indexPathFor(files[0]!.path);
    const good = readFileSync(victim);
    try {
      writeFileSync(victim, readFileSync(indexPathFor(files[1]!.path)));
      const r = extract('host 10.0.0.1');
      expect(r.stderr).toMatch(new RegExp(`warning: ${victim}: index of a pcap file whose first record is at \\d+ ns, ${files[0]!.path} starts at \\d+ ns: not this file's index, the file is scanned`));
      expect(r.out.equals(extract('host 10.0.0.1', ['--no-index']).out)).toBe(true);
      expect(explainJson('host 10.0.0.1').per_file.filter((f) => f.read === 'index-unusable').length).toBe(1);
    } finally {
      writeFileSync(victim, good);
    }
  });

  it('reads an open file through its whole segments and scans past them (a torn last segment too)', () => {
    const part = files.find((f) => f.partial)!;
    const ix = indexPathFor(part.path);
    const good = readFileSync(ix);
    try {
      truncateSync(ix, good.length - 3);
      const r = extract('port 80');
      expect(r.stderr).not.toMatch(/warning/);
      expect(r.out.equals(extract('port 80', ['--no-index']).out)).toBe(true);
    } finally {
      writeFileSync(ix, good);
    }
  });

  it('asks for a field the index does not hold by scanning, and says so', () => {
    const r = extract('ether host 02:00:00:00:00:01', []);
    expect(r.stderr).not.toMatch(/note/); // mac is indexed here
    const file = files[0]!;
    const ix = indexPathFor(file.path);
    const good = readFileSync(ix);
    try {
      writeFileSync(ix, buildIndex(readFileSync(file.path), { fields: ['ip'], blockSize: 4096 }));
      const r2 = extract('ether host 02:00:00:00:00:01');
      expect(r2.stderr).toMatch(/note: 1 file of the range has an index without a field the filter needs/);
      expect(r2.out.equals(extract('ether host 02:00:00:00:00:01', ['--no-index']).out)).toBe(true);
    } finally {
      writeFileSync(ix, good);
    }
  });
});

describe('extract through the index of a file qe-capture is writing', () => {
  it('reads the open file through its flushed segments and the rest whole, then the closed file through its complete index', async () => {
    const { dir, cleanup: done } = tempDir('extract-open');
    try {
      const packets = mixedTraffic(4000, 77, 0.95).map((data, i) => ({ tsNs: BASE_NS + BigInt(i) * MS, data }));
      const whole = buildPcap(packets);
      const recs = parsePcap(whole).records;
      const cut = recs[2500]!.offset;
      const store = join(dir, 'store');
      mkdirSync(store);
      const cfg = join(dir, 'config.yaml');
      writeConfig(cfg, [store]);
      const fifo = join(dir, 'in.fifo');
      execFileSync('mkfifo', [fifo]);
      const child = spawn(helperPath, ['--read', fifo, '--iface', 'eth9', '--dir', store, '--no-fsync', '--flush-ms', '100', '--index-fields', 'ip,port,proto,vlan', '--index-block-size', '4096'], { stdio: ['ignore', 'ignore', 'inherit'] });
      const exited = new Promise((r) => child.once('exit', r));
      const fd = openSync(fifo, 'w');
      writeSync(fd, whole.subarray(0, cut));
      // Until the open file's index covers what was written.
      let covered = 0;
      for (const t0 = Date.now(); Date.now() - t0 < 5000 && covered !== cut; await sleep(20)) {
        const part = readdirSync(store).find((f) => f.endsWith('.pcap.part'));
        if (!part || !readdirSync(store).includes(`${part}.qeidx`)) continue;
        try {
          const ix = IndexReader.open(join(store, `${part}.qeidx`), join(store, part));
          covered = ix.coveredEnd;
          ix.close();
        } catch {
          // not there yet
        }
      }
      expect(covered).toBe(cut);
      const run = (extra: string[]) => {
        const out = join(dir, `o-${Math.random().toString(36).slice(2)}.pcap`);
        const r = spawnSync('node', [cliPath, 'extract', '--config', cfg, '--from', FROM, '--to', TO, '--filter', 'host 10.0.0.1 or port 443', '-w', out, ...extra], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        return readFileSync(out);
      };
      const explainOpen = JSON.parse(spawnSync('node', [cliPath, 'extract', '--config', cfg, '--from', FROM, '--to', TO, '--filter', 'host 10.0.0.1 or port 443', '--explain', '--json'], { encoding: 'utf8' }).stdout);
      expect(explainOpen.files_read_through_index).toBe(1);
      const open = run([]);
      expect(open.equals(run(['--no-index']))).toBe(true);
      expect(parsePcap(open).records.length).toBeGreaterThan(10);
      writeSync(fd, whole.subarray(cut));
      closeSync(fd);
      await exited;
      expect(readdirSync(store).filter((f) => f.endsWith('.qeidx')).length).toBe(1);
      const closed = run([]);
      expect(closed.equals(run(['--no-index']))).toBe(true);
      expect(parsePcap(closed).records.length).toBeGreaterThan(parsePcap(open).records.length);
    } finally {
      done();
    }
  }, 60_000);
});
