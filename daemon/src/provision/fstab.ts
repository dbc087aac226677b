// /etc/fstab entries for the store filesystems, by UUID. Pure text in, text out: lines that are
// already right stay as they are, a line for the same UUID or mount point is replaced, others
// are appended; everything else in the file (comments, other mounts) is kept byte for byte.
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './write-file.js';

export interface FstabEntry {
  uuid: string;
  mountPoint: string;
  line: string;
}

function fields(line: string): string[] | undefined {
  const t = line.trim();
  if (!t || t.startsWith('#')) return undefined;
  return t.split(/\s+/);
}

export function updateFstab(text: string, entries: FstabEntry[]): { text: string; changed: string[] } {
  const lines = text.length ? text.replace(/\n$/, '').split('\n') : [];
  const changed: string[] = [];
  for (const e of entries) {
    const same = lines.findIndex((l) => {
      const f = fields(l);
      return !!f && (f[0] === `UUID=${e.uuid}` || f[1] === e.mountPoint);
    });
    if (same === -1) {
      lines.push(e.line);
      changed.push(`added ${e.line}`);
    } else if (fields(lines[same]!)!.join(' ') !== fields(e.line)!.join(' ')) {
      changed.push(`replaced ${lines[same]} with ${e.line}`);
      lines[same] = e.line;
    }
  }
  return { text: lines.length ? `${lines.join('\n')}\n` : '', changed };
}

/** Applies the entries to the fstab file; returns what changed (nothing when all were there). */
export async function writeFstab(path: string, entries: FstabEntry[]): Promise<string[]> {
  let old = '';
  try {
    old = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const { text, changed } = updateFstab(old, entries);
  if (changed.length) await writeFileAtomic(path, text);
  return changed;
}
