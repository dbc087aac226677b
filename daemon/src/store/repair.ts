// Start-up repair of `.pcap.part` files a crash left behind: each is cut to its last whole,
// plausible record, made durable and given its final name, so it joins the store as a closed file.
// Must run before any capture helper starts: a helper's live `.part` file looks just the same.
import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  linkSync,
  openSync,
  readSync,
  readdirSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PcapFormatError, plausibleSpan, recordProblem } from '../pcap/format.js';
import { PART_EXT, formatFileName, parseFileName } from './filename.js';
import { PcapTooShortError, summarizePcap, type RecordCheck } from './pcap-summary.js';

export type RepairOutcome =
  /** Cut (if needed), synced and renamed to a closed `.pcap`. */
  | 'repaired'
  /** Held no whole record, so nothing was lost by removing it. */
  | 'removed'
  /** Not a pcap file: left untouched for a person to look at. */
  | 'skipped';

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
      throw e;
    }
    for (const name of names.sort()) {
      const parsed = parseFileName(name);
      if (parsed?.partial) results.push(repairPartFile(join(dir, name)));
    }
  }
  return results;
}

/** Repairs one `.pcap.part` file (see repairStore). */
export function repairPartFile(path: string): RepairResult {
  const name = basename(path);
  const parsed = parseFileName(name);
  if (!parsed?.partial) {
    throw new Error(`repairPartFile: ${path} is not named like a capture part file (<time>_<iface>.pcap.part)`);
  }
  const st = statSync(path);
  const check = plausibleRecord(parsed.firstNs, BigInt(Math.round(st.mtimeMs)) * 1_000_000n);

  let summary;
  try {
    summary = summarizePcap(path, { check });
  } catch (e) {
    if (e instanceof PcapTooShortError) return remove(path, st.size, 'no whole global header');
    if (e instanceof PcapFormatError) {
      if (isAllZero(path)) return remove(path, st.size, 'only zero bytes (allocated but never written)');
      return { path, outcome: 'skipped', packets: 0, keptBytes: st.size, cutBytes: 0, reason: e.message };
    }
    throw e;
  }
  if (summary.packets === 0) return remove(path, summary.size, 'no whole record');

  const fd = openSync(path, 'r+');
  try {
    if (summary.tailBytes > 0) ftruncateSync(fd, summary.wholeEnd);
    // Closed files are durable by contract: the cut (or the helper's unsynced writes) must be on
    // disk before the file takes its closed name.
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const finalPath = renameNoClobber(path, parsed.firstNs, parsed.iface, parsed.collision ?? 0);
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

/**
 * The records of a part file were captured around its first packet (the name) and before its last
 * write (mtime); the rule (pcap-format.h, format.ts) is the one the helper's own cut after a torn
 * write applies, so both end a file at the same record.
 */
function plausibleRecord(nameNs: bigint, mtimeNs: bigint): RecordCheck {
  const { lo, hi } = plausibleSpan(nameNs, mtimeNs);
  return (tsNs, r, nanos) => recordProblem(r, nanos) === undefined && tsNs >= lo && tsNs <= hi;
}

function remove(path: string, size: number, why: string): RepairResult {
  unlinkSync(path);
  fsyncDir(dirname(path));
  return { path, outcome: 'removed', packets: 0, keptBytes: 0, cutBytes: size, reason: why };
}

/**
 * Gives the part file its closed name without ever replacing another file: link() fails when the
 * name is taken, where rename() would silently overwrite a closed capture.
 */
function renameNoClobber(path: string, firstNs: bigint, iface: string, collision: number): string {
  const dir = dirname(path);
  // The part's own name minus `.part` first; then `~N` suffixes past any it already carries.
  const candidates = function* () {
    yield basename(path).slice(0, -PART_EXT.length);
    for (let n = Math.max(collision, 0) + 1; ; n++) yield formatFileName(firstNs, iface, n);
  };
  const own = statSync(path);
  for (const name of candidates()) {
    const target = join(dir, name);
    try {
      linkSync(path, target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A repair interrupted between link and unlink left both names on the same file.
      const other = statSync(target);
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

function isAllZero(path: string): boolean {
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (let pos = 0; ; ) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) return true;
      for (let i = 0; i < n; i++) if (buf[i] !== 0) return false;
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
}
