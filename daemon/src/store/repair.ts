// Start-up repair of `.pcap.part` files a crash left behind: each is cut to its last whole,
// plausible record, made durable and given its final name, so it joins the store as a closed file.
// A `.part` file another process is writing (an import, a daemon's capture) is locked by its
// writer and left alone (part-lock.ts), so repair may run while other writers use the store.
import {
  closeSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  openSync,
  readSync,
  readdirSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PcapFormatError, plausibleSpan, recordProblem } from '../pcap/format.js';
import { PART_EXT, formatFileName, parseFileName } from './filename.js';
import { lockPart } from './part-lock.js';
import { parseIndexName, removeIndexesOfSync } from './index-files.js';
import { StoreUnreadableError } from './usage.js';
import { NotRegularFileError, PcapTooShortError, fileKind, openRegular, summarizeFd, type RecordCheck } from './pcap-summary.js';

export type RepairOutcome =
  /** Cut (if needed), synced and renamed to a closed `.pcap`. */
  | 'repaired'
  /** Held no whole record, so nothing was lost by removing it. */
  | 'removed'
  /** Not a pcap file, or not a regular file at all: left untouched for a person to look at. */
  | 'skipped'
  /** Another process is writing it (its writer holds the lock): left alone. */
  | 'busy';

export interface RepairResult {
  path: string;
  outcome: RepairOutcome;
  /** The closed file's path when repaired. */
  finalPath?: string;
  packets: number;
  /** Bytes kept (the whole records and the global header). */
  keptBytes: number;
  /** Bytes cut off after the last whole record. */
  cutBytes: number;
  reason: string;
}


/** Repairs every crashed `.pcap.part` in the store directories. Safe to run again at any point. */
export function repairStore(paths: readonly string[]): RepairResult[] {
  const results: RepairResult[] = [];
  for (const dir of paths) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // nothing written there yet
      throw StoreUnreadableError.from(dir, e);
    }
    for (const name of names.sort()) {
      const parsed = parseFileName(name);
      if (!parsed?.partial) continue;
      const path = join(dir, name);
      // Only regular files: a symbolic link would have its target cut (anywhere, as root), a FIFO
      // would block start-up for good, a directory would stop it.
      const st = lstatSync(path, { throwIfNoEntry: false });
      if (!st) continue; // gone since the readdir
      if (!st.isFile()) results.push(notRegular(path, fileKind(st)));
      else {
        const result = repairUnlessLive(path);
        if (result) results.push(result);
      }
    }
  }
  return results;
}

/**
 * Removes the index files whose capture file is gone (a crash between retention's two deletions,
 * a pcap removed by hand). An index of a `.part` since closed still belongs to the closed file
 * (its writer replaces it); a temporary index beside its pcap file may be one being written, and
 * stays (retention deletes it with the file). Returns the paths removed.
 */
export function removeOrphanIndexes(paths: readonly string[]): string[] {
  const removed: string[] = [];
  for (const dir of paths) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue; // repairStore has said why
    }
    const all = new Set(names);
    for (const name of names) {
      const idx = parseIndexName(name);
      if (!idx || all.has(idx.pcapName) || all.has(idx.pcapName.replace(/\.part$/, ''))) continue;
      const path = join(dir, name);
      // Only regular files: never a link's target.
      if (!lstatSync(path, { throwIfNoEntry: false })?.isFile()) continue;
      // Its pcap file may have appeared since the readdir (a writer starting, a part renamed on close).
      if ([idx.pcapName, idx.pcapName.replace(/\.part$/, '')].some((n) => lstatSync(join(dir, n), { throwIfNoEntry: false }))) continue;
      try {
        unlinkSync(path);
        removed.push(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
  }
  return removed;
}

/** Repairs a part file holding its writer's lock, so no writer can start on it meanwhile. */
function repairUnlessLive(path: string): RepairResult | undefined {
  const lock = lockPart(path);
  if (lock.state === 'gone') return undefined;
  const untouched = { path, packets: 0, keptBytes: 0, cutBytes: 0 };
  if (lock.state === 'held') return { ...untouched, outcome: 'busy', reason: 'another process is writing it (its writer holds the lock)' };
  if (lock.state === 'unknown') return { ...untouched, outcome: 'skipped', reason: lock.reason };
  try {
    return repairPartFile(path);
  } finally {
    lock.release();
  }
}

/** Repairs one `.pcap.part` file (see repairStore); the caller holds its lock. */
export function repairPartFile(path: string): RepairResult {
  const name = basename(path);
  const parsed = parseFileName(name);
  if (!parsed?.partial) {
    throw new Error(`repairPartFile: ${path} is not named like a capture part file (<time>_<iface>.pcap.part)`);
  }
  let fd: number;
  try {
    fd = openRegular(path, 'r+');
  } catch (e) {
    if (e instanceof NotRegularFileError) return notRegular(path, e.kind);
    throw e;
  }
  try {
    return repairOpen(path, fd, parsed);
  } finally {
    closeSync(fd);
  }
}

function repairOpen(path: string, fd: number, parsed: { firstNs: bigint; iface: string; collision?: number }): RepairResult {
  const st = fstatSync(fd);
  const check = plausibleRecord(parsed.firstNs, BigInt(Math.round(st.mtimeMs)) * 1_000_000n);

  let summary;
  try {
    summary = summarizeFd(fd, { check });
  } catch (e) {
    if (e instanceof PcapTooShortError) return remove(path, st, 'no whole global header');
    if (e instanceof PcapFormatError) {
      if (isAllZero(fd)) return remove(path, st, 'only zero bytes (allocated but never written)');
      return { path, outcome: 'skipped', packets: 0, keptBytes: st.size, cutBytes: 0, reason: e.message };
    }
    throw e;
  }
  if (summary.packets === 0) return remove(path, st, 'no whole record');

  if (summary.tailBytes > 0) ftruncateSync(fd, summary.wholeEnd);
  // Closed files are durable by contract: the cut (or the helper's unsynced writes) must be on
  // disk before the file takes its closed name.
  fsyncSync(fd);
  const finalPath = renameNoClobber(path, st, parsed.firstNs, parsed.iface, parsed.collision ?? 0);
  // The open file's index stopped at its last flush and may end in a torn segment: it goes, and
  // the closed file gets a complete one from qe-index (the daemon's indexing after start).
  removeIndexesOfSync(path);
  fsyncDir(dirname(path));
  return {
    path,
    outcome: 'repaired',
    finalPath,
    packets: summary.packets,
    keptBytes: summary.wholeEnd,
    cutBytes: summary.tailBytes,
    reason:
      summary.tailBytes === 0
        ? 'whole records only'
        : `${summary.tailBytes} bytes after the last whole record (${summary.stop === 'partial' ? 'a record cut short' : 'an impossible record header'})`,
  };
}

function notRegular(path: string, kind: string): RepairResult {
  return { path, outcome: 'skipped', packets: 0, keptBytes: 0, cutBytes: 0, reason: `${kind}, not a regular file` };
}

/** The name still leads to the file repair opened (not one swapped in since). */
function sameFile(path: string, st: Stats): boolean {
  const now = lstatSync(path, { throwIfNoEntry: false });
  return now !== undefined && now.ino === st.ino && now.dev === st.dev;
}

/**
 * The records of a part file were captured around its first packet (the name) and before its last
 * write (mtime); the rule (pcap-format.h, format.ts) is the one the helper's own cut after a torn
 * write applies, so both end a file at the same record.
 */
function plausibleRecord(nameNs: bigint, mtimeNs: bigint): RecordCheck {
  const { lo, hi } = plausibleSpan(nameNs, mtimeNs);
  return (tsNs, r, nanos) => recordProblem(r, nanos) === undefined && tsNs >= lo && tsNs <= hi;
}

function remove(path: string, st: Stats, why: string): RepairResult {
  if (!sameFile(path, st)) return { path, outcome: 'skipped', packets: 0, keptBytes: 0, cutBytes: 0, reason: 'replaced by another file during repair' };
  unlinkSync(path);
  removeIndexesOfSync(path);
  fsyncDir(dirname(path));
  return { path, outcome: 'removed', packets: 0, keptBytes: 0, cutBytes: st.size, reason: why };
}

/**
 * Gives the part file its closed name without ever replacing another file: link() fails when the
 * name is taken, where rename() would silently overwrite a closed capture.
 */
function renameNoClobber(path: string, own: Stats, firstNs: bigint, iface: string, collision: number): string {
  const dir = dirname(path);
  // The part's own name minus `.part` first; then `~N` suffixes past any it already carries.
  const candidates = function* () {
    yield basename(path).slice(0, -PART_EXT.length);
    for (let n = Math.max(collision, 0) + 1; ; n++) yield formatFileName(firstNs, iface, n);
  };
  if (!sameFile(path, own)) throw new Error(`${path}: replaced by another file during repair; run again`);
  for (const name of candidates()) {
    const target = join(dir, name);
    try {
      linkSync(path, target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A repair interrupted between link and unlink left both names on the same file.
      const other = lstatSync(target);
      if (other.ino !== own.ino || other.dev !== own.dev) continue;
    }
    unlinkSync(path);
    return target;
  }
  throw new Error('unreachable');
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function isAllZero(fd: number): boolean {
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let pos = 0; ; ) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) return true;
    for (let i = 0; i < n; i++) if (buf[i] !== 0) return false;
    pos += n;
  }
}
