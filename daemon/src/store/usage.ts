// What the store holds, measured from the store itself (readdir + stat, no file reads), so that a
// restart, a changed capacity or files removed by hand never make the accounting wrong.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseFileName } from './filename.js';

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
}

export const byAge = (a: StoredFile, b: StoredFile) => (a.firstNs < b.firstNs ? -1 : a.firstNs > b.firstNs ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

export async function measureStore(paths: readonly string[]): Promise<StoreUsage> {
  const closed: StoredFile[] = [];
  let partBytes = 0;
  for (const dir of paths) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const parsed = parseFileName(name);
      if (!parsed) continue;
      const path = join(dir, name);
      const size = await stat(path).then((s) => s.size, () => -1);
      if (size < 0) continue; // gone between readdir and stat
      if (parsed.partial) partBytes += size;
      else closed.push({ path, firstNs: parsed.firstNs, size });
    }
  }
  closed.sort(byAge);
  const closedBytes = closed.reduce((a, f) => a + f.size, 0);
  return { closed, closedBytes, partBytes, totalBytes: closedBytes + partBytes };
}
