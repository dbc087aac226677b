// What the store holds, measured from the store itself (readdir + lstat, no file reads), so that a
// restart, a changed capacity or files removed by hand never make the accounting wrong.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseFileName } from './filename.js';
import { fileKind } from './pcap-summary.js';

export interface StoredFile {
  path: string;
  firstNs: bigint;
  size: number;
}

export interface StoreUsage {
  /** Closed capture files, oldest first. */
  closed: StoredFile[];
  closedBytes: number;
  /** Files being written (or left by a crash). */
  partBytes: number;
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
  for (const dir of paths) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      throw StoreUnreadableError.from(dir, e);
    }
    for (const name of names) {
      const parsed = parseFileName(name);
      if (!parsed) continue;
      const path = join(dir, name);
      const st = await lstat(path).catch(() => undefined);
      if (!st) continue; // gone between readdir and lstat
      if (!st.isFile()) {
        skipped.push({ path, kind: fileKind(st) });
        continue;
      }
      if (parsed.partial) partBytes += st.size;
      else closed.push({ path, firstNs: parsed.firstNs, size: st.size });
    }
  }
  closed.sort(byAge);
  const closedBytes = closed.reduce((a, f) => a + f.size, 0);
  return { closed, closedBytes, partBytes, totalBytes: closedBytes + partBytes, skipped };
}
