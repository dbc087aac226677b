// The flows of a range: from each file's flow table where it answers exactly, from the packets
// everywhere else, merged. A table answers for a segment (a closed file's one, an open file's
// per flush) whose records all lie inside the range; a segment across an edge of the range, a
// file without a usable table, the part of an open file past its last whole segment, and any
// `--filter` (a record does not say which of its packets match) are read as packets
// (read-packets.ts). So the totals equal what counting the packets of the range gives.
import { readFileSync, statSync } from 'node:fs';
import type { ExtractCounts } from '../extract/run-extractor.js';
import { ExitCode } from '../extract/exit-codes.js';
import { encodeRanges, planReads, type FileRead, type Range } from '../extract/read-plan.js';
import { IndexUnusable, pcapFacts } from '../index/reader.js';
import type { CatalogEntry } from '../store/catalog.js';
import type { ExtractStream } from '../store/select-files.js';
import { FlowTableUnusable, decodeFlowTable, flowPathFor, recordsSpan } from './format.js';
import { FlowMerger } from './merge.js';
import { flowsFromPackets } from './read-packets.js';
import { SeriesCounter } from './series.js';

export interface FlowQuery {
  /** The selected files (store/select-files.ts), one or more streams per interface. */
  streams: readonly ExtractStream[];
  fromNs: bigint;
  /** Inclusive, as extract's --to. */
  toNs: bigint;
  filter?: string;
  /** Read through the index where a filter can use it (extract's --no-index turns it off). */
  useIndex: boolean;
  /** Also a series of packets and bytes per interval: every packet of the range is then read. */
  intervalNs?: bigint;
}

export interface FlowQueryHooks {
  /** What each file contributes, once decided (before any packet is read). */
  onPlanned?: (plans: readonly FilePlan[]) => void;
  /** Bytes of pcap read so far (of `plan.readBytes`), packets found in them. */
  onProgress?: (bytesRead: number, packets: number) => void;
  onWarning?: (message: string) => void;
  progressMs?: number;
}

/** Per file: the records its table answers with, and the byte ranges read as packets instead. */
export interface FilePlan {
  file: CatalogEntry;
  /** Segments taken from the table. */
  fromTable: number;
  /** Undefined: the file is not read; 'all': read whole; else these ranges. */
  read?: 'all' | Range[];
  /** Why (part of) it is read: for the notes. */
  why?: 'filter' | 'interval' | 'no-table' | 'table-unusable' | 'edge' | 'tail';
  note?: string;
  bytes: number;
}

/**
 * Where a query's flow records go: the table records of the files planned, then the records made
 * from packets. TableMerger merges them here (flows lists them); native-stats.ts's NativeStats
 * hands them to qe-flowstat, which reads the tables itself (stats counts them).
 */
export interface FlowSink {
  /** Each file's plan (collect.ts planFile's rules), its table's records merged; in order. */
  planTables(files: readonly CatalogEntry[], q: FlowQuery): FilePlan[] | Promise<FilePlan[]>;
  addBody(iface: string, body: Buffer): void | Promise<void>;
}

/** The flows merged in this process, for the commands that list them. */
export class TableMerger implements FlowSink {
  readonly merger = new FlowMerger();
  planTables(files: readonly CatalogEntry[], q: FlowQuery): FilePlan[] {
    return files.map((f) => planFile(q, f, this.merger));
  }
  addBody(iface: string, body: Buffer): void {
    this.merger.addBody(iface, body);
  }
}

export interface FlowQueryResult<S extends FlowSink = FlowSink> {
  sink: S;
  series?: SeriesCounter;
  plans: FilePlan[];
  exitCode: number;
  error?: string;
  /** Packets and bytes read from the pcap files (qe-extract's counters, summed). */
  read: { bytes: number; packets: number; runs: number };
}

/** Decides, file by file, what its table answers and what is read; the tables' records go to `sink`. */
export async function planFiles(q: FlowQuery, sink: FlowSink): Promise<FilePlan[]> {
  const files = q.streams.flatMap((s) => s.files);
  // A filter's packets are not told apart by a record, and a series needs every packet's time.
  if (q.filter !== undefined) return files.map((file) => ({ file, fromTable: 0, read: 'all', why: 'filter', bytes: file.size }));
  if (q.intervalNs !== undefined) return files.map((file) => ({ file, fromTable: 0, read: 'all', why: 'interval', bytes: file.size }));
  return sink.planTables(files, q);
}

function planFile(q: FlowQuery, file: CatalogEntry, merger: FlowMerger): FilePlan {
  const all = (why: FilePlan['why'], note?: string): FilePlan => ({ file, fromTable: 0, read: 'all', why, ...(note ? { note } : {}), bytes: file.size });
  const path = flowPathFor(file.path);
  let table;
  try {
    const pcap = pcapFacts(file.path);
    table = decodeFlowTable(readFileSync(path), path, pcap);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || (e instanceof IndexUnusable && e.kind === 'missing')) return all('no-table');
    if (e instanceof FlowTableUnusable || e instanceof IndexUnusable) return all('table-unusable', e.message);
    return all('table-unusable', `${path}: ${(e as Error).message}: its pcap file's packets are counted by reading them`);
  }
  const ranges: Range[] = [];
  const read = (lo: number, hi: number | 'end') => {
    const last = ranges[ranges.length - 1];
    if (last && last[1] === lo) last[1] = hi;
    else ranges.push([lo, hi]);
  };
  let fromTable = 0;
  let edge = false;
  for (const { segment, body } of table.segments) {
    // The records' own times, not the segment's first/last packet: packets within a flush need not be in time order.
    const span = recordsSpan(body);
    if (!span) continue;
    if (span.lastNs < q.fromNs || span.firstNs > q.toNs) continue;
    if (span.firstNs >= q.fromNs && span.lastNs <= q.toNs) {
      merger.addBody(file.iface, body);
      fromTable++;
    } else {
      edge = true;
      read(segment.offLo, segment.offHi);
    }
  }
  // Past the table: an open file's packets since its last flush (it may still grow), and what a
  // torn last segment covered (a flush being written as we read: only an open file's table can
  // have one, a closed file's table is complete or refused above, so it is not worth a warning).
  const size = statSync(file.path, { throwIfNoEntry: false })?.size ?? file.size;
  const tail = file.partial || size > table.coveredEnd;
  if (tail) read(table.coveredEnd, 'end');
  const bytes = ranges.reduce((n, [a, b]) => n + (b === 'end' ? Math.max(0, size - a) : b - a), 0);
  if (!ranges.length) return { file, fromTable, bytes: 0 };
  if (ranges.length === 1 && ranges[0]![0] <= 24 && ranges[0]![1] === 'end') return { ...all(edge ? 'edge' : 'tail'), fromTable };
  return { file, fromTable, read: ranges, why: edge ? 'edge' : 'tail', bytes };
}

/** Runs the query: tables first (fast), then one packet read per interface for the rest. */
export async function collectFlows<S extends FlowSink>(q: FlowQuery, sink: S, hooks: FlowQueryHooks = {}): Promise<FlowQueryResult<S>> {
  const plans = await planFiles(q, sink);
  hooks.onPlanned?.(plans);
  const series = q.intervalNs !== undefined ? new SeriesCounter(q.fromNs, q.toNs, q.intervalNs) : undefined;
  const result: FlowQueryResult<S> = { sink, ...(series ? { series } : {}), plans, exitCode: ExitCode.ok, read: { bytes: 0, packets: 0, runs: 0 } };
  const byPath = new Map(plans.map((p) => [p.file.path, p]));
  const ifaces = [...new Set(q.streams.map((s) => s.iface))];
  // A filter is checked even when nothing is to be read: a bad one is an error, not an empty answer.
  const runs: { iface: string; streams: ExtractStream[] }[] = ifaces
    .map((iface) => ({ iface, streams: q.streams.filter((s) => s.iface === iface).map((s) => ({ iface, files: s.files.filter((f) => byPath.get(f.path)?.read) })).filter((s) => s.files.length) }))
    .filter((r) => r.streams.length);
  if (!runs.length && q.filter !== undefined) runs.push({ iface: ifaces[0] ?? '', streams: [] });
  let before = 0;
  for (const run of runs) {
    const files = run.streams.flatMap((s) => s.files);
    // With a filter the index narrows what is read, exactly as extract plans it; else the ranges above.
    const reads: FileRead[] =
      q.filter !== undefined
        ? await planReads(files, q.filter, q.useIndex)
        : files.map((f) => {
            const p = byPath.get(f.path)!;
            return { file: f, why: 'scan-asked', ...(p.read !== 'all' ? { ranges: p.read! } : {}), blocks: 0, bytes: p.bytes, records: 0, indexBytes: 0 };
          });
    const ranges = encodeRanges(reads);
    const linktype = files[0]?.linktype ?? q.streams.flatMap((s) => s.files)[0]?.linktype ?? 1;
    const snaplen = files.reduce((m, f) => Math.max(m, f.snaplen), 0) || 262144;
    const runSeries = series ? new SeriesCounter(q.fromNs, q.toNs, q.intervalNs!) : undefined;
    const outcome = await flowsFromPackets(
      { streams: run.streams, fromNs: q.fromNs, toNs: q.toNs, ...(q.filter !== undefined ? { filter: q.filter } : {}), linktype, snaplen, ...(ranges.spans.size ? { ranges } : {}), ...(runSeries ? { series: runSeries } : {}) },
      {
        progressMs: hooks.progressMs ?? 0,
        onProgress: (c: ExtractCounts) => hooks.onProgress?.(before + c.bytes_read, result.read.packets + c.packets),
        ...(hooks.onWarning ? { onWarning: hooks.onWarning } : {}),
      },
    );
    result.read.runs++;
    if (outcome.counts) {
      before += outcome.counts.bytes_read;
      result.read.bytes += outcome.counts.bytes_read;
      result.read.packets += outcome.counts.packets;
    }
    if (outcome.exitCode !== ExitCode.ok && outcome.exitCode !== ExitCode.empty) {
      result.exitCode = outcome.exitCode;
      if (outcome.error) result.error = outcome.error;
      return result;
    }
    for (const seg of outcome.table?.segments ?? []) await sink.addBody(run.iface, seg.body);
    if (runSeries) series!.add(runSeries);
  }
  return result;
}
