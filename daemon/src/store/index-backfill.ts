// Indexing the closed files that need it: those with no index, a damaged one, one of another
// format version, or one built with other fields than the config's (`rebuild`: all of them). One
// engine for `qe-packets index` and the daemon's background run at start. Files being written are
// left to their writer, which indexes them as it captures.
import { closeSync, constants, openSync } from 'node:fs';
import { join } from 'node:path';
import type { CatalogEntry } from './catalog.js';
import { checkIndex, describeState, type IndexState, type IndexVerify, type IndexWant } from './index-check.js';
import { tryFlock } from './part-lock.js';
import { runQeIndex } from './run-qe-index.js';

export interface IndexPlanItem {
  entry: CatalogEntry;
  state: IndexState;
}

export interface IndexPlan {
  /** Closed files in the range. */
  considered: number;
  todo: IndexPlanItem[];
  upToDate: number;
  /**
   * Indexes of a newer format version: a newer qe-packets wrote them and may still be reading them,
   * so they are left alone (extraction scans those files) unless a rebuild is asked for.
   */
  refused: IndexPlanItem[];
  /** Bytes of pcap the todo list reads. */
  bytes: number;
}

export interface PlanOptions {
  fromNs?: bigint;
  toNs?: bigint;
  rebuild?: boolean;
  verify?: IndexVerify;
}

/** Checks every closed file's index (giving the event loop a turn now and then: a daemon plans too). */
export async function planIndexing(entries: readonly CatalogEntry[], want: IndexWant, opts: PlanOptions = {}): Promise<IndexPlan> {
  const plan: IndexPlan = { considered: 0, todo: [], upToDate: 0, refused: [], bytes: 0 };
  let n = 0;
  for (const entry of entries) {
    if (++n % 500 === 0) await new Promise((r) => setImmediate(r));
    if (entry.partial) continue;
    if (opts.fromNs !== undefined && entry.lastNs < opts.fromNs) continue;
    if (opts.toNs !== undefined && entry.firstNs > opts.toNs) continue;
    plan.considered++;
    let state: IndexState;
    try {
      state = checkIndex(entry.path, want, opts.verify);
    } catch (e) {
      // Retention took the file since the catalog listed it.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        plan.considered--;
        continue;
      }
      throw e;
    }
    if (state.state === 'current' && !opts.rebuild) plan.upToDate++;
    else if (state.state === 'version' && state.found > state.expected && !opts.rebuild) plan.refused.push({ entry, state });
    else {
      plan.todo.push({ entry, state });
      plan.bytes += entry.size;
    }
  }
  return plan;
}

export interface IndexFailure {
  path: string;
  message: string;
}

export interface IndexSummary {
  considered: number;
  indexed: number;
  upToDate: number;
  failed: number;
  /** Left alone: an index of a newer format version (see IndexPlan.refused). */
  refused: number;
  /** Index bytes written. */
  indexBytes: number;
  failures: IndexFailure[];
}

export interface RunOptions {
  lowPriority?: boolean;
  /** Bytes of pcap read so far of plan.bytes. */
  onProgress?: (doneBytes: number, records: number) => void;
  onIndexed?: (item: IndexPlanItem, indexBytes: number) => void;
  onFailed?: (f: IndexFailure) => void;
  signal?: AbortSignal;
}

/** Files per qe-index process: keeps the argument list far below the kernel's limit. */
const BATCH = 200;

export async function runIndexing(plan: IndexPlan, want: IndexWant, opts: RunOptions = {}): Promise<IndexSummary> {
  const summary: IndexSummary = { considered: plan.considered, indexed: 0, upToDate: plan.upToDate, failed: 0, refused: plan.refused.length, indexBytes: 0, failures: [] };
  let doneBefore = 0;
  let records = 0;
  const fail = (f: IndexFailure) => {
    summary.failed++;
    summary.failures.push(f);
    opts.onFailed?.(f);
  };
  for (let i = 0; i < plan.todo.length && !opts.signal?.aborted; i += BATCH) {
    const batch = plan.todo.slice(i, i + BATCH);
    const byPath = new Map(batch.map((b) => [b.entry.path, b]));
    const reported = new Set<string>();
    let current = 0;
    const { code, stderr } = await runQeIndex({
      fields: want.fields,
      blockSizeBytes: want.blockSizeBytes,
      files: batch.map((b) => b.entry.path),
      ...(opts.lowPriority !== undefined ? { lowPriority: opts.lowPriority } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      onMessage: (m) => {
        if (m.type === 'progress') {
          current = m.bytes;
          opts.onProgress?.(doneBefore + current, records);
        } else if (m.type === 'indexed' || m.type === 'error') {
          const item = byPath.get(m.path);
          reported.add(m.path);
          doneBefore += item?.entry.size ?? 0;
          current = 0;
          if (m.type === 'indexed') {
            summary.indexed++;
            summary.indexBytes += m.index_bytes;
            records += m.records;
            if (item) opts.onIndexed?.(item, m.index_bytes);
          } else fail({ path: m.path, message: m.message });
          opts.onProgress?.(doneBefore, records);
        }
      },
    });
    if (opts.signal?.aborted) break;
    // A qe-index that died (or refused its arguments) reported nothing for the rest.
    for (const b of batch)
      if (!reported.has(b.entry.path)) fail({ path: b.entry.path, message: `qe-index ended (exit ${code ?? 'by signal'}) before indexing it${stderr ? `: ${stderr.split('\n').at(-1)}` : ''}` });
  }
  return summary;
}

export function describeItem(item: IndexPlanItem): string {
  return `${item.entry.path}: ${describeState(item.state)}`;
}

export const INDEX_LOCK_NAME = '.qe-index.lock';

/**
 * One indexing run at a time on a store (the daemon's and `qe-packets index`): the lock lives in
 * the first store directory and goes with the process. Undefined when another run holds it.
 */
export function lockIndexing(storePaths: readonly string[]): { release(): void } | undefined {
  const path = join(storePaths[0]!, INDEX_LOCK_NAME);
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  const r = tryFlock(fd);
  if (r === 'locked') return { release: () => closeSync(fd) };
  closeSync(fd);
  if (r === 'held') return undefined;
  throw new Error(`${path}: ${r.reason}`);
}
