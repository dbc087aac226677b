// What extraction must produce, made with the real tools: tcpdump applies the filter to each
// file, mergecap merges them by timestamp, editcap keeps the time range.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePcap } from '../../daemon/src/pcap/format.js';
import { formatIsoNs } from '../../daemon/src/time/format-time.js';

export interface Rec {
  tsNs: bigint;
  caplen: number;
  origlen: number;
  data: string;
}

export function readRecords(path: string): { linktype: number; nanos: boolean; records: Rec[]; trailing: number } {
  const b = readFileSync(path);
  const p = parsePcap(b);
  return {
    linktype: p.header.linktype,
    nanos: p.header.nanos,
    records: p.records.map((r) => ({ tsNs: r.tsNs, caplen: r.caplen, origlen: r.origlen, data: r.data.toString('hex') })),
    trailing: b.length - p.wholeEnd,
  };
}

/** Files in stream order; ties between files then go to the earlier one, as in qe-extract. */
export function referenceExtract(files: readonly string[], work: string, fromNs: bigint, toNs: bigint, filter?: string): Rec[] {
  const filtered = files.map((f, i) => {
    const out = join(work, `ref-${i}.pcap`);
    const r = spawnSync('tcpdump', ['--time-stamp-precision', 'nano', '-r', f, '-w', out, ...(filter ? [filter] : [])], { encoding: 'utf8' });
    // A part file ends in a cut-short record: tcpdump writes the whole ones, then says so.
    if (r.status !== 0 && !(f.endsWith('.part') && r.stderr.includes('truncated dump file'))) {
      throw new Error(`tcpdump -r ${f} failed: ${r.stderr}`);
    }
    return out;
  });
  const merged = join(work, 'ref-merged.pcap');
  execFileSync('mergecap', ['-F', 'nsecpcap', '-w', merged, ...filtered]);
  const ranged = join(work, 'ref-range.pcap');
  // editcap -B is exclusive; the extraction range is inclusive.
  execFileSync('editcap', ['-F', 'nsecpcap', '-A', formatIsoNs(fromNs), '-B', formatIsoNs(toNs + 1n), merged, ranged]);
  return readRecords(ranged).records;
}
