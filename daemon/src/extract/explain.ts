// `extract --explain`: what an extraction would read, file by file, and how long it should take.
import { formatCount, formatSize } from '../config/units.js';
import { formatIsoNs } from '../time/format-time.js';
import type { FileRead, Why } from './read-plan.js';

// The estimate's model: a cold sequential read, and a seek per piece read through an index. These
// are an SSD's orders of magnitude; a spinning disk seeks ~50x slower (the estimate says which).
const SCAN_BYTES_PER_S = 500e6;
const SEEK_S = 0.0002;

export interface Explained {
  filter: string | null;
  from: string;
  to: string;
  plan: string | null;
  files: number;
  files_with_index: number;
  files_read_through_index: number;
  files_scanned: Partial<Record<Why, number>>;
  candidate_blocks: number;
  records_to_read: number;
  records_in_range_files: number;
  bytes_to_read: number;
  index_bytes_read: number;
  bytes_full_scan: number;
  estimated_s: number;
  full_scan_estimated_s: number;
  estimate_model: string;
  per_file: { path: string; iface: string; size: number; read: Why; note?: string; blocks: number; pieces: number; bytes: number; records: number }[];
}

export function explain(reads: readonly FileRead[], filter: string | undefined, fromNs: bigint, toNs: bigint): Explained {
  const scanned: Partial<Record<Why, number>> = {};
  for (const r of reads) if (r.why !== 'index') scanned[r.why] = (scanned[r.why] ?? 0) + 1;
  const sum = (f: (r: FileRead) => number) => reads.reduce((n, r) => n + f(r), 0);
  const pieces = sum((r) => r.ranges?.length ?? (r.bytes > 0 ? 1 : 0));
  const bytes = sum((r) => r.bytes);
  const full = sum((r) => r.file.size);
  const plans = [...new Set(reads.flatMap((r) => (r.plan ? [r.plan] : [])))];
  return {
    filter: filter ?? null,
    from: formatIsoNs(fromNs),
    to: formatIsoNs(toNs),
    plan: plans.length ? plans.join(' | ') : null,
    files: reads.length,
    files_with_index: reads.filter((r) => r.why === 'index' || r.why === 'fields' || r.why === 'not-narrowed' || r.why === 'dense').length,
    files_read_through_index: reads.filter((r) => r.why === 'index').length,
    files_scanned: scanned,
    candidate_blocks: sum((r) => r.blocks),
    records_to_read: sum((r) => r.records),
    records_in_range_files: sum((r) => r.file.packets),
    bytes_to_read: bytes,
    index_bytes_read: sum((r) => r.indexBytes),
    bytes_full_scan: full,
    estimated_s: round(bytes / SCAN_BYTES_PER_S + pieces * SEEK_S),
    full_scan_estimated_s: round(full / SCAN_BYTES_PER_S + reads.length * SEEK_S),
    estimate_model: `${SCAN_BYTES_PER_S / 1e6} MB/s read, ${SEEK_S * 1000} ms per piece (an SSD, cold cache; a spinning disk seeks ~50x slower)`,
    per_file: reads.map((r) => ({
      path: r.file.path,
      iface: r.file.iface,
      size: r.file.size,
      read: r.why,
      ...(r.note ? { note: r.note } : {}),
      blocks: r.blocks,
      pieces: r.ranges?.length ?? 1,
      bytes: r.bytes,
      records: r.records,
    })),
  };
}

const WHY_TEXT: Record<Why, string> = {
  index: 'read through the index',
  'scan-asked': 'scanned (--no-index or no filter)',
  'no-index': 'scanned: no index',
  'index-unusable': 'scanned: index not usable',
  fields: 'scanned: index lacks a field the filter needs',
  'not-narrowed': 'scanned: the filter cannot be narrowed by an index',
  dense: 'read whole: candidates in most of the file, a sequential read is faster',
};

export function explainText(e: Explained): string {
  const pct = (a: number, b: number) => (b > 0 ? ` (${((100 * a) / b).toFixed(a / b < 0.01 ? 3 : 1)}%)` : '');
  const lines = [
    `range: ${e.from} .. ${e.to}${e.filter !== null ? `, filter: ${e.filter}` : ''}`,
    `index lookups: ${e.plan ?? 'none (every file is scanned)'}`,
    `files in range: ${e.files} (${formatSize(e.bytes_full_scan)}), with an index: ${e.files_with_index}, read through it: ${e.files_read_through_index}`,
  ];
  for (const [why, n] of Object.entries(e.files_scanned)) lines.push(`  ${n} file${n === 1 ? '' : 's'} ${WHY_TEXT[why as Why]}`);
  for (const f of e.per_file.filter((x) => x.note).slice(0, 5)) lines.push(`  ${f.path}: ${f.note}`);
  lines.push(
    `candidate blocks: ${formatCount(e.candidate_blocks)}, records to read: ~${formatCount(e.records_to_read)} of ${formatCount(e.records_in_range_files)}`,
    `bytes to read: ${formatSize(e.bytes_to_read)} of ${formatSize(e.bytes_full_scan)}${pct(e.bytes_to_read, e.bytes_full_scan)}, and ${formatSize(e.index_bytes_read)} of index`,
    `estimated time: ${fmtS(e.estimated_s)} (a full scan: ${fmtS(e.full_scan_estimated_s)}; ${e.estimate_model})`,
  );
  return lines.join('\n');
}

function round(s: number): number {
  return Math.round(s * 1000) / 1000;
}

function fmtS(s: number): string {
  return s < 1 ? `${Math.max(1, Math.round(s * 1000))} ms` : `${s.toFixed(1)} s`;
}
