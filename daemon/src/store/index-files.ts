// Index files in the store: which names are indexes, of which capture file, and how they go with
// it. An index (daemon/src/index/format.ts) lives and dies with its pcap file: it is counted in
// the store's use with it, deleted with it, and one whose pcap file is gone is removed at start.
import { unlink } from 'node:fs/promises';
import { lstatSync, unlinkSync } from 'node:fs';
import { IDX_EXT, IDX_TMP_EXT, indexPathFor } from '../index/format.js';
import { PART_EXT, parseFileName, type CaptureFileName } from './filename.js';

export interface IndexFileName {
  /** The name of the capture file it indexes (`X.pcap` or `X.pcap.part`). */
  pcapName: string;
  pcap: CaptureFileName;
  /** `X.qeidx.tmp`: being written, or left by a crash before its rename. */
  tmp: boolean;
}

/** An index's name, or undefined for any other name (captures, the catalog cache, strangers). */
export function parseIndexName(name: string): IndexFileName | undefined {
  const tmp = name.endsWith(IDX_EXT + IDX_TMP_EXT);
  const stem = tmp ? name.slice(0, -(IDX_EXT + IDX_TMP_EXT).length) : name.endsWith(IDX_EXT) ? name.slice(0, -IDX_EXT.length) : undefined;
  if (stem === undefined) return undefined;
  const pcap = parseFileName(stem);
  return pcap ? { pcapName: stem, pcap, tmp } : undefined;
}

/**
 * Every index name a capture file can have: its own, a temporary one left by a crash, and, for a
 * closed file, the one its `.part` had (the writer replaces it at the rename; a crash in between
 * leaves it).
 */
export function indexNamesOf(pcapPath: string): string[] {
  const idx = indexPathFor(pcapPath);
  const names = [idx, idx + IDX_TMP_EXT];
  if (!pcapPath.endsWith(PART_EXT)) {
    const partIdx = indexPathFor(pcapPath + PART_EXT);
    names.push(partIdx, partIdx + IDX_TMP_EXT);
  }
  return names;
}

/**
 * Deletes a closed capture file and then its indexes. The pcap file first: a crash in between
 * leaves an orphan index, which the start-up repair removes, never a file without its index that
 * background indexing would index again just before retention takes it.
 */
export async function removeCaptureFile(path: string): Promise<void> {
  // Removed by hand already (ENOENT): its index goes all the same, and the caller hears ENOENT.
  const gone = await unlink(path).then(
    () => undefined,
    (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
      return e;
    },
  );
  await removeIndexesOf(path);
  if (gone) throw gone;
}

/** Bytes of the index files of `pcapPath` now on disk (0 when it has none). */
export function indexBytesOf(pcapPath: string): number {
  let n = 0;
  for (const p of indexNamesOf(pcapPath)) {
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (st?.isFile()) n += st.size;
  }
  return n;
}

/** Removes every index of `pcapPath` (none there is fine). Returns how many went. */
export async function removeIndexesOf(pcapPath: string): Promise<number> {
  let n = 0;
  for (const p of indexNamesOf(pcapPath)) {
    await unlink(p).then(
      () => n++,
      (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      },
    );
  }
  return n;
}

export function removeIndexesOfSync(pcapPath: string): number {
  let n = 0;
  for (const p of indexNamesOf(pcapPath)) {
    try {
      unlinkSync(p);
      n++;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return n;
}
