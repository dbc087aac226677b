// Index size per field: `qe-index` with each single field, and with the default set, over a sample
// of the store's files (links to them, so the indexes are written beside the links and the store's
// own indexes stay as they are), as a share of the pcap bytes.

import { mkdir, rm, stat, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { INDEX_FIELD_NAMES } from '../../daemon/src/config/schema.js';
import { IDX_EXT } from '../../daemon/src/index/format.js';
import { nativeTool } from '../../daemon/src/util/native.js';
import { round } from '../capture/stats.js';
import { DEFAULT_FIELDS } from './live.js';
import { timed } from './store.js';

export async function indexSizes(files: readonly string[], sampleBytes: number, workDir: string, cpu: number) {
  const sample: string[] = [];
  let pcapBytes = 0;
  for (const f of files) {
    if (pcapBytes >= sampleBytes) break;
    sample.push(f);
    pcapBytes += (await stat(f)).size;
  }
  const sets: string[][] = [...INDEX_FIELD_NAMES.map((f) => [f]), [...DEFAULT_FIELDS]];
  const rows = [];
  for (const fields of sets) {
    const dir = join(workDir, `size-${fields.join('-')}`);
    await mkdir(dir, { recursive: true });
    const links: string[] = [];
    for (const f of sample) {
      const l = join(dir, basename(f));
      await symlink(f, l);
      links.push(l);
    }
    const t = await timed([nativeTool('qe-index'), '--fields', fields.join(','), ...links], cpu, workDir);
    let indexBytes = 0;
    for (const l of links) indexBytes += (await stat(`${l}${IDX_EXT}`).catch(() => ({ size: NaN }))).size;
    rows.push({
      fields: fields.join(','),
      indexBytes,
      pctOfPcap: round((100 * indexBytes) / pcapBytes, 3),
      // Reading the sample from the page cache (it was just read by the previous set) and writing
      // the index: what `qe-packets index` costs per GB of store.
      secondsPerGB: round(t.wallS / (pcapBytes / 1e9), 3),
      ...(t.exitCode !== 0 ? { error: `qe-index exit ${t.exitCode}: ${t.stderr.slice(-300)}` } : {}),
    });
    await rm(dir, { recursive: true, force: true });
  }
  return { sampleFiles: sample.length, samplePcapBytes: pcapBytes, rows };
}
