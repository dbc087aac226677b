// Indexing the closed files that need it: those with no index, a damaged one, one of another
// format version, or one built with other fields than the config's (`rebuild`: all of them), and
// likewise their flow tables when flows.enabled (only what is missing is built: a file whose index
// is sound but has no flow table gets `qe-index --fields '' --flows`). One
// engine for `qe-packets index` and the daemon's background run at start. Files being written are
// left to their writer, which indexes them as it captures.
import { closeSync, constants, openSync } from 'node:fs';
import { join } from 'node:path';
import type { CatalogEntry } from './catalog.js';
import { checkFlowTable } from './flow-check.js';
import { checkIndex, describeState, type IndexState, type IndexVerify, type IndexWant } from './index-check.js';
import { tryFlock } from './part-lock.js';
import { runQeIndex } from './run-qe-index.js';

export interface IndexPlanItem {
  entry: CatalogEntry;
  /** The index's state ('current' when no index is wanted). */
  state: IndexState;
  /** The flow table's state ('current' when none is wanted). */
  flowState: IndexState;
  /** What qe-index builds for it. */
  needs: { index: boolean; flows: boolean };
}

const NOT_WANTED: IndexState = { state: 'current', indexBytes: 0 };
const newer = (s: IndexState) => s.state === 'version' && s.found > s.expected;

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
    let flowState: IndexState;
    try {
      state = want.fields.length ? checkIndex(entry.path, want, opts.verify) : NOT_WANTED;
      flowState = want.flows ? checkFlowTable(entry.path, opts.verify) : NOT_WANTED;
    } catch (e) {
      // Retention took the file since the catalog listed it.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        plan.considered--;
        continue;
      }
      throw e;
    }
    const needs = {
      index: want.fields.length > 0 && (opts.rebuild === true || (state.state !== 'current' && !newer(state))),
      flows: want.flows === true && (opts.rebuild === true || (flowState.state !== 'current' && !newer(flowState))),
    };
    const item = { entry, state, flowState, needs };
    if (!opts.rebuild && (newer(state) || newer(flowState))) plan.refused.push(item);
    if (needs.index || needs.flows) {
      plan.todo.push(item);
      plan.bytes += entry.size;
    } else if (!plan.refused.includes(item)) plan.upToDate++;
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
  // One qe-index run builds the same things for every file it is given: files are grouped by what
  // they need (newest first within each group, as planned).
  const groups = [true, false].flatMap((index) => [true, false].map((flows) => plan.todo.filter((t) => t.needs.index === index && t.needs.flows === flows))).filter((g) => g.length);
  const batches = groups.flatMap((g) => Array.from({ length: Math.ceil(g.length / BATCH) }, (_, k) => g.slice(k * BATCH, (k + 1) * BATCH)));
  for (const batch of batches) {
    if (opts.signal?.aborted) break;
    const byPath = new Map(batch.map((b) => [b.entry.path, b]));
    const reported = new Set<string>();
    let current = 0;
    const { code, stderr } = await runQeIndex({
      fields: batch[0]!.needs.index ? want.fields : [],
      blockSizeBytes: want.blockSizeBytes,
      flows: batch[0]!.needs.flows,
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
            summary.indexBytes += m.index_bytes + m.flow_bytes;
            records += m.records;
            if (item) opts.onIndexed?.(item, m.index_bytes + m.flow_bytes);
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
  return `${item.entry.path}: ${describeNeeds(item)}`;
}

/** Why a file is (re)built, or left alone: its index's state and its flow table's, as far as they matter. */
export function describeNeeds(item: IndexPlanItem): string {
  const parts: string[] = [];
  if (item.needs.index || newer(item.state)) parts.push(describeState(item.state));
  if (item.needs.flows || newer(item.flowState)) parts.push(describeState(item.flowState, 'flow table'));
  return parts.join('; ') || 'up to date';
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
