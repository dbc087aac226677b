// The space ledger on its own: what it grants and what it deletes, driven by a fake clock and an
// in-memory store, so its rules can change with a fast, unprivileged guard next to the live tests.
import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { indexPathFor } from '../daemon/src/index/format.js';
import { removeCaptureFile } from '../daemon/src/store/index-files.js';
import { measureStore } from '../daemon/src/store/usage.js';
import { tempDir } from './lib/fixture.js';
import { closedFiles, indexFiles } from './lib/index-fixture.js';
import { StoreLedger, type LedgerDeps } from '../daemon/src/store/ledger.js';
import type { StoredFile } from '../daemon/src/store/usage.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** A store in memory: files by path, a log of what was removed, paths that refuse removal. */
class MemoryStore {
  files = new Map<string, StoredFile>();
  removed: string[] = [];
  refuse = new Map<string, string>();
  t = 0;
  add(path: string, firstNs: bigint, size = MiB): StoredFile {
    const f = { path, firstNs, size };
    this.files.set(path, f);
    return f;
  }
  /** What a measurement of the disk finds: closed files and their total. */
  measure(extraBytes = 0): [StoredFile[], number] {
    const closed = [...this.files.values()];
    return [closed, closed.reduce((n, f) => n + f.size, 0) + extraBytes];
  }
  deps: LedgerDeps = {
    now: () => this.t,
    remove: async (path) => {
      const code = this.refuse.get(path);
      if (code) throw Object.assign(new Error(`${code}: cannot remove ${path}`), { code });
      if (!this.files.delete(path)) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      this.removed.push(path);
    },
  };
}

function ledger(store: MemoryStore, mode: 'circular' | 'linear', capacity: number, opts: { fileSize?: number; physicalFree?: () => Promise<number> } = {}) {
  const deleted: string[] = [];
  const undeletable: string[] = [];
  const l = new StoreLedger(
    mode === 'circular',
    capacity,
    opts.fileSize ?? MiB,
    (f) => deleted.push(f.path),
    opts.physicalFree,
    (f, e) => undeletable.push(`${f.path} ${e.code}`),
    store.deps,
  );
  l.measured(...store.measure());
  return { l, deleted, undeletable };
}

describe('grants', () => {
  it('a first grant is half the capacity per helper; a second helper shares what is left', async () => {
    const s = new MemoryStore();
    const { l } = ledger(s, 'linear', 8 * MiB);
    expect(await l.open('eth0')).toBe(4 * MiB);
    // Two helpers now: each is held to a quarter of the capacity.
    expect(await l.open('eth1')).toBe(2 * MiB);
    expect(l.usedBytes).toBe(0);
    expect(l.full).toBe(false);
  });

  it('a helper is granted several seconds of its rate, the rate measured on the injected clock', async () => {
    for (const [elapsedMs, expected] of [
      [1000, 600 * MiB + 4 * 600 * MiB], // 600 MiB in 1 s: four seconds ahead
      [2000, 600 * MiB + 4 * 300 * MiB], // the same bytes in 2 s: half the rate, half the grant
    ] as const) {
      const s = new MemoryStore();
      const { l } = ledger(s, 'linear', 100 * GiB);
      expect(await l.open('eth0')).toBe(GiB);
      s.t = elapsedMs;
      expect(await l.update('eth0', 600 * MiB, 0)).toBe(expected);
    }
  });

  it('no new grant while more than half the target is left', async () => {
    const s = new MemoryStore();
    const { l } = ledger(s, 'linear', 8 * MiB);
    await l.open('eth0');
    s.t = 1000;
    expect(await l.update('eth0', 1 * MiB, 0)).toBeUndefined(); // 3 MiB left of a 4 MiB target
    s.t = 2000;
    expect(await l.update('eth0', 3 * MiB, 0)).toBe(7 * MiB); // 1 MiB left: topped up to the target
  });

  it('an update from a helper the ledger does not know grants nothing', async () => {
    const { l } = ledger(new MemoryStore(), 'linear', 8 * MiB);
    expect(await l.update('eth9', 1, 0)).toBeUndefined();
  });
});

describe('circular mode deletes the oldest whole files, across paths and interfaces', () => {
  it('deletes in the order of first packet, whatever the directory or interface; ties go by path', async () => {
    const s = new MemoryStore();
    s.add('/b/eth1-3', 3n);
    s.add('/a/eth0-5', 5n);
    s.add('/b/eth0-1', 1n);
    s.add('/a/eth1-2', 2n);
    s.add('/b/eth1-2', 2n); // same first packet as /a/eth1-2: the path decides
    s.add('/a/eth0-4', 4n);
    s.add('/a/eth0-6', 6n);
    s.add('/b/eth1-7', 7n);
    const { l, deleted } = ledger(s, 'circular', 8 * MiB);
    expect(l.usedBytes).toBe(8 * MiB);
    expect(l.oldestNs).toBe(1n);
    // 4 MiB to grant in a full store: the four oldest files go, and nothing else.
    expect(await l.open('eth0')).toBe(4 * MiB);
    expect(s.removed).toEqual(['/b/eth0-1', '/a/eth1-2', '/b/eth1-2', '/b/eth1-3']);
    expect(deleted).toEqual(s.removed);
    expect(l.deletedFiles).toBe(4);
    expect(l.deletedBytes).toBe(4 * MiB);
    expect(l.oldestNs).toBe(4n);
  });

  it('a file a helper closes late takes its place by age, not at the end', async () => {
    const s = new MemoryStore();
    s.add('/a/eth0-10', 10n);
    s.add('/a/eth0-20', 20n);
    const { l } = ledger(s, 'circular', 4 * MiB);
    expect(await l.open('eth1')).toBe(2 * MiB);
    // eth1's file began before eth0's newest one: it is closed last but is not the newest.
    l.fileClosed('eth1', s.add('/b/eth1-15', 15n));
    s.t = 1000;
    // eth1 wrote its whole grant (2 MiB, its file counted in it): 2 MiB more takes two old files.
    expect(await l.update('eth1', 2 * MiB, 0)).toBe(4 * MiB);
    expect(s.removed).toEqual(['/a/eth0-10', '/b/eth1-15']);
  });

  it("deleting a helper's own file frees its account, not the settled store", async () => {
    const s = new MemoryStore();
    const { l } = ledger(s, 'circular', 4 * MiB);
    expect(await l.open('eth0')).toBe(2 * MiB);
    l.fileClosed('eth0', s.add('/a/eth0-1', 1n));
    l.fileClosed('eth0', s.add('/a/eth0-2', 2n));
    s.t = 1000;
    expect(await l.update('eth0', 2 * MiB, 0)).toBe(4 * MiB); // room under the capacity: nothing deleted
    expect(s.removed).toEqual([]);
    l.fileClosed('eth0', s.add('/a/eth0-3', 3n));
    l.fileClosed('eth0', s.add('/a/eth0-4', 4n));
    s.t = 2000;
    expect(await l.update('eth0', 4 * MiB, 0)).toBe(6 * MiB);
    expect(s.removed).toEqual(['/a/eth0-1', '/a/eth0-2']);
    expect(l.usedBytes).toBe(2 * MiB); // 4 MiB appended, 2 MiB of it deleted
    l.measured(...s.measure());
    expect(l.usedBytes).toBe(2 * MiB); // and the disk agrees
  });

  it('keeps room on the disk itself when other data fills it, though the capacity is not reached', async () => {
    const s = new MemoryStore();
    for (let i = 1; i <= 4; i++) s.add(`/a/eth0-${i}`, BigInt(i));
    let free = 0; // the filesystem is full of something else
    const physicalFree = async () => free;
    const { l } = ledger(s, 'circular', 100 * MiB, { physicalFree });
    // Two files of slack are needed; each deletion gives back 1 MiB.
    const gone = await (async () => {
      const orig = s.deps.remove;
      s.deps.remove = async (p) => {
        await orig(p);
        free += MiB;
      };
      return l.keepDiskRoom();
    })();
    expect(gone).toBe(2);
    expect(s.removed).toEqual(['/a/eth0-1', '/a/eth0-2']);
  });
});

describe('linear mode stops granting at the capacity', () => {
  it('grants what is left, then nothing; deletes nothing; full until a measurement finds room', async () => {
    const s = new MemoryStore();
    for (let i = 1; i <= 6; i++) s.add(`/a/eth0-${i}`, BigInt(i));
    const { l } = ledger(s, 'linear', 8 * MiB);
    expect(await l.open('eth0')).toBe(2 * MiB); // 4 MiB wanted, 2 MiB left
    expect(l.full).toBe(true);
    s.t = 1000;
    expect(await l.update('eth0', 2 * MiB, 0)).toBeUndefined();
    expect(await l.diskFull()).toBe(0);
    expect(s.removed).toEqual([]);
    // The user frees room: the next measurement grants it.
    s.files.delete('/a/eth0-1');
    s.files.delete('/a/eth0-2');
    l.measured(...s.measure(2 * MiB)); // the helper's 2 MiB are on disk too
    expect(l.full).toBe(false);
    expect(await l.regrant()).toEqual(new Map([['eth0', 4 * MiB]]));
    expect(l.full).toBe(true);
  });
});

describe('a full linear store', () => {
  it('resumes for a file of room, not for the bytes its own indexes give back', async () => {
    const s = new MemoryStore();
    const { l } = ledger(s, 'linear', 8 * MiB);
    expect(await l.open('eth0')).toBe(4 * MiB);
    s.t = 1000;
    expect(await l.update('eth0', 4 * MiB, 0)).toBe(8 * MiB);
    s.t = 2000;
    expect(await l.update('eth0', 8 * MiB, 0)).toBeUndefined(); // full
    // A closed file's complete index replaced its open file's larger one: 20 KiB less on disk.
    s.add('/a/eth0-1', 1n, 8 * MiB - 20 * 1024);
    l.measured(...s.measure());
    expect(await l.regrant()).toEqual(new Map());
    // A file removed by hand: a file's worth of room, granted.
    s.files.delete('/a/eth0-1');
    s.add('/a/eth0-1', 1n, 7 * MiB - 20 * 1024);
    l.measured(...s.measure());
    expect(await l.regrant()).toEqual(new Map([['eth0', 8 * MiB + MiB + 20 * 1024]]));
  });
});

describe('files removed by hand', () => {
  it("a helper's files removed behind the ledger's back free room at the next measurement", async () => {
    const s = new MemoryStore();
    const { l } = ledger(s, 'linear', 8 * MiB);
    expect(await l.open('eth0')).toBe(4 * MiB);
    s.t = 1000;
    l.fileClosed('eth0', s.add('/a/eth0-1', 1n, 3 * MiB));
    expect(await l.update('eth0', 4 * MiB, 0)).toBe(8 * MiB); // the last 4 MiB of the store
    expect(l.usedBytes).toBe(4 * MiB);
    s.files.delete('/a/eth0-1'); // by hand
    l.measured(...s.measure(1 * MiB)); // its open file holds the other 1 MiB
    expect(l.usedBytes).toBe(1 * MiB);
    expect(await l.update('eth0', 4 * MiB, 0)).toBeUndefined(); // still 4 MiB of grant left
    s.t = 2000;
    expect(await l.update('eth0', 8 * MiB, 0)).toBe(11 * MiB); // the 3 MiB freed by hand, granted again
  });

  it('a file already gone when circular mode deletes it counts as deleted; no error is raised', async () => {
    const s = new MemoryStore();
    for (let i = 1; i <= 8; i++) s.add(`/a/eth0-${i}`, BigInt(i));
    const { l, undeletable } = ledger(s, 'circular', 8 * MiB);
    s.files.delete('/a/eth0-1'); // removed by hand since the measurement
    expect(await l.open('eth0')).toBe(4 * MiB);
    expect(s.removed).toEqual(['/a/eth0-2', '/a/eth0-3', '/a/eth0-4']);
    expect(undeletable).toEqual([]);
    expect(l.deletedFiles).toBe(4);
  });
});

describe('a helper that restarts in a loop', () => {
  it('its grants do not pile up: the store is measured at each exit, and no other file is deleted', async () => {
    const s = new MemoryStore();
    for (let i = 1; i <= 8; i++) s.add(`/a/eth1-${i}`, BigInt(i));
    const { l } = ledger(s, 'circular', 16 * MiB);
    // The first start takes 8 MiB of a 16 MiB store holding 8 MiB: nothing to delete.
    for (let i = 0; i < 50; i++) {
      s.t += 10;
      expect(await l.open('eth0')).toBe(8 * MiB);
      l.close('eth0'); // exits at once, nothing written
      l.measured(...s.measure()); // what retention does at every helper exit
    }
    expect(s.removed).toEqual([]);
    expect(l.usedBytes).toBe(8 * MiB);
  });

  it('(why the measurement is needed) an exited helper keeps its grant reserved until the store is measured', async () => {
    const s = new MemoryStore();
    for (let i = 1; i <= 8; i++) s.add(`/a/eth1-${i}`, BigInt(i));
    const { l } = ledger(s, 'circular', 16 * MiB);
    await l.open('eth0');
    l.close('eth0');
    expect(l.usedBytes).toBe(16 * MiB); // 8 on disk + 8 it may have written
    await l.open('eth0');
    expect(s.removed).toHaveLength(8); // all of eth1's files made room for a grant nobody used
  });
});

describe('a file that cannot be deleted', () => {
  it('is reported, skipped, and the next oldest goes instead; a later measurement tries it again', async () => {
    const s = new MemoryStore();
    for (let i = 1; i <= 8; i++) s.add(`/a/eth0-${i}`, BigInt(i));
    s.refuse.set('/a/eth0-1', 'EACCES');
    const { l, undeletable } = ledger(s, 'circular', 8 * MiB);
    expect(await l.open('eth0')).toBe(4 * MiB);
    expect(undeletable).toEqual(['/a/eth0-1 EACCES']);
    // Its 1 MiB still counts: the four next oldest made the room.
    expect(s.removed).toEqual(['/a/eth0-2', '/a/eth0-3', '/a/eth0-4', '/a/eth0-5']);
    expect(l.deletedFiles).toBe(4);
    expect(s.files.has('/a/eth0-1')).toBe(true);
    s.refuse.clear();
    l.measured(...s.measure());
    expect(l.oldestNs).toBe(1n);
    // A second helper needs 2 MiB of a store with no room left: the file refused before goes first.
    expect(await l.open('eth1')).toBe(2 * MiB);
    expect(s.removed.slice(4)).toEqual(['/a/eth0-1', '/a/eth0-6']);
  });
});

describe('with real files: a file goes with its index', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => cleanups.splice(0).forEach((c) => c()));
  function dir(): string {
    const t = tempDir('ledger');
    cleanups.push(t.cleanup);
    return t.dir;
  }
  const index = indexFiles;

  it('circular retention deletes a file with its index, its `.part` index and a stray temporary one', async () => {
    const d = dir();
    const files = closedFiles(d, 3);
    index(files.map((f) => f.path));
    const old = files[0]!.path;
    writeFileSync(indexPathFor(old) + '.tmp', 'x');
    writeFileSync(indexPathFor(`${old}.part`), 'y');
    const u = await measureStore([d]);
    // The capacity holds two of the three files and their indexes: the oldest must go, index and all.
    const l = new StoreLedger(true, u.totalBytes - 1, 4096);
    l.measured(u.closed, u.totalBytes);
    await l.open('eth1');
    expect(l.deletedFiles).toBeGreaterThanOrEqual(1);
    expect(l.deletedBytes).toBeGreaterThanOrEqual(u.closed[0]!.size);
    const left = readdirSync(d);
    expect(left.filter((n) => n.startsWith(old.slice(d.length + 1)))).toEqual([]);
    expect(left.filter((n) => n.endsWith('.qeidx')).length).toBe(3 - l.deletedFiles);
  });
  it('a capture file removed by hand: its index still goes, and the caller hears ENOENT', async () => {
    const d = dir();
    const [f] = closedFiles(d, 1);
    index([f!.path]);
    execFileSync('rm', [f!.path]);
    await expect(removeCaptureFile(f!.path)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(readdirSync(d)).toEqual([]);
  });
});
