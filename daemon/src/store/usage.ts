// What the store holds, measured from the store itself (readdir + lstat, no file reads), so that a
// restart, a changed capacity or files removed by hand never make the accounting wrong.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseFileName } from './filename.js';
import { parseIndexName } from './index-files.js';
import { fileKind } from './pcap-summary.js';

export interface StoredFile {
  path: string;
  firstNs: bigint;
  /** Bytes on disk: the pcap file and its index, which retention deletes with it. */
  size: number;
}

export interface StoreUsage {
  /** Closed capture files, oldest first. */
  closed: StoredFile[];
  closedBytes: number;
  /** Files being written (or left by a crash), their indexes included. */
  partBytes: number;
  /** Bytes of index files, all of them (also counted in closedBytes and partBytes). */
  indexBytes: number;
  /** Indexes whose capture file is not there (a crash between the two deletions): counted in totalBytes. */
  orphanIndexBytes: number;
  totalBytes: number;
  /** Names that look like captures but are not regular files: neither counted nor ever deleted. */
  skipped: { path: string; kind: string }[];
}

/**
 * A store directory that cannot be listed. Never read as "empty": grants made against an empty
 * store that is in fact full would pass the capacity (linear) or the disk (circular).
 */
export class StoreUnreadableError extends Error {
  constructor(
    readonly path: string,
    readonly code: string,
    detail: string,
  ) {
    super(`store directory ${path} cannot be read (${code}: ${detail}); its files cannot be counted, so no room is granted from it until it can`);
  }

  static from(path: string, e: unknown): StoreUnreadableError {
    const err = e as NodeJS.ErrnoException;
    // "EMFILE: too many open files, scandir '/x'" -> "too many open files"
    const detail = String(err.message).replace(/^[A-Z0-9]+: /, '').replace(/, \w+ '.*'$/, '');
    return new StoreUnreadableError(path, err.code ?? 'error', detail);
  }
}

export const byAge = (a: StoredFile, b: StoredFile) => (a.firstNs < b.firstNs ? -1 : a.firstNs > b.firstNs ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** Throws StoreUnreadableError when a store directory cannot be listed. */
export async function measureStore(paths: readonly string[]): Promise<StoreUsage> {
  const closed: StoredFile[] = [];
  const skipped: StoreUsage['skipped'] = [];
  let partBytes = 0;
  let indexBytes = 0;
  let orphanIndexBytes = 0;
  for (const dir of paths) {
    /** Index sizes by the capture file name they belong to. */
    const indexes = new Map<string, number>();
    const pcaps = new Map<string, StoredFile | undefined>();
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      throw StoreUnreadableError.from(dir, e);
    }
    for (const name of names) {
      const idx = parseIndexName(name);
      if (idx) {
        const st = await lstat(join(dir, name)).catch(() => undefined);
        // Not a regular file: not an index the writer made; neither counted nor ever deleted.
        if (st?.isFile()) {
          indexBytes += st.size;
          indexes.set(idx.pcapName, (indexes.get(idx.pcapName) ?? 0) + st.size);
        }
        continue;
      }
      const parsed = parseFileName(name);
      if (!parsed) continue;
      const path = join(dir, name);
      const st = await lstat(path).catch(() => undefined);
      if (!st) continue; // gone between readdir and lstat
      if (!st.isFile()) {
        skipped.push({ path, kind: fileKind(st) });
        continue;
      }
      if (parsed.partial) {
        partBytes += st.size;
        pcaps.set(name, undefined);
      } else {
        const f = { path, firstNs: parsed.firstNs, size: st.size };
        closed.push(f);
        pcaps.set(name, f);
      }
    }
    for (const [pcapName, bytes] of indexes) {
      // A `.part`'s index left beside the closed file goes with it (see indexNamesOf).
      const owner = pcaps.has(pcapName) ? pcapName : pcapName.replace(/\.part$/, '');
      if (!pcaps.has(owner)) orphanIndexBytes += bytes; // counted all the same: the disk holds them
      else {
        const f = pcaps.get(owner);
        if (f) f.size += bytes;
        else partBytes += bytes;
      }
    }
  }
  closed.sort(byAge);
  const closedBytes = closed.reduce((a, f) => a + f.size, 0);
  return { closed, closedBytes, partBytes, indexBytes, orphanIndexBytes, totalBytes: closedBytes + partBytes + orphanIndexBytes, skipped };
}
