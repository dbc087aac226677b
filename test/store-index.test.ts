// Index files in the store's life cycle, with the real qe-index: counted with their pcap file,
// deleted with it by retention, removed when orphaned and dropped with a repaired `.part`; and
// `qe-packets index` over a store: what it indexes, rebuilds, reports and refuses.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IDX_H, IDX_VERSION, indexPathFor } from '../daemon/src/index/format.js';
import { checkIndex } from '../daemon/src/store/index-check.js';
import { removeCaptureFile } from '../daemon/src/store/index-files.js';
import { StoreLedger } from '../daemon/src/store/ledger.js';
import { removeOrphanIndexes, repairStore } from '../daemon/src/store/repair.js';
import { measureStore } from '../daemon/src/store/usage.js';
import { scanCatalog } from '../daemon/src/store/catalog.js';
import { runQeIndex } from '../daemon/src/store/run-qe-index.js';
import { lockIndexing } from '../daemon/src/store/index-backfill.js';
import { crc32 } from 'node:zlib';
import { BASE_NS, MS, tempDir, traffic, writeCaptureFile } from './lib/fixture.js';
import { cli } from './lib/cli.js';
import { DEFAULT_INDEX, closedFiles, indexFiles } from './lib/index-fixture.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));
function dir(): string {
  const t = tempDir('index');
  cleanups.push(t.cleanup);
  return t.dir;
}

const want = DEFAULT_INDEX;
const index = indexFiles;
const size = (p: string) => statSync(p).size;

describe('index files in the store', () => {
  it('are counted with their pcap file; an orphan index is counted too; captures are never mistaken for them', async () => {
    const d = dir();
    const [a, b, c] = closedFiles(d, 3);
    index([a!.path, b!.path]);
    writeFileSync(indexPathFor(c!.path) + '.tmp', Buffer.alloc(500)); // a crash mid-write
    writeFileSync(join(d, '20240501T090000.000000000Z_eth9.pcap.qeidx'), Buffer.alloc(300)); // its pcap is gone
    const u = await measureStore([d]);
    expect(u.closed.map((f) => f.path)).toEqual([a!.path, b!.path, c!.path]);
    expect(u.closed.map((f) => f.size)).toEqual([size(a!.path) + size(indexPathFor(a!.path)), size(b!.path) + size(indexPathFor(b!.path)), size(c!.path) + 500]);
    expect(u.orphanIndexBytes).toBe(300);
    expect(u.indexBytes).toBe(size(indexPathFor(a!.path)) + size(indexPathFor(b!.path)) + 800);
    const onDisk = readdirSync(d).reduce((n, f) => n + size(join(d, f)), 0);
    expect(u.totalBytes).toBe(onDisk);
    // The catalog lists the capture files only, and finds nothing wrong with the rest.
    const catalog = await scanCatalog([d], { writeCache: false });
    expect(catalog.entries.map((e) => e.path)).toEqual([a!.path, b!.path, c!.path]);
    expect(catalog.problems).toEqual([]);
  });



});

describe('runQeIndex', () => {
  it('runs qe-index at the lowest CPU priority (nice 19) and best-effort I/O priority 7', async () => {
    const d = dir();
    // qe-index waits on the FIFO's open: long enough to look at it.
    const fifo = join(d, '20240501T100000.000000000Z_fifo.pcap');
    execFileSync('mkfifo', [fifo]);
    const messages: string[] = [];
    const done = runQeIndex({ fields: ['ip'], blockSizeBytes: 16384, files: [fifo], onMessage: (m) => messages.push(m.type) });
    let pid = '';
    for (let i = 0; i < 100 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 20));
      pid = execFileSync('pgrep', ['-f', `qe-index .*${fifo}`], { encoding: 'utf8' }).trim().split('\n').find((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'qe-index') ?? '';
    }
    expect(pid).not.toBe('');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])).toBe(19);
    expect(execFileSync('ionice', ['-p', pid], { encoding: 'utf8' }).trim()).toBe('best-effort: prio 7');
    writeFileSync(fifo, ''); // opens, writes nothing, closes: qe-index reads an empty "file" and refuses it
    expect((await done).code).toBe(4);
    expect(messages).toEqual(['error', 'done']);
  });
});

describe('checkIndex', () => {
  it('current, then every kind of damage or difference named', () => {
    const d = dir();
    const [f] = closedFiles(d, 1);
    index([f!.path]);
    const idx = indexPathFor(f!.path);
    const good = readFileSync(idx);
    expect(checkIndex(f!.path, want)).toEqual({ state: 'current', indexBytes: good.length });
    expect(checkIndex(f!.path, { ...want, fields: ['ip', 'mac'] })).toEqual({ state: 'stale', reason: 'built with fields vlan,ip,port,proto, the config asks for mac,ip' });
    expect(checkIndex(f!.path, { ...want, blockSizeBytes: 4096 })).toMatchObject({ state: 'stale' });
    const body = Buffer.from(good);
    body[good.length - 3]! ^= 0xff;
    writeFileSync(idx, body);
    expect(checkIndex(f!.path, want)).toEqual({ state: 'damaged', reason: 'segment at 64 fails its checksum' });
    // The daemon's quick check reads headers only: a flipped body byte is for readers to find.
    expect(checkIndex(f!.path, want, 'headers')).toMatchObject({ state: 'current' });
    writeFileSync(idx, good);
    truncateSync(idx, good.length - 5);
    const cut = { state: 'damaged', reason: 'marked complete but holds 0 whole segment(s) and a torn one' };
    expect(checkIndex(f!.path, want)).toEqual(cut);
    expect(checkIndex(f!.path, want, 'headers')).toEqual(cut);
    const header = Buffer.from(good);
    header[IDX_H.fields]! ^= 1;
    writeFileSync(idx, header);
    expect(checkIndex(f!.path, want)).toEqual({ state: 'damaged', reason: 'file header fails its checksum' });
    writeFileSync(idx, withVersion(good, IDX_VERSION + 1));
    expect(checkIndex(f!.path, want)).toEqual({ state: 'version', found: IDX_VERSION + 1, expected: IDX_VERSION });
  });

  it('an index left beside another file of the same name, or one that does not reach the end of its file, is not trusted', () => {
    const d = dir();
    const [f] = closedFiles(d, 1);
    index([f!.path]);
    const pcap = readFileSync(f!.path);
    writeFileSync(f!.path, Buffer.concat([pcap, pcap.subarray(24, 24 + 16 + pcap.readUInt32LE(24 + 8))]));
    expect(checkIndex(f!.path, want)).toEqual({ state: 'stale', reason: `covers ${pcap.length} bytes of the pcap file, which holds whole records past them` });
    const other = Buffer.from(pcap);
    other.writeUInt32LE(other.readUInt32LE(24) + 1, 24);
    writeFileSync(f!.path, other);
    expect(checkIndex(f!.path, want)).toMatchObject({ state: 'stale', reason: expect.stringMatching(/^index of a pcap file whose first record is at \d+ ns, .* starts at \d+ ns$/) });
  });
});

/** The index with another format version, its header checksum made right (as a newer writer would). */
function withVersion(idx: Buffer, version: number): Buffer {
  const b = Buffer.from(idx);
  b.writeUInt16LE(version, IDX_H.version);
  b.writeUInt32LE(crc32(b.subarray(0, IDX_H.crc)), IDX_H.crc);
  return b;
}

/** The index alone: flow tables (test/store-flows.test.ts) are off unless asked for. */
function config(d: string, store: string, fields = '[ip, port, proto, vlan]', flows = false): string {
  const path = join(d, 'config.yaml');
  writeFileSync(path, `storage:\n  paths: [${store}]\n  capacity: 1GiB\n  file_size: 64MiB\nindex:\n  fields: ${fields}\nflows: {enabled: ${flows}}\nmetrics: {listen: false}\n`);
  return path;
}

interface Summary {
  considered: number;
  indexed: number;
  up_to_date: number;
  failed: number;
  refused: number;
  rebuilt: { path: string; reason: string }[];
  refused_files: { path: string; reason: string }[];
}

async function runIndex(cfg: string, ...args: string[]): Promise<{ code: number; summary: Summary; stderr: string }> {
  const r = await cli(['index', '--config', cfg, '--json', ...args]);
  return { code: r.exitCode ?? -1, summary: JSON.parse(r.stdout) as Summary, stderr: r.stderr };
}

describe('qe-packets index', () => {
  it('indexes the files that have none, then finds them up to date; a changed index.fields rebuilds only those built otherwise', async () => {
    const d = dir();
    const store = join(d, 'store');
    const files = closedFiles(store, 4);
    // A file being written is its writer's to index.
    writeCaptureFile(store, 'eth1', traffic(BASE_NS + 3_600_000n * MS, 10, 7), { partial: true });
    const cfg = config(d, store);
    let r = await runIndex(cfg);
    expect(r.code).toBe(0);
    expect(r.summary).toMatchObject({ considered: 4, indexed: 4, up_to_date: 0, failed: 0, rebuilt: [] });
    for (const f of files) expect(checkIndex(f.path, want).state).toBe('current');
    expect(existsSync(indexPathFor(join(store, readdirSync(store).find((n) => n.endsWith('.part'))!)))).toBe(false);
    r = await runIndex(cfg);
    expect(r.summary).toMatchObject({ considered: 4, indexed: 0, up_to_date: 4 });

    // Two files indexed with the fields the config will now ask for; the others must be rebuilt.
    index([files[0]!.path, files[1]!.path], 'mac,ip');
    const before = statSync(indexPathFor(files[0]!.path)).mtimeMs;
    const cfg2 = config(d, store, '[mac, ip]');
    r = await runIndex(cfg2);
    expect(r.summary).toMatchObject({ considered: 4, indexed: 2, up_to_date: 2 });
    expect(r.summary.rebuilt.map((x) => x.path).sort()).toEqual([files[2]!.path, files[3]!.path]);
    expect(r.summary.rebuilt[0]!.reason).toMatch(/index out of date \(built with fields vlan,ip,port,proto, the config asks for mac,ip\)/);
    expect(statSync(indexPathFor(files[0]!.path)).mtimeMs).toBe(before);
    // --rebuild: all of them; --from/--to: only the files holding packets in the range.
    r = await runIndex(cfg2, '--rebuild', '--from', '2024-05-01T10:01:30Z', '--to', '2024-05-01T10:02:30Z');
    expect(r.summary).toMatchObject({ considered: 1, indexed: 1, up_to_date: 0 });
  });

  it('a damaged or cut-short index is reported and rebuilt; one of a newer version is refused with both versions, and left', async () => {
    const d = dir();
    const store = join(d, 'store');
    const files = closedFiles(store, 3);
    index(files.map((f) => f.path));
    const [damaged, cut, newer] = files.map((f) => indexPathFor(f.path));
    const good = readFileSync(damaged!);
    good[good.length - 1]! ^= 0x55;
    writeFileSync(damaged!, good);
    truncateSync(cut!, size(cut!) - 7);
    const newerBytes = withVersion(readFileSync(newer!), IDX_VERSION + 1);
    writeFileSync(newer!, newerBytes);
    const cfg = config(d, store);
    const r = await runIndex(cfg);
    expect(r.code).toBe(0);
    expect(r.summary).toMatchObject({ considered: 3, indexed: 2, up_to_date: 0, failed: 0, refused: 1 });
    expect(r.summary.rebuilt).toEqual([
      { path: files[0]!.path, reason: 'damaged index (segment at 64 fails its checksum)' },
      { path: files[1]!.path, reason: 'damaged index (marked complete but holds 0 whole segment(s) and a torn one)' },
    ]);
    expect(r.summary.refused_files).toEqual([{ path: files[2]!.path, reason: `index format version ${IDX_VERSION + 1}, this qe-packets reads version ${IDX_VERSION}` }]);
    expect(r.stderr).toContain(`${files[0]!.path}: damaged index (segment at 64 fails its checksum): rebuilding it`);
    expect(r.stderr).toContain(`${files[2]!.path}: index format version ${IDX_VERSION + 1}, this qe-packets reads version ${IDX_VERSION}: left alone`);
    expect(checkIndex(files[0]!.path, want).state).toBe('current');
    expect(checkIndex(files[1]!.path, want).state).toBe('current');
    expect(readFileSync(newer!).equals(newerBytes)).toBe(true);
    // Asked to, it replaces it.
    expect((await runIndex(cfg, '--rebuild')).summary).toMatchObject({ indexed: 3, refused: 0 });
    expect(checkIndex(files[2]!.path, want).state).toBe('current');
  });

  it('an index of an older format version (1: no fence) is rebuilt by `qe-packets index` without --rebuild', async () => {
    const d = dir();
    const store = join(d, 'store');
    const [f] = closedFiles(store, 1);
    index([f!.path]);
    const path = indexPathFor(f!.path);
    const current = readFileSync(path);
    writeFileSync(path, withVersion(current, IDX_VERSION - 1));
    expect(checkIndex(f!.path, want)).toEqual({ state: 'version', found: IDX_VERSION - 1, expected: IDX_VERSION });
    const r = await runIndex(config(d, store));
    expect(r.summary).toMatchObject({ indexed: 1, refused: 0 });
    expect(r.summary.rebuilt).toEqual([{ path: f!.path, reason: `index format version ${IDX_VERSION - 1}, this qe-packets reads version ${IDX_VERSION}` }]);
    expect(checkIndex(f!.path, want).state).toBe('current');
    expect(readFileSync(path).equals(current)).toBe(true);
  });

  it('the human summary line, and an unknown field refused with the key, the value and the known fields', async () => {
    const d = dir();
    const store = join(d, 'store');
    closedFiles(store, 2);
    const ok = await cli(['index', '--config', config(d, store)]);
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toMatch(/^2 files considered: 2 indexed \([\d.]+(B|KiB) of index\), 0 already up to date, 0 failed$/);
    const bad = await cli(['index', '--config', config(d, store, '[ip, hosts]')]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('index.fields[1] = "hosts": unknown index field: known fields are mac, vlan, ip, port, proto, tunnel');
    const off = await cli(['index', '--config', config(d, store, '[]')]);
    expect(off.exitCode).toBe(2);
    expect(off.stderr).toMatch(/index\.fields is \[\] and flows\.enabled is false in .*: the index and flow tables are turned off/);
  });

  it('never two indexing runs on a store at once: a second one stops, saying who holds it', async () => {
    const d = dir();
    const store = join(d, 'store');
    closedFiles(store, 1);
    const held = lockIndexing([store])!;
    try {
      const r = await cli(['index', '--config', config(d, store)]);
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toMatch(/another indexing run holds the store \(.*\.qe-index\.lock\): the daemon's background indexing or another `qe-packets index`/);
      expect(lockIndexing([store])).toBeUndefined();
    } finally {
      held.release();
    }
    expect((await cli(['index', '--config', config(d, store)])).exitCode).toBe(0);
  });

  it('a store that is not writable is refused: the path, why, and the fix; nothing is written', async () => {
    const d = dir();
    const store = join(d, 'store');
    closedFiles(store, 2);
    const before = readdirSync(store).sort();
    execFileSync('mount', ['--bind', store, store]);
    try {
      execFileSync('mount', ['-o', 'remount,ro,bind', store]);
      const r = await cli(['index', '--config', config(d, store), '--json']);
      expect(r.exitCode).toBe(5);
      expect(r.stderr).toContain(`the store directory ${store} is not writable (EROFS): an index is written beside its capture file, so none can be built there; remount it read-write`);
      expect(JSON.parse(r.stdout)).toMatchObject({ error: expect.stringContaining('EROFS') });
    } finally {
      execFileSync('umount', [store]);
    }
    expect(readdirSync(store).sort()).toEqual(before);
  });
});
