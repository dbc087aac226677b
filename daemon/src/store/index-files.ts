// The files that go with a capture file in the store: its index (daemon/src/index/format.ts) and
// its flow table (daemon/src/flows/format.ts), each under its final name or a temporary one. They
// live and die with their pcap file: counted in the store's use with it, deleted with it, and one
// whose pcap file is gone is removed at start.
import { unlink } from 'node:fs/promises';
import { lstatSync, unlinkSync } from 'node:fs';
import { IDX_EXT, IDX_TMP_EXT, indexPathFor } from '../index/format.js';
import { FLOW_EXT, FLOW_TMP_EXT, flowPathFor } from '../flows/format.js';
import { PART_EXT, parseFileName, type CaptureFileName } from './filename.js';

export interface IndexFileName {
  /** The name of the capture file it belongs to (`X.pcap` or `X.pcap.part`). */
  pcapName: string;
  pcap: CaptureFileName;
  kind: 'index' | 'flows';
  /** `X.qeidx.tmp` / `X.qeflow.tmp`: being written, or left by a crash before its rename. */
  tmp: boolean;
}

const COMPANIONS = [
  { kind: 'index' as const, ext: IDX_EXT, tmpExt: IDX_TMP_EXT, pathFor: indexPathFor },
  { kind: 'flows' as const, ext: FLOW_EXT, tmpExt: FLOW_TMP_EXT, pathFor: flowPathFor },
];

/** An index's or flow table's name, or undefined for any other name (captures, the catalog cache, strangers). */
export function parseIndexName(name: string): IndexFileName | undefined {
  for (const c of COMPANIONS) {
    const tmp = name.endsWith(c.ext + c.tmpExt);
    const stem = tmp ? name.slice(0, -(c.ext + c.tmpExt).length) : name.endsWith(c.ext) ? name.slice(0, -c.ext.length) : undefined;
    if (stem === undefined) continue;
    const pcap = parseFileName(stem);
    return pcap ? { pcapName: stem, pcap, kind: c.kind, tmp } : undefined;
  }
  return undefined;
}

/**
 * Every index and flow table name a capture file can have: its own, a temporary one left by a
 * crash, and, for a closed file, the ones its `.part` had (the writer replaces them at the rename;
 * a crash in between leaves them).
 */
export function indexNamesOf(pcapPath: string): string[] {
  const names: string[] = [];
  for (const c of COMPANIONS) {
    const own = c.pathFor(pcapPath);
    names.push(own, own + c.tmpExt);
    if (!pcapPath.endsWith(PART_EXT)) {
      const part = c.pathFor(pcapPath + PART_EXT);
      names.push(part, part + c.tmpExt);
    }
  }
  return names;
}

/**
 * Deletes a closed capture file and then its indexes and flow tables. The pcap file first: a crash
 * in between leaves an orphan, which the start-up repair removes, never a file without its index
 * that background indexing would index again just before retention takes it.
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

/** Bytes of the index files and flow tables of `pcapPath` now on disk (0 when it has none). */
export function indexBytesOf(pcapPath: string): number {
  let n = 0;
  for (const p of indexNamesOf(pcapPath)) {
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (st?.isFile()) n += st.size;
  }
  return n;
}

/** Removes every index and flow table of `pcapPath` (none there is fine). Returns how many went. */
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
