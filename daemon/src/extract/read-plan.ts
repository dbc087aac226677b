// Which bytes of each file `extract` reads: from the file's index when it has a usable one that
// holds the fields the filter's plan needs, else all of it. Ranges go to qe-extract (--ranges),
// which reads the records starting in them and applies the exact filter to each: an index only
// narrows, so the result is the scan's whatever this module decides.
//
// The expression is parsed into lookups here, once per query (../index/plan.ts); the indexes are
// read by the native planner (`qe-extract --plan`, daemon/native/read-plan.c), one process for all
// files: a file's plan costs it microseconds where the TypeScript reader took over a millisecond of
// CPU, and it plans files on several threads, so from a cold cache the chains of disk trips of
// different files overlap. The merge-gap and density defaults and the note for a missing field stay
// here; an unusable index's note comes from the planner, in reader.ts's words.
import { spawn } from 'node:child_process';
import type { CatalogEntry } from '../store/catalog.js';
import { nativeTool } from '../util/native.js';
import { IDX_FIELDS, type IndexField } from '../index/format.js';
import { describePlan, fieldsNeeded, planFilter, type Lookup } from '../index/plan.js';
import { encodePlan, PLAN_ITEM, planAnswer, type PlanAnswer } from '../index/plan-wire.js';

/** Reads to the end of the file (qe-extract's "no stop"). */
export const TO_END = 2n ** 64n - 1n;

export type Range = [start: number, stop: number | 'end'];

export type Why =
  /** Read through the index. */
  | 'index'
  /** --no-index, or no filter to narrow by. */
  | 'scan-asked'
  | 'no-index'
  /** Version, damage, another file's index: said in `note`. */
  | 'index-unusable'
  /** The index lacks a field the plan needs. */
  | 'fields'
  /** The expression cannot be narrowed (`not X`, `len > 100`, a host name...). */
  | 'not-narrowed'
  /** The index narrows this file too little to beat reading it whole. */
  | 'dense';

// Gaps up to this many blocks between candidate ranges are read through rather than sought over
// (two 16 KiB blocks take about as long to read as an SSD takes to seek).
const MERGE_GAP_BLOCKS = 2;
// A file whose candidates cover more than this share of it is read whole.
const DENSE = 0.5;

export interface FileRead {
  file: CatalogEntry;
  why: Why;
  note?: string;
  /** Only with an index: what to read. */
  ranges?: Range[];
  plan?: string;
  /** Candidate blocks from the index. */
  blocks: number;
  /** Bytes qe-extract reads (an estimate for a growing file). */
  bytes: number;
  /** Records those bytes hold (estimated from the index's records per byte). */
  records: number;
  /** Bytes of the index read to plan. */
  indexBytes: number;
}

/** When reading through an index stops paying (the defaults above); tests set both to hold every read to the index. */
export interface ReadPolicy {
  mergeGapBlocks?: number;
  /** Share of a file above which it is read whole (>= 1: never). */
  dense?: number;
}

const FIELD_NAMES = Object.keys(IDX_FIELDS) as IndexField[];

function fieldBits(fields: Iterable<IndexField>): number {
  let bits = 0;
  for (const f of fields) bits |= IDX_FIELDS[f];
  return bits;
}

function fieldNames(bits: number): IndexField[] {
  return FIELD_NAMES.filter((f) => bits & IDX_FIELDS[f]);
}

/** The read of each file, planned for all files at once by the native planner. */
export async function planReads(files: readonly CatalogEntry[], filter: string | undefined, useIndex: boolean, policy: ReadPolicy = {}): Promise<FileRead[]> {
  const scan = (file: CatalogEntry, why: Why, note?: string): FileRead => ({ file, why, ...(note ? { note } : {}), blocks: 0, bytes: file.size, records: file.packets, indexBytes: 0 });
  if (!useIndex || filter === undefined || filter.trim() === '' || files.length === 0) return files.map((f) => scan(f, 'scan-asked'));
  // A plan depends on the fields an index holds, only through those the full plan uses: one plan
  // for each subset of them (at most 2^5), the planner takes the one of each file's index.
  const full = planFilter(filter, FIELD_NAMES);
  const neededFields = fieldsNeeded(full);
  const needed = fieldBits(neededFields);
  const plans = new Map<number, Lookup>();
  for (let mask = needed; ; mask = (mask - 1) & needed) {
    plans.set(mask, planFilter(filter, fieldNames(mask)));
    if (mask === 0) break;
  }
  const request: string[] = [];
  for (const [mask, plan] of plans) request.push(`${PLAN_ITEM.lookup} ${mask} ${encodePlan(plan)}`);
  for (const f of files) {
    if (f.path.includes('\n')) throw new Error(`cannot pass a path containing a newline to qe-extract: ${JSON.stringify(f.path)}`);
    // A closed file's first record and link type, as the catalog knows them: the planner checks the
    // index against them instead of reading the file's first record (a disk trip a file, cold).
    const facts = !f.partial && f.firstRecordNs !== undefined ? `${f.firstRecordNs} ${f.linktype}` : '- -';
    request.push(`${PLAN_ITEM.file} ${f.size} ${f.packets} ${f.partial ? 1 : 0} ${facts} ${f.path}`);
  }
  const args = ['--plan', '--merge-gap', String(policy.mergeGapBlocks ?? MERGE_GAP_BLOCKS), '--dense', String(policy.dense ?? DENSE), '--needed', String(needed)];
  const lines = await runPlanner(args, request.join('\n') + '\n');
  if (lines.length !== files.length) throw new Error(`qe-extract --plan answered ${lines.length} lines for ${files.length} files`);
  return files.map((file, i) => {
    const a: PlanAnswer = planAnswer.parse(JSON.parse(lines[i]!));
    const held = fieldNames(a.fields ?? 0);
    const plan = a.fields !== undefined ? plans.get(a.fields & needed) : undefined;
    const planText = plan && plan.op !== 'all' ? { plan: describePlan(plan) } : {};
    switch (a.why) {
      case 'no-index':
      case 'not-narrowed':
        return scan(file, a.why);
      case 'index-unusable':
        return { ...scan(file, a.why, a.note), indexBytes: a.index_bytes };
      case 'fields': {
        const missing = [...neededFields].filter((f) => !held.includes(f));
        return scan(file, 'fields', `its index holds ${held.join(', ') || 'no fields'}, the filter needs ${missing.join(', ')}`);
      }
      case 'dense':
        return { ...scan(file, 'dense'), ...planText, blocks: a.blocks, indexBytes: a.index_bytes };
      case 'index': {
        const r = a.ranges ?? [];
        const ranges: Range[] = [];
        for (let k = 0; k + 1 < r.length; k += 2) ranges.push([r[k]!, r[k + 1]! < 0 ? 'end' : r[k + 1]!]);
        return { file, why: 'index', ranges, ...planText, blocks: a.blocks, bytes: a.bytes ?? 0, records: a.records ?? 0, indexBytes: a.index_bytes };
      }
    }
  });
}

/** Runs the planner over a request; its stdout's lines. */
function runPlanner(args: string[], request: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(nativeTool('qe-extract'), args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (err.length < 64 * 1024) err += d;
    });
    child.stdin.on('error', () => {}); // an early exit says why on stderr
    child.stdin.end(request);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) reject(new Error(err.trim() || `qe-extract --plan ended by ${signal ?? `exit ${code}`}`));
      else resolve(Buffer.concat(out).toString('utf8').split('\n').filter((l) => l !== ''));
    });
  });
}

/** The --ranges bytes and each ranged file's `:first+count` for the --list. */
export function encodeRanges(reads: readonly FileRead[]): { bytes: Buffer; spans: Map<string, [number, number]> } {
  const spans = new Map<string, [number, number]>();
  const pairs: number[] = [];
  for (const r of reads) {
    if (!r.ranges) continue;
    spans.set(r.file.path, [pairs.length / 2, r.ranges.length]);
    for (const [a, b] of r.ranges) pairs.push(a, b === 'end' ? -1 : b);
  }
  // Offsets are below 2^53: each u64 is written as two u32 halves (no BigInt per range).
  const bytes = Buffer.alloc(pairs.length * 8);
  pairs.forEach((v, i) => {
    if (v < 0) bytes.fill(0xff, i * 8, i * 8 + 8); // TO_END
    else {
      bytes.writeUInt32LE(v % 0x1_0000_0000, i * 8);
      bytes.writeUInt32LE(Math.floor(v / 0x1_0000_0000), i * 8 + 4);
    }
  });
  return { bytes, spans };
}
