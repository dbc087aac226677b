// The catalog: what the store holds (file, interface, time span, packets, bytes), built by a scan
// of the store directories. Files the cache already knows cost a stat; a `.part` file that grew is
// read on from where the last scan stopped; only new or changed files are read whole.
import { closeSync, lstatSync, readSync, readdirSync, type Dirent } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { GLOBAL_HEADER_LEN, PcapFormatError, RECORD_HEADER_LEN, decodeGlobalHeader, decodeRecordHeader } from '../pcap/format.js';
import { loadCache, saveCache, type CachedFile } from './catalog-cache.js';
import { PART_EXT, parseFileName, type CaptureFileName } from './filename.js';
import { PcapTooShortError, fileKind, openRegular, summarizePcap, type SummaryResume } from './pcap-summary.js';
import { mayHoldRange } from './select-files.js';

export interface CatalogEntry {
  path: string;
  /** The store directory holding the file. */
  dir: string;
  name: string;
  iface: string;
  /** Earliest and latest record timestamps (the name's time while a file has no record yet). */
  firstNs: bigint;
  lastNs: bigint;
  packets: number;
  /** Captured bytes: the sum of the records' caplen. */
  bytes: number;
  /** Size on disk. */
  size: number;
  /** A `.pcap.part`: being written, or left by a crash and not yet repaired. */
  partial: boolean;
  linktype: number;
  snaplen: number;
  /** Every record is no older than the one before (lets extraction stop early in the file). */
  sorted: boolean;
  /** The first record's time as an index names its file (catalog-cache.ts); undefined when not known. */
  firstRecordNs?: bigint;
}

export interface CatalogProblem {
  path: string;
  message: string;
}

export interface ScanStats {
  files: number;
  /** Taken from the cache without opening the file. */
  cached: number;
  /** Of those, taken without even a stat: closed files the scan's range rules out (ScanOptions.range). */
  outOfRange: number;
  /** Read from the start. */
  readWhole: number;
  /** Read on from where the last scan stopped (a file that grew, or a part file since renamed). */
  readOnward: number;
  /** Bytes of record stream walked. */
  bytesWalked: number;
  elapsedMs: number;
  /** Why a cache could not be written (the scan itself still succeeded). */
  cacheErrors: CatalogProblem[];
}

export interface Catalog {
  /** Sorted by first timestamp, then name. */
  entries: CatalogEntry[];
  /**
   * Names that look like captures but cannot be read as such (damaged, foreign, or not a regular
   * file), one entry per name; never removed by the scan.
   */
  problems: CatalogProblem[];
  stats: ScanStats;
}

export interface ScanOptions {
  /** Persist what was learnt (default true). */
  writeCache?: boolean;
  /**
   * The time range the caller will select files of (selectFiles): a closed file the cache already
   * knows and places wholly outside it is listed as the cache has it, without a stat. A query's
   * cost then follows the files of its range, not the store: a stat is ~13 us a file here, so
   * 0.3-0.5 s a query on a store of 20,000-40,000 files, the same for a one-minute range as for a
   * day. Such a file changed in place (nothing in the product changes a closed file) is not seen,
   * and it could only matter to a query whose range it meets, where it is looked at as always.
   */
  range?: { fromNs: bigint; toNs: bigint };
}

// Sync syscalls are several times faster than libuv's pool for 40,000 stats; giving the event
// loop a turn every so often keeps a daemon responsive during the scan.
const YIELD_EVERY = 2000;

/*
 * A long-lived process (the daemon answering queries) may reuse its last scan of a directory
 * that has not changed since: a scan costs an lstat a file, ~13 µs a file here, so 0.3-0.5 s a
 * query on a store of 20,000-40,000 files (20-40 TB at the default 1 GiB), growing with the store.
 * A directory's mtime moves with every file added, renamed or removed in it (the helper's
 * rotations, retention, indexes, the cache itself), not with a file growing: `.part` files are
 * still looked at on every scan, the others are taken as they were. Reused only when the
 * directory had been still for a while before it was listed (REUSE_QUIET_MS: two changes in one
 * tick of the filesystem's clock leave one mtime) and for at most REUSE_MAX_MS, so a closed file
 * changed in place (nothing in the product does that) is seen within that. Off by default: a
 * command scans once, and tests change files under a scan's feet on purpose.
 */
const REUSE_QUIET_MS = 2000;
const REUSE_MAX_MS = 10_000;
let reuseScans = false;

interface DirScan {
  mtimeNs: bigint;
  ino: bigint;
  atMs: number;
  names: Dirent[];
  files: Map<string, CachedFile>;
  entries: Map<string, CatalogEntry>;
}
const lastScans = new Map<string, DirScan>();

/** Lets this process reuse its last scan of an unchanged store directory (the daemon's API). */
export function reuseUnchangedScans(on: boolean): void {
  reuseScans = on;
  lastScans.clear();
}

export async function scanCatalog(paths: readonly string[], opts: ScanOptions = {}): Promise<Catalog> {
  const started = performance.now();
  const stats: ScanStats = { files: 0, cached: 0, outOfRange: 0, readWhole: 0, readOnward: 0, bytesWalked: 0, elapsedMs: 0, cacheErrors: [] };
  const entries: CatalogEntry[] = [];
  const problems: CatalogProblem[] = [];
  const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);

  for (const dir of paths) {
    // The directory's own stat before it is listed: a change during the listing moves it.
    const dirStat = reuseScans ? lstatSync(dir, { bigint: true, throwIfNoEntry: false }) : undefined;
    const listedAtMs = Date.now();
    const last = lastScans.get(dir);
    lastScans.delete(dir);
    const reuse = dirStat && last && last.mtimeNs === dirStat.mtimeNs && last.ino === dirStat.ino && listedAtMs - last.atMs < REUSE_MAX_MS ? last : undefined;
    let names: Dirent[];
    try {
      // With their types (d_type): a file taken without a stat is still known to be a regular one.
      names = reuse ? reuse.names : readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      problems.push({ path: dir, message: `cannot list store directory: ${(e as Error).message}` });
      continue;
    }
    const cache = reuse ? reuse.files : loadCache(dir);
    const next = new Map<string, CachedFile>();
    const dirEntries = new Map<string, CatalogEntry>();
    let dirty = false;
    let grewPart = false;
    let sinceYield = 0;
    // A file in the catalog; `reusable` unless it was taken on trust for a range (a later scan of
    // another range must look at it).
    const list = (name: string, entry: CatalogEntry, file: CachedFile, reusable: boolean) => {
      entries.push(entry);
      next.set(name, file);
      stats.files++;
      if (!entry.partial) trailingBytes(entry.path, file, problems);
      if (reusable) dirEntries.set(name, entry);
    };

    for (const dirent of names) {
      const name = dirent.name;
      const kept = reuse?.entries.get(name);
      if (kept && !kept.partial) {
        stats.cached++;
        list(name, kept, cache.get(name)!, true);
        continue;
      }
      const parsed = parseFileName(name);
      if (!parsed) continue;
      const path = join(dir, name);
      const cachedRow = opts.range && !parsed.partial && dirent.isFile() ? cache.get(name) : undefined;
      if (cachedRow) {
        const entry = toEntry(path, dir, name, parsed, cachedRow);
        if (!mayHoldRange(entry, opts.range!.fromNs, opts.range!.toNs)) {
          stats.cached++;
          stats.outOfRange++;
          list(name, entry, cachedRow, false);
          continue;
        }
      }
      if (++sinceYield >= YIELD_EVERY) {
        sinceYield = 0;
        await new Promise((resolve) => setImmediate(resolve));
      }
      // lstat, not stat: a symbolic link (a loop, or one out of the store) is not a capture file.
      const st = lstatSync(path, { throwIfNoEntry: false });
      if (!st) continue; // removed by retention since the readdir
      if (!st.isFile()) {
        problems.push({ path, message: `${fileKind(st)}, not a regular file: skipped` });
        continue;
      }

      let known = cache.get(name);
      // A part file renamed on close keeps its inode: carry on from what was read under the old name.
      const renamedFrom = parsed.partial ? undefined : cache.get(name + PART_EXT);
      if (!known && renamedFrom && renamedFrom.ino === st.ino) {
        known = renamedFrom;
        dirty = true; // the cache must learn the new name even when nothing needs reading
      }

      let file: CachedFile | undefined;
      if (known && known.ino === st.ino && known.size === st.size && known.mtimeMs === st.mtimeMs) {
        file = known;
        stats.cached++;
      } else {
        const resume = known && known.ino === st.ino && st.size > known.size ? known : undefined;
        try {
          file = readFile(path, resume, buffer);
        } catch (e) {
          if (e instanceof PcapTooShortError && parsed.partial) continue; // just created: nothing in it yet
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
          if (e instanceof PcapFormatError || e instanceof PcapTooShortError || isErrno(e)) {
            problems.push({ path, message: (e as Error).message });
            continue;
          }
          throw e;
        }
        if (resume) stats.readOnward++;
        else stats.readWhole++;
        stats.bytesWalked += file.wholeEnd - (resume?.wholeEnd ?? 0);
        if (parsed.partial) grewPart = true;
        else dirty = true;
      }
      list(name, toEntry(path, dir, name, parsed, file), file, true);
    }
    if (next.size !== cache.size) dirty = true;
    // Only a part file that grew: a process that keeps its scans keeps how far it read in memory,
    // so that its writing the cache does not itself make the directory look changed to its next scan.
    if (grewPart && !reuseScans) dirty = true;
    let saved = false;
    if (dirty && opts.writeCache !== false) {
      const err = saveCache(dir, next);
      if (err) stats.cacheErrors.push({ path: dir, message: err.message });
      saved = !err;
    }
    // Writing the cache moved the directory's mtime: the next scan lists it again (and is then reusable).
    if (dirStat && !saved && listedAtMs - Number(dirStat.mtimeMs) > REUSE_QUIET_MS) {
      lastScans.set(dir, { mtimeNs: dirStat.mtimeNs, ino: dirStat.ino, atMs: reuse ? reuse.atMs : listedAtMs, names, files: next, entries: dirEntries });
    }
  }

  entries.sort((a, b) => (a.firstNs < b.firstNs ? -1 : a.firstNs > b.firstNs ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  stats.elapsedMs = performance.now() - started;
  return { entries, problems, stats };
}

/** A closed file's bytes past its last whole record, as a problem. */
function trailingBytes(path: string, file: CachedFile, problems: CatalogProblem[]): void {
  if (file.size > file.wholeEnd) problems.push({ path, message: `${file.size - file.wholeEnd} bytes after the last whole record are not readable as records` });
}

/** What the capture helper reports of a file it closed (`file_closed`): all a scan would read it for. */
export interface ClosedFileFacts {
  path: string;
  packets: number;
  /** The file's size. */
  size: number;
  minNs: bigint;
  maxNs: bigint;
  lastNs: bigint;
  sorted: boolean;
}

/**
 * Puts files the capture helper closed into their directories' catalog caches, from what it
 * reported, so that no query has to read them back to learn their span (a store that grew by a
 * day of 10 Gbit/s since the last query would otherwise be walked whole, cold, by the next one).
 * Only the global header and the first record's header are read (40 bytes, just written: in the
 * page cache) and the file stat'ed; a file whose size is not the one reported (changed since) is
 * left for a scan to read. Returns what could not be done (costs only speed).
 */
export function rememberClosedFiles(files: readonly ClosedFileFacts[]): CatalogProblem[] {
  const problems: CatalogProblem[] = [];
  const byDir = new Map<string, ClosedFileFacts[]>();
  for (const f of files) {
    const list = byDir.get(dirname(f.path));
    if (list) list.push(f);
    else byDir.set(dirname(f.path), [f]);
  }
  for (const [dir, list] of byDir) {
    const cache = loadCache(dir);
    let added = 0;
    for (const f of list) {
      try {
        const st = lstatSync(f.path, { throwIfNoEntry: false });
        if (!st || !st.isFile() || st.size !== f.size || !parseFileName(basename(f.path))) continue;
        // The header and the first record's: the file was just written, so this is a page-cache read.
        const head = Buffer.alloc(GLOBAL_HEADER_LEN + RECORD_HEADER_LEN);
        const fd = openRegular(f.path);
        let got: number;
        try {
          got = readSync(fd, head, 0, head.length, 0);
        } finally {
          closeSync(fd);
        }
        if (got < GLOBAL_HEADER_LEN) continue;
        const h = decodeGlobalHeader(head);
        const first = f.packets > 0 && got === head.length ? decodeRecordHeader(head, GLOBAL_HEADER_LEN, h).tsNs : undefined;
        cache.set(basename(f.path), {
          size: st.size,
          mtimeMs: st.mtimeMs,
          ino: st.ino,
          wholeEnd: st.size,
          packets: f.packets,
          bytes: st.size - GLOBAL_HEADER_LEN - RECORD_HEADER_LEN * f.packets,
          minNs: f.minNs,
          maxNs: f.maxNs,
          lastNs: f.lastNs,
          sorted: f.sorted,
          linktype: h.linktype,
          snaplen: h.snaplen,
          nanos: h.nanos,
          ...(first !== undefined ? { firstRecordNs: first } : {}),
        });
        added++;
      } catch (e) {
        problems.push({ path: f.path, message: (e as Error).message });
      }
    }
    if (added) {
      const err = saveCache(dir, cache);
      if (err) problems.push({ path: dir, message: err.message });
    }
  }
  return problems;
}

/**
 * Reads one file for the catalog, without the cache: for a caller told of a single new file (the
 * daemon on a helper's `file_closed`) that should not rescan the store for it.
 */
export function catalogFile(path: string): CatalogEntry {
  const name = basename(path);
  const parsed = parseFileName(name);
  if (!parsed) throw new Error(`catalogFile: ${path} is not named like a capture file (<time>_<iface>.pcap)`);
  return toEntry(path, dirname(path), name, parsed, readFile(path, undefined, undefined));
}

function toEntry(path: string, dir: string, name: string, parsed: CaptureFileName, file: CachedFile): CatalogEntry {
  return {
    path,
    dir,
    name,
    iface: parsed.iface,
    firstNs: file.minNs ?? parsed.firstNs,
    lastNs: file.maxNs ?? parsed.firstNs,
    packets: file.packets,
    bytes: file.bytes,
    size: file.size,
    partial: parsed.partial,
    linktype: file.linktype,
    snaplen: file.snaplen,
    sorted: file.sorted,
    ...(file.firstRecordNs !== undefined ? { firstRecordNs: file.firstRecordNs } : {}),
  };
}

function readFile(path: string, resume: SummaryResume | undefined, buffer: Buffer | undefined): CachedFile {
  const s = summarizePcap(path, { ...(resume ? { resume } : {}), ...(buffer ? { buffer } : {}) });
  return {
    // The walk's own fstat, not the scan's stat: a file that grew in between is recorded as far
    // as it was walked, and the next scan reads on from there.
    size: s.size,
    mtimeMs: s.mtimeMs,
    ino: s.ino,
    wholeEnd: s.wholeEnd,
    packets: s.packets,
    bytes: s.bytes,
    ...(s.minNs !== undefined ? { minNs: s.minNs } : {}),
    ...(s.maxNs !== undefined ? { maxNs: s.maxNs } : {}),
    ...(s.lastNs !== undefined ? { lastNs: s.lastNs } : {}),
    sorted: s.sorted,
    linktype: s.header.linktype,
    snaplen: s.header.snaplen,
    nanos: s.header.nanos,
    ...(s.firstRecordNs !== undefined ? { firstRecordNs: s.firstRecordNs } : {}),
  };
}

function isErrno(e: unknown): boolean {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string';
}
