// Free bytes on the filesystems under the store's paths, each filesystem counted once (several
// paths may share a disk).
import { stat, statfs } from 'node:fs/promises';

export async function filesystemFree(paths: readonly string[]): Promise<number> {
  const seen = new Set<number>();
  let free = 0;
  for (const p of paths) {
    const [fs, st] = await Promise.all([statfs(p), stat(p)]);
    if (seen.has(st.dev)) continue;
    seen.add(st.dev);
    free += fs.bavail * fs.bsize;
  }
  return free;
}
