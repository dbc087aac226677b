import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExtractArgs, UsageError } from '../daemon/src/commands/extract-args.js';
import { parseExtractStatus } from '../daemon/src/extract/status.js';
import { buildPcap, GLOBAL_HEADER_LEN } from '../daemon/src/pcap/format.js';
import { formatFileName } from '../daemon/src/store/filename.js';
import { formatIsoNs } from '../daemon/src/time/format-time.js';
import { parseTime, TimeParseError } from '../daemon/src/time/parse-time.js';
import { cliPath, extractPath as QE_EXTRACT } from './lib/cli.js';

const RUN_EXTRACT = `${cliPath} extract`;
import {
  BASE_NS,
  MS,
  buildFixtureStore,
  frame,
  tempDir,
  traffic,
  writeCaptureFile,
  writeConfig,
  type FixtureStore,
} from './lib/fixture.js';
import { readRecords, referenceExtract } from './lib/reference.js';

const S = 1_000_000_000n;
let root: string;
let cleanup: () => void;
let store: FixtureStore;
let config: string;
let seq = 0;

beforeAll(() => {
  ({ dir: root, cleanup } = tempDir('extract'));
  store = buildFixtureStore(join(root, 'main'));
  config = join(root, 'config.yaml');
  writeConfig(config, store.dirs);
});
afterAll(() => cleanup());

function work(): string {
  const d = join(root, `w${++seq}`);
  mkdirSync(d);
  return d;
}

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

function cli(args: string[], cfg = config): Run {
  const r = spawnSync('node', [cliPath, 'extract', '--config', cfg, ...args], { env: { ...process.env, TZ: 'UTC' }, maxBuffer: 1 << 28 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Runs a shell command on a pseudo-terminal (util-linux script) and returns what the terminal showed. */
function onTerminal(command: string): { status: number | null; screen: string } {
  const r = spawnSync('script', ['-qefc', command, '/dev/null'], { env: { ...process.env, TZ: 'UTC' }, encoding: 'utf8' });
  return { status: r.status, screen: r.stdout };
}

/** Fixture files of the given interfaces in stream order (interface, then time). */
function filesOf(ifaces?: string[]): string[] {
  return store.files
    .filter((f) => !ifaces || ifaces.includes(f.iface))
    .sort((a, b) => (a.iface !== b.iface ? (a.iface < b.iface ? -1 : 1) : a.packets[0]!.tsNs < b.packets[0]!.tsNs ? -1 : 1))
    .map((f) => f.path);
}

const firstNs = () => store.all.reduce((m, p) => (p.tsNs < m ? p.tsNs : m), store.all[0]!.tsNs);
const lastNs = () => store.all.reduce((m, p) => (p.tsNs > m ? p.tsNs : m), 0n);

describe('qe-packets extract', () => {
  it('merges every interface of the store in timestamp order exactly as tcpdump + mergecap do', () => {
    const w = work();
    const out = join(w, 'all.pcap');
    const from = firstNs();
    const to = lastNs();
    const r = cli(['--from', formatIsoNs(from), '--to', formatIsoNs(to), '-w', out]);
    expect(r.stderr).toMatch(new RegExp(`wrote [\\d,]+ packets .* from ${store.files.length} files to `));
    expect(r.status).toBe(0);
    const got = readRecords(out);
    expect(got).toMatchObject({ linktype: 1, nanos: true, trailing: 0 });
    expect(got.records.length).toBe(store.all.length);
    expect(got.records).toEqual(referenceExtract(filesOf(), w, from, to));
  });

  it('applies the time range and the BPF filter across file and interface boundaries', () => {
    const eth0 = store.files.filter((f) => f.iface === 'eth0');
    const eth2 = store.files.filter((f) => f.iface === 'eth2');
    const from = eth0[1]!.packets[17]!.tsNs; // inside eth0's second file: exactly on a packet
    const to = eth2[2]!.packets[5]!.tsNs + 1n; // inside eth2's third file
    for (const filter of ['udp and host 10.0.0.2', 'tcp port 443 or port 53', 'greater 150']) {
      const w = work();
      const out = join(w, 'x.pcap');
      const r = cli(['--from', formatIsoNs(from), '--to', formatIsoNs(to), '--filter', filter, '-w', out]);
      expect(r.status, r.stderr).toBe(0);
      const want = referenceExtract(filesOf(), w, from, to, filter);
      expect(want.length).toBeGreaterThan(5);
      expect(readRecords(out).records, filter).toEqual(want);
    }
  });

  it('includes a packet exactly at --from and at --to (the range is inclusive)', () => {
    const p = store.files[1]!.packets;
    const w = work();
    const out = join(w, 'edge.pcap');
    const r = cli(['--from', formatIsoNs(p[3]!.tsNs), '--to', formatIsoNs(p[6]!.tsNs), '--iface', store.files[1]!.iface, '-w', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(readRecords(out).records.map((x) => x.tsNs)).toEqual(p.slice(3, 7).map((x) => x.tsNs));
  });

  it('limits to the interfaces asked for', () => {
    const w = work();
    const out = join(w, 'if.pcap');
    const r = cli(['--from', formatIsoNs(firstNs()), '--to', formatIsoNs(lastNs()), '--iface', 'eth2', '--iface', 'eth0', '-w', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(readRecords(out).records).toEqual(referenceExtract(filesOf(['eth0', 'eth2']), w, firstNs(), lastNs()));
  });

  it('streams to stdout with -w -, byte for byte the same as a file, and draws no progress bar when piped', () => {
    const w = work();
    const out = join(w, 'f.pcap');
    const args = ['--from', formatIsoNs(firstNs()), '--to', formatIsoNs(lastNs()), '--filter', 'tcp'];
    expect(cli([...args, '-w', out]).status).toBe(0);
    const piped = cli([...args, '-w', '-']);
    expect(piped.status).toBe(0);
    expect(piped.stdout.equals(readFileSync(out))).toBe(true);
    expect(piped.stderr).toContain('to standard output');
    expect(piped.stderr).not.toMatch(/[\r\x1b]/);
  });

  it('draws a progress bar on a terminal, and refuses to write binary to one', () => {
    const w = work();
    const out = join(w, 'tty.pcap');
    const cmd = `node ${RUN_EXTRACT} --config ${config} --from '${formatIsoNs(firstNs())}' --to '${formatIsoNs(lastNs())}' -w ${out}`;
    const t = onTerminal(cmd);
    expect(t.status).toBe(0);
    expect(t.screen).toMatch(/\r\[#+\] +100%/);
    expect(t.screen).toContain('packets');
    const refused = onTerminal(`node ${RUN_EXTRACT} --config ${config} --from '15m ago' -w -`);
    expect(refused.status).toBe(2);
    expect(refused.screen).toContain('refusing to write a binary pcap to a terminal');
  });

  it('says so when the range holds nothing: a valid empty pcap, a message and exit status 3', () => {
    const w = work();
    const before = join(w, 'before.pcap');
    const r = cli(['--from', '2020-01-01T00:00:00Z', '--to', '2020-01-02', '-w', before]);
    expect(r.status).toBe(3);
    expect(r.stderr).toContain('no packets between 2020-01-01T00:00:00.000000000Z and 2020-01-02T00:00:00.000000000Z');
    expect(r.stderr).toContain('no capture file covers that range');
    const t = spawnSync('tcpdump', ['-r', before], { encoding: 'utf8' });
    expect(t.status).toBe(0); // a valid capture tcpdump reads, with no packet in it
    expect(t.stdout).toBe('');
    expect(readRecords(before)).toMatchObject({ linktype: 1, records: [], trailing: 0 });

    const filtered = join(w, 'filtered.pcap');
    const f = cli(['--from', formatIsoNs(firstNs()), '--to', formatIsoNs(lastNs()), '--filter', 'host 1.2.3.4', '-w', filtered]);
    expect(f.status).toBe(3);
    expect(f.stderr).toContain(`matching "host 1.2.3.4" (searched ${store.files.length} files)`);
    expect(readRecords(filtered).records).toEqual([]);
  });

  it('rejects a bad filter with libpcap’s message and leaves no output behind', () => {
    const w = work();
    const out = join(w, 'bad.pcap');
    const r = cli(['--from', formatIsoNs(firstNs()), '--to', formatIsoNs(lastNs()), '--filter', 'tcp port http and (', '-w', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('bad filter "tcp port http and ("');
    expect(r.stderr).toContain('syntax error');
    expect(readdirSync(w)).toEqual([]);
  });

  it('rejects a reversed range, a bad time and an unknown interface, naming what is wrong', () => {
    const w = work();
    const out = join(w, 'x.pcap');
    const reversed = cli(['--from', '2024-05-01T11:00:00Z', '--to', '2024-05-01T10:00:00Z', '-w', out]);
    expect(reversed.status).toBe(2);
    expect(reversed.stderr).toContain('--from 2024-05-01T11:00:00Z (2024-05-01T11:00:00.000000000Z) is after --to');
    expect(reversed.stderr).toContain('swap them');
    const badTime = cli(['--from', 'yesterday-ish', '-w', out]);
    expect(badTime.status).toBe(2);
    expect(badTime.stderr).toContain('--from: cannot read "yesterday-ish" as a time');
    const iface = cli(['--from', '1h ago', '--iface', 'eht0', '-w', out]);
    expect(iface.status).toBe(2);
    expect(iface.stderr).toContain('--iface eht0: no capture files for that interface in the store (interfaces in the store: eth0, eth1, eth2)');
    const missing = cli(['-w', out]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--from is required');
    expect(readdirSync(w)).toEqual([]);
  });

  it('fails clearly on an output it cannot write', () => {
    const w = work();
    const args = ['--from', formatIsoNs(firstNs()), '--to', formatIsoNs(lastNs())];
    const noDir = cli([...args, '-w', join(w, 'nope', 'x.pcap')]);
    expect(noDir.status).toBe(5);
    expect(noDir.stderr).toContain(`cannot write in ${join(w, 'nope')} (no such directory)`);
    const isDir = cli([...args, '-w', w]);
    expect(isDir.status).toBe(5);
    expect(isDir.stderr).toContain('is a directory');
    writeFileSync(join(w, 'file'), '');
    const underFile = cli([...args, '-w', join(w, 'file', 'x.pcap')]);
    expect(underFile.status).toBe(5);
    expect(underFile.stderr).toContain('not a directory');
    const inStore = cli([...args, '-w', join(store.dirs[1]!, '..', 'store-b', 'x.pcap')]);
    expect(inStore.status).toBe(5);
    expect(inStore.stderr).toContain(`is inside the capture store (${store.dirs[1]})`);
    expect(readdirSync(store.dirs[1]!).filter((n) => n.includes('x.pcap'))).toEqual([]);
    // qe-extract itself, without the command's early check.
    const direct = spawnSync(QE_EXTRACT, ['-w', join(w, 'gone', 'x.pcap'), store.files[0]!.path], { encoding: 'utf8' });
    expect(direct.status).toBe(5);
    expect(direct.stderr).toContain('cannot create output');
    expect(direct.stderr).toContain('No such file or directory');
  });

  it('reads a config whose storage.paths is wrong as a clear error', () => {
    const w = work();
    const cfg = join(w, 'c.yaml');
    writeFileSync(cfg, 'storage:\n  paths: /var/lib/store\n');
    const r = cli(['--from', '1h ago', '-w', join(w, 'x.pcap')], cfg);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${cfg}: storage.paths = "/var/lib/store"`);
    expect(r.stderr).toMatch(/fix: list store directories/);
    const none = cli(['--from', '1h ago', '-w', join(w, 'x.pcap')], join(w, 'absent.yaml'));
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/no such file\n  fix: create it .* or name another with --config FILE/);
  });

  it('extracts the flushed part of a file still being written, whole records only, as soon as it is there', () => {
    const w = work();
    const dir = join(w, 'store');
    const cfg = join(w, 'c.yaml');
    writeConfig(cfg, [dir]);
    const packets = traffic(BASE_NS, 200, 77);
    const whole = buildPcap(packets);
    const name = formatFileName(BASE_NS, 'eth0');
    const part = join(dir, `${name}.part`);
    mkdirSync(dir);
    const cut = GLOBAL_HEADER_LEN + 16 * 60 + 6000; // the helper's last write ended mid-record
    writeFileSync(part, whole.subarray(0, cut));
    const args = ['--from', formatIsoNs(BASE_NS), '--to', formatIsoNs(BASE_NS + 3600n * S)];
    const a = cli([...args, '-w', join(w, 'a.pcap')], cfg);
    expect(a.status, a.stderr).toBe(0);
    const got = readRecords(join(w, 'a.pcap')).records;
    expect(got.length).toBeGreaterThan(10);
    expect(got).toEqual(referenceExtract([part], w, BASE_NS, BASE_NS + 3600n * S));
    expect(a.stderr).not.toContain('warning');

    appendFileSync(part, whole.subarray(cut)); // the next flush
    const started = performance.now();
    const b = cli([...args, '-w', join(w, 'b.pcap')], cfg);
    const took = performance.now() - started;
    expect(b.status).toBe(0);
    expect(readRecords(join(w, 'b.pcap')).records.length).toBe(200);
    expect(took).toBeLessThan(5000);
  });

  it('reports different link types in the range as an input error naming them', () => {
    const w = work();
    const dir = join(w, 'store');
    const cfg = join(w, 'c.yaml');
    writeConfig(cfg, [dir]);
    writeCaptureFile(dir, 'eth0', traffic(BASE_NS, 5, 1));
    writeCaptureFile(dir, 'wlan0', traffic(BASE_NS + MS, 5, 2), { linktype: 105 });
    const r = cli(['--from', formatIsoNs(BASE_NS), '--to', formatIsoNs(BASE_NS + S), '-w', join(w, 'x.pcap')], cfg);
    expect(r.status).toBe(4);
    expect(r.stderr).toContain('different link types (link type 1 on eth0; link type 105 on wlan0)');
    expect(readdirSync(w).sort()).toEqual(['c.yaml', 'store']);
    const one = cli(['--from', formatIsoNs(BASE_NS), '--to', formatIsoNs(BASE_NS + S), '--iface', 'wlan0', '-w', join(w, 'x.pcap')], cfg);
    expect(one.status, one.stderr).toBe(0);
    expect(readRecords(join(w, 'x.pcap'))).toMatchObject({ linktype: 105 });
  });
});

describe('qe-extract', () => {
  function status(stderr: string): Record<string, unknown> {
    const lines = stderr.split('\n').filter((l) => l.startsWith('{'));
    return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
  }

  it('stops with libpcap-independent input errors before any output exists (link types differ)', () => {
    const w = work();
    const a = writeCaptureFile(w, 'eth0', traffic(BASE_NS, 3, 1));
    const b = writeCaptureFile(w, 'ppp0', traffic(BASE_NS, 3, 2), { linktype: 9 });
    const r = spawnSync(QE_EXTRACT, ['-w', join(w, 'o.pcap'), a.path, b.path], { encoding: 'utf8' });
    expect(r.status).toBe(4);
    expect(r.stderr).toContain(`link types differ: ${a.path} has 1 (EN10MB), ${b.path} has 9 (PPP)`);
    expect(status(r.stderr)).toMatchObject({ type: 'error', exit: 4 });
    expect(existsSync(join(w, 'o.pcap'))).toBe(false);
  });

  it('puts equal timestamps in stream order', () => {
    const w = work();
    const mk = (iface: string, fill: number) =>
      writeCaptureFile(w, iface, [{ tsNs: BASE_NS, data: frame({ src: '10.0.0.1', dst: '10.0.0.2', proto: 'udp', sport: 1, dport: 2, payload: 10, fill }) }]).path;
    const a = mk('eth0', 0xaa);
    const b = mk('eth1', 0xbb);
    for (const order of [[a, b], [b, a]]) {
      const out = join(w, 'tie.pcap');
      expect(spawnSync(QE_EXTRACT, ['-w', out, ...order]).status).toBe(0);
      const fills = readRecords(out).records.map((r) => r.data.slice(-2));
      expect(fills).toEqual(order[0] === a ? ['aa', 'bb'] : ['bb', 'aa']);
    }
  });

  it('reads microsecond and big-endian captures, writing nanosecond pcap', () => {
    const w = work();
    const src = writeCaptureFile(w, 'eth0', traffic(BASE_NS, 40, 5)).path;
    const micro = join(w, 'micro.pcap');
    execFileSync('tcpdump', ['-r', src, '-w', micro], { stdio: 'ignore' }); // tcpdump writes microseconds
    const le = readFileSync(micro);
    const be = Buffer.from(le);
    for (const [o, n] of [[0, 4], [4, 2], [6, 2], [16, 4], [20, 4]] as const) be.subarray(o, o + n).reverse();
    for (let off = GLOBAL_HEADER_LEN; off < be.length; ) {
      const caplen = le.readUInt32LE(off + 8);
      for (let i = 0; i < 4; i++) be.subarray(off + 4 * i, off + 4 * i + 4).reverse();
      off += 16 + caplen;
    }
    writeFileSync(join(w, 'be.pcap'), be);
    const want = referenceExtract([micro], w, 0n, BASE_NS + 86_400n * S);
    expect(want).toHaveLength(40);
    for (const input of [micro, join(w, 'be.pcap')]) {
      const out = join(w, 'o.pcap');
      expect(spawnSync(QE_EXTRACT, ['-w', out, input]).status).toBe(0);
      expect(readRecords(out)).toMatchObject({ nanos: true, records: want });
    }
  });

  it('reports counts in its final JSON line, and stops reading a sorted file past --to', () => {
    const w = work();
    const big = writeCaptureFile(w, 'eth0', traffic(BASE_NS, 40_000, 6)); // ~5 MB
    const to = big.packets[99]!.tsNs;
    const list = join(w, 'list');
    for (const sorted of [1, 0]) {
      writeFileSync(list, `0 ${sorted} ${big.path}\n`);
      const r = spawnSync(QE_EXTRACT, ['-w', join(w, 'o.pcap'), '--to', to.toString(), '--list', list], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      const s = status(r.stderr);
      expect(s).toMatchObject({ type: 'done', exit: 0, packets: 100, files_opened: 1, files_missing: 0 });
      if (sorted) expect(s.bytes_read as number).toBeLessThan(2 * 1024 * 1024);
      else expect(s.records_read).toBe(40_000);
    }
  });

  it('writes progress lines when asked, to the fd it is given; every status line fits the strict schema the daemon reads it with', () => {
    const w = work();
    const big = writeCaptureFile(w, 'eth0', traffic(BASE_NS, 60_000, 7)).path;
    const gone = join(w, 'gone.pcap');
    const r = spawnSync('sh', ['-c', `${QE_EXTRACT} -w ${join(w, 'o.pcap')} --status-fd 3 --progress-ms 1 ${big} ${gone} 3>${join(w, 'status')}`], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    const lines = readFileSync(join(w, 'status'), 'utf8').trim().split('\n').map(parseExtractStatus);
    expect(lines.filter((l) => l.type === 'progress').length).toBeGreaterThan(0);
    expect(lines.filter((l) => l.type === 'warning')).toHaveLength(1);
    expect(lines[lines.length - 1]).toMatchObject({ type: 'done', packets: 60_000 });
    const bad = spawnSync('sh', ['-c', `${QE_EXTRACT} -w ${join(w, 'p.pcap')} --status-fd 3 --filter 'port http2x' ${big} 3>${join(w, 'status2')}`], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    const err = readFileSync(join(w, 'status2'), 'utf8').trim().split('\n').map(parseExtractStatus).at(-1);
    expect(err).toMatchObject({ type: 'error', exit: bad.status });
  });

  it('a status line with a field the daemon does not know is refused, naming the field', () => {
    expect(() => parseExtractStatus('{"type":"warning","message":"m","errno":2}')).toThrow(/errno/);
  });

  it('finds a part file under its closed name when it was renamed after the catalog was read', () => {
    const w = work();
    const f = writeCaptureFile(w, 'eth0', traffic(BASE_NS, 10, 8));
    const gone = join(w, 'gone.pcap');
    const r = spawnSync(QE_EXTRACT, ['-w', join(w, 'o.pcap'), `${f.path}.part`, gone], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(readRecords(join(w, 'o.pcap')).records).toHaveLength(10);
    expect(r.stderr).toContain(`${gone} no longer exists`);
    expect(status(r.stderr)).toMatchObject({ files_opened: 1, files_missing: 1 });
  });

  it('exits quietly with 141 when the reader of -w - goes away', async () => {
    const w = work();
    const big = writeCaptureFile(w, 'eth0', traffic(BASE_NS, 60_000, 9)).path;
    const child = spawn(QE_EXTRACT, ['-w', '-', big], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(code).toBe(141);
    expect(err).toBe('');
  });

  it('removes its unfinished output when interrupted', async () => {
    const w = work();
    const big = writeCaptureFile(w, 'eth0', traffic(BASE_NS, 60_000, 10)).path;
    const fifo = join(w, 'slow');
    execFileSync('mkfifo', [fifo]);
    // Reading the list from a FIFO nobody writes keeps qe-extract waiting with its output open.
    const child = spawn(QE_EXTRACT, ['-w', join(w, 'o.pcap'), '--list', fifo, big], { stdio: 'ignore' });
    const writer = spawn('sh', ['-c', `sleep 0.3; kill -INT ${child.pid}; exec 3>${fifo}`]);
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    writer.kill();
    expect(code).toBe(130);
    expect(readdirSync(w).sort()).toEqual([big.split('/').pop(), 'slow'].sort());
  });
});

describe('parseTime', () => {
  const now = BASE_NS + 123n;
  const utc = { nowNs: now, zone: 'utc' as const };

  it('reads ISO 8601 with a zone exactly, to the nanosecond', () => {
    expect(parseTime('2024-05-01T10:00:00Z', utc)).toBe(BASE_NS);
    expect(parseTime('2024-05-01T12:00:00.000000001+02:00', utc)).toBe(BASE_NS + 1n);
    expect(parseTime('2024-05-01T05:30:00.5-0430', utc)).toBe(BASE_NS + S / 2n);
    expect(parseTime('2024-05-01 10:00Z', utc)).toBe(BASE_NS);
    expect(parseTime('20240501T100000.000000007Z', utc)).toBe(BASE_NS + 7n); // a store file name's time
  });

  it('reads a time without a zone in the zone asked for (local follows TZ)', () => {
    expect(parseTime('2024-05-01 10:00', utc)).toBe(BASE_NS);
    expect(parseTime('2024-05-01', utc)).toBe(BASE_NS - 10n * 3600n * S);
    const saved = process.env.TZ;
    try {
      process.env.TZ = 'America/New_York'; // UTC-4 in May
      expect(parseTime('2024-05-01T06:00:00', { nowNs: now })).toBe(BASE_NS);
      expect(parseTime('2024-05-01T06:00:00.25', { nowNs: now, zone: 'local' })).toBe(BASE_NS + S / 4n);
      expect(parseTime('2024-05-01T06:00:00Z', { nowNs: now })).toBe(BASE_NS - 4n * 3600n * S);
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  it('reads epoch seconds, now, and relative times', () => {
    expect(parseTime('1714557600', utc)).toBe(BASE_NS);
    expect(parseTime('1714557600.25', utc)).toBe(BASE_NS + S / 4n);
    expect(parseTime('now', utc)).toBe(now);
    expect(parseTime('15m ago', utc)).toBe(now - 900n * S);
    expect(parseTime('2h ago', utc)).toBe(now - 7200n * S);
    expect(parseTime('1d ago', utc)).toBe(now - 86_400n * S);
    expect(parseTime('1h30m ago', utc)).toBe(now - 5400n * S);
    expect(parseTime('1.5 hours ago', utc)).toBe(now - 5400n * S);
    expect(parseTime('250ms ago', utc)).toBe(now - S / 4n);
  });

  it('names the value and the fix when it cannot read a time', () => {
    const bad = (t: string) => {
      try {
        parseTime(t, utc);
      } catch (e) {
        expect(e).toBeInstanceOf(TimeParseError);
        return (e as Error).message;
      }
      throw new Error(`"${t}" was accepted`);
    };
    expect(bad('tomorrow')).toContain('cannot read "tomorrow" as a time: use ISO 8601');
    expect(bad('2024-02-30T00:00:00Z')).toContain('day 30 is out of range (01-29 in 2024-02)');
    expect(bad('2024-13-01')).toContain('month 13 is out of range');
    expect(bad('2024-05-01T24:00:00Z')).toContain('hour 24 is out of range');
    expect(bad('3 fortnights ago')).toContain('unknown unit "fortnights"');
    expect(bad('1969-12-31T23:59:59Z')).toContain('outside what a pcap file can hold');
    expect(bad('')).toContain('empty time');
  });
});

describe('parseExtractArgs', () => {
  const parse = (argv: string[]) => parseExtractArgs(argv, BASE_NS, 'utc');

  it('defaults --to to now and splits --iface lists', () => {
    expect(parse(['--from', '1h ago', '-w', 'x.pcap', '--iface', 'eth0,eth1', '--iface', 'eth0'])).toMatchObject({
      fromNs: BASE_NS - 3600n * S,
      toNs: BASE_NS,
      ifaces: ['eth0', 'eth1'],
      output: 'x.pcap',
      configPath: '/etc/qe-packets/config.yaml',
    });
  });

  it('rejects what it cannot use, saying which flag', () => {
    const msg = (argv: string[]) => {
      try {
        parse(argv);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(msg(['--from', '1h ago'])).toContain('-w is required');
    expect(msg(['--from', '1h ago', '-w', 'x', '--form', 'y'])).toContain("Unknown option '--form'");
    expect(msg(['--from', '1h ago', '-w', 'x', '--iface', 'eth0,'])).toContain('empty interface name');
    expect(msg(['--from', '1h ago', '-w', 'x', '--filter', ' '])).toContain('--filter is empty');
    expect(msg(['--from', 'now', '--to', '1h ago', '-w', 'x'])).toContain('swap them');
    expect(msg(['--from', '1h ago', '-w', 'x', '--json'])).toContain('--json goes with --explain');
    expect(msg(['--from', '1h ago', '-w', 'x', '--explain'])).toContain('--explain extracts nothing');
  });

  it('reads --explain (no -w needed), --json and --no-index', () => {
    expect(parse(['--from', '1h ago', '--explain', '--json', '--filter', 'port 53'])).toMatchObject({ explain: true, json: true, noIndex: false, output: '' });
    expect(parse(['--from', '1h ago', '-w', 'x', '--no-index'])).toMatchObject({ explain: false, noIndex: true, output: 'x' });
  });
});
