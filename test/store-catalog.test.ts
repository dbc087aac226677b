import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  mkdirSync,
  existsSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  utimesSync,
  writeFileSync,
  writeSync,
  closeSync,
  symlinkSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildPcap, decodeGlobalHeader, decodeRecordHeader, encodeRecordHeader, GLOBAL_HEADER_LEN } from '../daemon/src/pcap/format.js';
import { CACHE_FILE_NAME } from '../daemon/src/store/catalog-cache.js';
import { catalogFile, reuseUnchangedScans, scanCatalog, type CatalogEntry } from '../daemon/src/store/catalog.js';
import { formatFileName } from '../daemon/src/store/filename.js';
import { selectFiles } from '../daemon/src/store/select-files.js';
import { BASE_NS, MS, buildFixtureStore, tempDir, traffic, writeCaptureFile } from './lib/fixture.js';
import { execa } from 'execa';
import { root } from './lib/cli.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));
function dir(): string {
  const t = tempDir('catalog');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** capinfos' view of a closed file: packets, data bytes, first and last time, strict order. */
function capinfos(path: string) {
  const out = execFileSync('capinfos', ['-T', '-r', '-c', '-d', '-a', '-e', '-S', '-o', path], { encoding: 'utf8' });
  const [, packets, bytes, first, last, ordered] = out.trim().split('\t');
  const ns = (s: string) => BigInt(s.replace('.', ''));
  return { packets: Number(packets), bytes: Number(bytes), firstNs: ns(first!), lastNs: ns(last!), sorted: ordered === 'True' };
}

function pick(e: CatalogEntry) {
  return { packets: e.packets, bytes: e.bytes, firstNs: e.firstNs, lastNs: e.lastNs, sorted: e.sorted };
}

describe('scanCatalog', () => {
  it('lists every capture file of every store path with what capinfos says about it', async () => {
    const root = dir();
    const store = buildFixtureStore(root);
    writeFileSync(join(store.dirs[0]!, 'notes.txt'), 'not a capture');
    const cat = await scanCatalog(store.dirs);
    expect(cat.problems).toEqual([]);
    expect(cat.entries.map((e) => e.path).sort()).toEqual(store.files.map((f) => f.path).sort());
    for (const e of cat.entries) {
      const f = store.files.find((x) => x.path === e.path)!;
      expect(e).toMatchObject({ iface: f.iface, partial: f.partial, linktype: 1, snaplen: 262144 });
      if (!f.partial) {
        expect(pick(e), e.name).toEqual(capinfos(e.path));
        expect(e.size).toBe(statSync(e.path).size);
      } else {
        // capinfos refuses a cut-short file; the whole records are what the fixture wrote.
        const ts = f.packets.map((p) => p.tsNs);
        expect(pick(e), e.name).toEqual({
          packets: f.packets.length,
          bytes: f.packets.reduce((n, p) => n + p.data.length, 0),
          firstNs: ts[0],
          lastNs: ts[ts.length - 1],
          sorted: true,
        });
      }
    }
    const firsts = cat.entries.map((e) => e.firstNs);
    expect(firsts).toEqual([...firsts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(cat.stats).toMatchObject({ files: store.files.length, readWhole: store.files.length, cached: 0 });
  });

  it('rescans unchanged files from the cache without opening them', async () => {
    const root = dir();
    const store = buildFixtureStore(root);
    // A whole-second mtime, so that it can be put back exactly after the scribble below.
    const victimPath = store.files.find((f) => !f.partial)!.path;
    const mtime = new Date('2024-05-01T10:30:00Z');
    utimesSync(victimPath, mtime, mtime);
    const first = await scanCatalog(store.dirs);
    for (const d of store.dirs) expect(existsSync(join(d, CACHE_FILE_NAME))).toBe(true);

    // Scribble over a closed file but keep its size and mtime: a scan that opened it would notice.
    const victim = first.entries.find((e) => e.path === victimPath)!;
    const st = statSync(victim.path);
    const fd = openSync(victim.path, 'r+');
    writeSync(fd, Buffer.alloc(st.size - GLOBAL_HEADER_LEN, 0xff), 0, st.size - GLOBAL_HEADER_LEN, GLOBAL_HEADER_LEN);
    closeSync(fd);
    utimesSync(victim.path, mtime, mtime);

    const second = await scanCatalog(store.dirs);
    expect(second.stats).toMatchObject({ files: store.files.length, cached: store.files.length, readWhole: 0, readOnward: 0, bytesWalked: 0 });
    expect(second.entries).toEqual(first.entries);

    // A changed mtime makes the entry stale: the file is read again and the scribble shows.
    utimesSync(victim.path, mtime, new Date(mtime.getTime() + 1000));
    const third = await scanCatalog(store.dirs);
    expect(third.stats).toMatchObject({ readWhole: 1, cached: store.files.length - 1 });
    const again = third.entries.find((e) => e.path === victim.path)!;
    expect(again.packets).toBe(0);
    expect(third.problems.map((p) => p.path)).toEqual([victim.path]);
  });

  it('keeps each file\'s first record time as written (what its index is checked against), and reads a cache from before it was kept', async () => {
    const root = dir();
    const store = buildFixtureStore(root);
    const first = await scanCatalog(store.dirs);
    for (const e of first.entries) {
      const head = readFileSync(e.path).subarray(0, GLOBAL_HEADER_LEN + 16);
      if (e.packets === 0) expect(e.firstRecordNs).toBeUndefined();
      else expect(e.firstRecordNs).toBe(decodeRecordHeader(head, GLOBAL_HEADER_LEN, decodeGlobalHeader(head)).tsNs);
    }
    expect(first.entries.some((e) => e.firstRecordNs !== undefined)).toBe(true);
    // A cache written before the field existed (13 values a row) is still a cache: nothing is read
    // again, and the files just have no first record time (the planner reads it from the file).
    for (const d of store.dirs) {
      const doc = JSON.parse(readFileSync(join(d, CACHE_FILE_NAME), 'utf8')) as { files: Record<string, unknown[]> };
      for (const row of Object.values(doc.files)) {
        expect(row.length).toBe(14);
        row.length = 13;
      }
      writeFileSync(join(d, CACHE_FILE_NAME), JSON.stringify(doc));
    }
    const old = await scanCatalog(store.dirs);
    expect(old.stats).toMatchObject({ cached: store.files.length, readWhole: 0 });
    expect(old.entries).toEqual(first.entries.map(({ firstRecordNs: _, ...e }) => e));
  });

  it('reads a growing part file on from where the last scan stopped, and keeps that across the rename on close', async () => {
    const d = dir();
    const packets = traffic(BASE_NS, 300, 11);
    const whole = buildPcap(packets);
    const name = formatFileName(BASE_NS, 'eth0');
    const part = join(d, `${name}.part`);
    const cut = GLOBAL_HEADER_LEN + 16 * 100 + 5000; // somewhere mid-record
    writeFileSync(part, whole.subarray(0, cut));
    const a = await scanCatalog([d]);
    const n = a.entries[0]!.packets;
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(300);
    expect(a.entries[0]!.lastNs).toBe(packets[n - 1]!.tsNs);

    appendFileSync(part, whole.subarray(cut));
    const b = await scanCatalog([d]);
    expect(b.stats).toMatchObject({ readOnward: 1, readWhole: 0 });
    expect(b.stats.bytesWalked).toBeLessThan(whole.length - cut + 1000);
    expect(pick(b.entries[0]!)).toEqual({
      packets: 300,
      bytes: packets.reduce((s, p) => s + p.data.length, 0),
      firstNs: packets[0]!.tsNs,
      lastNs: packets[299]!.tsNs,
      sorted: true,
    });

    renameSync(part, join(d, name));
    const c = await scanCatalog([d]);
    expect(c.stats).toMatchObject({ cached: 1, readWhole: 0, readOnward: 0 });
    expect(c.entries[0]).toMatchObject({ name, partial: false, packets: 300 });
    const cache = JSON.parse(readFileSync(join(d, CACHE_FILE_NAME), 'utf8')) as { files: Record<string, unknown> };
    expect(Object.keys(cache.files)).toEqual([name]);
  });

  it('in a process that keeps its scans (the daemon), reuses the last scan of a directory that has not changed, still reading its part file on', async () => {
    const d = dir();
    const closed = traffic(BASE_NS, 50, 3);
    const closedPath = join(d, formatFileName(BASE_NS, 'eth0'));
    writeFileSync(closedPath, buildPcap(closed));
    const open = traffic(BASE_NS + 10_000n * MS, 300, 4);
    const whole = buildPcap(open);
    const part = join(d, `${formatFileName(open[0]!.tsNs, 'eth0')}.part`);
    const cut = GLOBAL_HEADER_LEN + 16 * 100 + 5000;
    writeFileSync(part, whole.subarray(0, cut));
    // The directory last changed a minute ago: long enough before a listing to trust its mtime.
    const still = () => utimesSync(d, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    reuseUnchangedScans(true);
    try {
      still();
      const first = await scanCatalog([d]); // new files: the cache is written, so the directory moved
      expect(first.stats).toMatchObject({ files: 2, readWhole: 2 });
      still();
      const second = await scanCatalog([d]);
      expect(second.stats).toMatchObject({ files: 2, cached: 2, readWhole: 0 });

      // A closed file changed in place, its mtime too, the directory not: the last scan stands.
      const fd = openSync(closedPath, 'r+');
      writeSync(fd, Buffer.alloc(100, 0xff), 0, 100, GLOBAL_HEADER_LEN);
      closeSync(fd);
      utimesSync(closedPath, new Date(), new Date(Date.now() + 5000));
      // The part file grows: read on, every scan, without the cache being written.
      appendFileSync(part, whole.subarray(cut));
      const cacheBefore = readFileSync(join(d, CACHE_FILE_NAME), 'utf8');
      const third = await scanCatalog([d]);
      expect(third.stats).toMatchObject({ files: 2, cached: 1, readWhole: 0, readOnward: 1 });
      expect(third.entries.map((e) => [e.name, e.packets])).toEqual(second.entries.map((e) => [e.name, e.partial ? 300 : 50]));
      expect(third.problems).toEqual([]);
      expect(readFileSync(join(d, CACHE_FILE_NAME), 'utf8')).toBe(cacheBefore);

      // A file added moves the directory: listed again, every file looked at, the changed one read.
      writeFileSync(join(d, formatFileName(BASE_NS + 100_000n * MS, 'eth1')), buildPcap(traffic(BASE_NS + 100_000n * MS, 5, 5)));
      const fourth = await scanCatalog([d]);
      expect(fourth.stats).toMatchObject({ files: 3, readWhole: 2 });
      expect(fourth.problems.map((p) => p.path)).toEqual([closedPath]);

      // Off (a command, the tests): every scan looks at every file.
      reuseUnchangedScans(false);
      still();
      await scanCatalog([d]);
      still();
      expect((await scanCatalog([d])).stats).toMatchObject({ files: 3, cached: 3 });
      utimesSync(closedPath, new Date(), new Date(Date.now() + 9000));
      still();
      expect((await scanCatalog([d])).stats).toMatchObject({ files: 3, readWhole: 1 });
    } finally {
      reuseUnchangedScans(false);
    }
  });

  it('given a query\'s range, takes closed files the cache places outside it from the cache without a stat, and looks at every file that may meet it', async () => {
    const d = dir();
    const at = (s: bigint) => BASE_NS + s * 1000n * MS;
    const write = (s: bigint, seed: number) => {
      const path = join(d, formatFileName(at(s), 'eth0'));
      writeFileSync(path, buildPcap(traffic(at(s), 50, seed)));
      return path;
    };
    const before = write(0n, 1);
    const inside = write(10n, 2);
    const after = write(20n, 3);
    const part = join(d, `${formatFileName(at(30n), 'eth0')}.part`);
    writeFileSync(part, buildPcap(traffic(at(30n), 20, 4)));
    const first = await scanCatalog([d]);
    expect(first.stats).toMatchObject({ files: 4, readWhole: 4, outOfRange: 0 });
    const range = { fromNs: at(10n), toNs: at(11n) };

    // Every closed file changed in place (size and mtime), each keeping to its own time: only the
    // one the range meets is read again.
    const grow = (path: string, fromNs: bigint, seed: number) => appendFileSync(path, buildPcap(traffic(fromNs, 5, seed)).subarray(GLOBAL_HEADER_LEN));
    grow(before, at(1n), 10);
    grow(inside, at(10n) + 700n * MS, 11);
    grow(after, at(21n), 12);
    const second = await scanCatalog([d], { range });
    expect(second.stats).toMatchObject({ files: 4, cached: 3, outOfRange: 2, readOnward: 1, readWhole: 0 });
    const packets = (c: typeof second) => Object.fromEntries(c.entries.map((e) => [e.path, e.packets]));
    // The part file (it grows) and the file the range meets are looked at; the others are as they were.
    expect(packets(second)).toEqual({ [before]: 50, [inside]: 55, [after]: 50, [part]: 20 });
    const chosen = selectFiles(second.entries, range).streams.flatMap((s) => s.files.map((f) => f.path));
    expect(chosen).toEqual(selectFiles((await scanCatalog([d], { writeCache: false })).entries, range).streams.flatMap((s) => s.files.map((f) => f.path)));
    expect(chosen).toEqual([inside]);

    // A file new to the cache is read even outside the range; a name that is no longer a regular
    // file is not taken from the cache.
    const late = write(50n, 5);
    rmSync(after);
    symlinkSync(late, after);
    const third = await scanCatalog([d], { range });
    expect(third.stats).toMatchObject({ files: 4, outOfRange: 1, readWhole: 1 });
    expect(third.entries.map((e) => e.path)).toEqual([before, inside, part, late]);
    expect(third.problems.map((p) => p.path)).toEqual([after]);

    // Without a range every file is looked at, and the changes outside it show.
    const fourth = await scanCatalog([d]);
    expect(fourth.stats).toMatchObject({ files: 4, outOfRange: 0, readOnward: 1 });
    expect(fourth.entries.find((e) => e.path === before)!.packets).toBe(55);
  });

  it('survives a corrupt cache, and a store it may not write', async () => {
    const d = dir();
    writeCaptureFile(d, 'eth0', traffic(BASE_NS, 10, 12));
    writeFileSync(join(d, CACHE_FILE_NAME), '{"format":"qe-packets-catalog","version":1,"files":{"x":[1,2');
    const a = await scanCatalog([d]);
    expect(a.entries).toHaveLength(1);
    expect(a.stats.readWhole).toBe(1);
    expect(JSON.parse(readFileSync(join(d, CACHE_FILE_NAME), 'utf8'))).toMatchObject({ version: 1 });

    const b = dir();
    writeCaptureFile(b, 'eth0', traffic(BASE_NS, 10, 12));
    const c = await scanCatalog([b], { writeCache: false });
    expect(c.entries).toHaveLength(1);
    expect(existsSync(join(b, CACHE_FILE_NAME))).toBe(false);

    // A cache that cannot be written is reported and the scan still succeeds. (Tests run as root,
    // so permissions cannot stop the write: a directory in the cache file's place does.)
    mkdirSync(join(b, CACHE_FILE_NAME));
    const e = await scanCatalog([b, join(b, 'missing')]);
    expect(e.entries).toHaveLength(1);
    expect(e.stats.cacheErrors.map((p) => p.path)).toEqual([b]);
    expect(e.problems.map((p) => p.path)).toEqual([join(b, 'missing')]);
    expect(e.problems[0]!.message).toContain('cannot list store directory');
  });

  it('reports damaged and foreign files as problems without dropping or touching them', async () => {
    const d = dir();
    const ok = writeCaptureFile(d, 'eth0', traffic(BASE_NS, 10, 13));
    const damaged = writeCaptureFile(d, 'eth1', traffic(BASE_NS + MS, 10, 14));
    appendFileSync(damaged.path, Buffer.from([1, 2, 3]));
    const foreign = join(d, formatFileName(BASE_NS, 'eth2'));
    writeFileSync(foreign, 'hello');
    const before = readFileSync(damaged.path);
    const cat = await scanCatalog([d]);
    expect(cat.entries.map((e) => e.iface).sort()).toEqual(['eth0', 'eth1']);
    expect(cat.entries.find((e) => e.iface === 'eth1')!.packets).toBe(10);
    expect(cat.problems.map((p) => p.path).sort()).toEqual([damaged.path, foreign].sort());
    expect(readFileSync(damaged.path).equals(before)).toBe(true);
    expect(existsSync(ok.path) && existsSync(foreign)).toBe(true);
  });

  it('records the true span of a file whose clock stepped back, and that it is not sorted', async () => {
    const d = dir();
    const packets = traffic(BASE_NS, 20, 15);
    packets[10] = { ...packets[10]!, tsNs: BASE_NS - 5000n * MS };
    const f = writeCaptureFile(d, 'eth0', packets);
    const [e] = (await scanCatalog([d])).entries;
    expect(pick(e!)).toEqual(capinfosSpan(f.path));
    expect(e!.sorted).toBe(false);
    expect(e!.firstNs).toBe(BASE_NS - 5000n * MS);
  });

  it('catalogFile reads a single file the same way a scan does', async () => {
    const d = dir();
    const f = writeCaptureFile(d, 'eth3', traffic(BASE_NS, 25, 16));
    const [scanned] = (await scanCatalog([d], { writeCache: false })).entries;
    expect(catalogFile(f.path)).toEqual(scanned);
  });

  it('still reads a file whose record header is damaged up to that record', async () => {
    const d = dir();
    const packets = traffic(BASE_NS, 5, 17);
    const f = writeCaptureFile(d, 'eth0', packets, { partial: true });
    appendFileSync(f.path, encodeRecordHeader({ tsNs: BASE_NS, caplen: 0x7fffffff, origlen: 1 }));
    const [e] = (await scanCatalog([d])).entries;
    expect(e).toMatchObject({ packets: 5, partial: true });
  });
});

describe('scanCatalog and what else sits in the store folder', () => {
  it('skips a symbolic link loop, a link out of the store and a directory named like captures, reporting each once by name', async () => {
    const d = dir();
    const elsewhere = dir();
    const ok = writeCaptureFile(d, 'eth0', traffic(BASE_NS, 10, 21));
    const outside = writeCaptureFile(elsewhere, 'eth9', traffic(BASE_NS, 3, 22));
    const loop = join(d, formatFileName(BASE_NS + MS, 'eth1'));
    symlinkSync(loop, loop);
    const link = join(d, formatFileName(BASE_NS + 2n * MS, 'eth2'));
    symlinkSync(outside.path, link);
    const sub = join(d, formatFileName(BASE_NS + 3n * MS, 'eth3'));
    mkdirSync(sub);
    const cat = await scanCatalog([d]);
    expect(cat.entries.map((e) => e.path)).toEqual([ok.path]);
    expect(cat.problems.sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: loop, message: 'a symbolic link, not a regular file: skipped' },
      { path: link, message: 'a symbolic link, not a regular file: skipped' },
      { path: sub, message: 'a directory, not a regular file: skipped' },
    ]);
  });

  it('never writes its cache through a symbolic link planted where the temporary file would go', async () => {
    const d = dir();
    writeCaptureFile(d, 'eth0', traffic(BASE_NS, 10, 23));
    const victim = join(dir(), 'precious');
    writeFileSync(victim, 'keep me');
    // Every name a predictable temporary name could take in the next few seconds.
    const now = Date.now();
    for (let t = now; t < now + 4000; t++) symlinkSync(victim, join(d, `${CACHE_FILE_NAME}.${process.pid}.${t}.tmp`));
    const cat = await scanCatalog([d]);
    expect(cat.stats.cacheErrors).toEqual([]);
    expect(readFileSync(victim, 'utf8')).toBe('keep me');
    expect(JSON.parse(readFileSync(join(d, CACHE_FILE_NAME), 'utf8'))).toMatchObject({ version: 1 });
  });

  it('a FIFO in place of the cache file does not block the scan', async () => {
    const d = dir();
    writeCaptureFile(d, 'eth0', traffic(BASE_NS, 10, 24));
    execFileSync('mkfifo', [join(d, CACHE_FILE_NAME)]);
    const script = `import(${JSON.stringify(join(root, 'build/daemon/src/store/catalog.js'))}).then(async (m) => console.log((await m.scanCatalog([${JSON.stringify(d)}])).entries.length))`;
    const res = await execa(process.execPath, ['-e', script], { timeout: 10_000, reject: false });
    expect(res.timedOut, 'the scan blocked on the FIFO').toBe(false);
    expect(res.stdout.trim()).toBe('1');
  });
});

describe('selectFiles', () => {
  it('picks the files whose span meets the range and chains each interface in time order', async () => {
    const root = dir();
    const store = buildFixtureStore(root);
    const cat = await scanCatalog(store.dirs);
    const eth0 = cat.entries.filter((e) => e.iface === 'eth0');
    const from = eth0[1]!.firstNs + 1n;
    const to = eth0[2]!.firstNs + 1n;
    const sel = selectFiles(cat.entries, { fromNs: from, toNs: to });
    for (const s of sel.streams) {
      for (let i = 1; i < s.files.length; i++) expect(s.files[i]!.firstNs >= s.files[i - 1]!.lastNs).toBe(true);
    }
    const chosen = new Set(sel.streams.flatMap((s) => s.files.map((f) => f.path)));
    for (const e of cat.entries) {
      const meets = e.firstNs <= to && (e.partial || e.lastNs >= from);
      expect(chosen.has(e.path), e.name).toBe(meets);
    }
    expect(sel.streams.map((s) => s.iface)).toEqual(['eth0', 'eth1', 'eth2']);
    expect(selectFiles(cat.entries, { fromNs: from, toNs: to, ifaces: ['eth1'] }).streams.map((s) => s.iface)).toEqual(['eth1']);
  });

  it('gives files of one interface that overlap in time streams of their own', async () => {
    const d = dir();
    writeCaptureFile(d, 'eth0', traffic(BASE_NS, 50, 18));
    writeCaptureFile(d, 'eth0', traffic(BASE_NS + 5n * MS, 50, 19)); // a second helper on eth0
    writeCaptureFile(d, 'eth0', traffic(BASE_NS + 100_000n * MS, 5, 20));
    const cat = await scanCatalog([d]);
    const sel = selectFiles(cat.entries, { fromNs: 0n, toNs: BASE_NS * 2n });
    expect(sel.streams.map((s) => s.files.length)).toEqual([2, 1]);
  });
});

function capinfosSpan(path: string) {
  return capinfos(path);
}
