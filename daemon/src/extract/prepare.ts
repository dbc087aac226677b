// What an extraction decides before qe-extract runs, the same for `qe-packets extract` and the
// API's /extract and /explain: the catalog of the store, the files of the range and interfaces (all
// of one link type), the read plan through their indexes, and the refusals with their words. The
// command and the API differ only in where the packets and the words go.
import { formatIsoNs } from '../time/format-time.js';
import { scanCatalog, type CatalogEntry, type ScanOptions } from '../store/catalog.js';
import { selectFiles, unknownInterfaces } from '../store/select-files.js';
import { compileFilter } from '../config/check-environment.js';
import { ExitCode } from './exit-codes.js';
import { encodeRanges, planReads, type FileRead } from './read-plan.js';
import type { ExtractJob } from './run-extractor.js';

// More problems than this are summarised: a badly damaged store should not bury the result.
const MAX_PROBLEMS_SHOWN = 5;

/** A request refused before or instead of extracting: what to say, and the exit status. */
export class Refusal extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

export type Say = (text: string) => void;

/** What to extract: the parsed flags (extract-args.ts) or the API's query parsed by them. */
export interface ExtractQuery {
  fromNs: bigint;
  /** Inclusive. */
  toNs: bigint;
  filter?: string;
  ifaces: string[];
  noIndex: boolean;
}

export interface Chosen {
  selection: ReturnType<typeof selectFiles>;
  /** The output's link type and snaplen. */
  linktype: number;
  snaplen: number;
}

export interface Prepared {
  chosen: Chosen;
  reads: FileRead[];
}

/** Catalog, files and read plan of a query over the store at `paths`; a Refusal for a query that cannot be answered. */
export async function prepareExtraction(paths: readonly string[], q: ExtractQuery, say: Say): Promise<Prepared> {
  const catalog = await readCatalog(paths, say, { fromNs: q.fromNs, toNs: q.toNs });
  const chosen = chooseFiles(catalog.entries, q);
  const reads = await planReads(chosen.selection.streams.flatMap((s) => s.files), q.filter, !q.noIndex);
  return { chosen, reads };
}

/**
 * A plan shown without running qe-extract (--explain, the API's /explain) must still refuse a
 * filter libpcap cannot compile, in qe-extract's words; an extraction leaves that to qe-extract,
 * which compiles it anyway.
 */
export async function refuseBadFilter(q: ExtractQuery, { linktype, snaplen }: Chosen): Promise<void> {
  const bad = q.filter !== undefined ? await compileFilter(q.filter, snaplen, linktype) : undefined;
  if (bad) throw new Refusal(ExitCode.usage, `bad filter ${JSON.stringify(q.filter)}: ${bad.text}`);
}

/** qe-extract's job for a prepared query, writing to `output` (a path, or `-`). */
export function extractorJob(q: ExtractQuery, { chosen, reads }: Prepared, output: string): ExtractJob {
  const ranges = encodeRanges(reads);
  // A file whose index rules out every record is not opened at all: from a cold cache its pcap
  // header alone is a disk trip, and most files of a narrow query are such files. Its link type
  // and snaplen are the catalog's, already weighed in `chosen`.
  const ruledOut = new Set(reads.filter((r) => r.why === 'index' && r.ranges?.length === 0).map((r) => r.file.path));
  const streams = ruledOut.size ? chosen.selection.streams.map((s) => ({ ...s, files: s.files.filter((f) => !ruledOut.has(f.path)) })) : chosen.selection.streams;
  return {
    streams,
    fromNs: q.fromNs,
    toNs: q.toNs,
    ...(q.filter !== undefined ? { filter: q.filter } : {}),
    output,
    linktype: chosen.linktype,
    snaplen: chosen.snaplen,
    ...(ranges.spans.size ? { ranges } : {}),
  };
}

/** The store's catalog; with `range`, files it rules out are taken from the cache unchecked (ScanOptions.range). */
export async function readCatalog(paths: readonly string[], say: Say, range?: ScanOptions['range']) {
  const catalog = await scanCatalog(paths, range ? { range } : {});
  const problems = catalog.problems;
  for (const p of problems.slice(0, MAX_PROBLEMS_SHOWN)) say(`warning: ${p.path}: ${p.message}`);
  if (problems.length > MAX_PROBLEMS_SHOWN) say(`warning: ${problems.length - MAX_PROBLEMS_SHOWN} more files could not be read`);
  return catalog;
}

/** Refuses interfaces asked for that no file of the store belongs to (most likely a typo). */
export function checkInterfaces(entries: readonly CatalogEntry[], ifaces: readonly string[]): void {
  const unknown = unknownInterfaces(entries, ifaces);
  if (unknown.length > 0) {
    const known = [...new Set(entries.map((e) => e.iface))].sort();
    throw new Refusal(
      ExitCode.usage,
      `--iface ${unknown.join(',')}: no capture files for ${unknown.length > 1 ? 'these interfaces' : 'that interface'} in the store` +
        ` (${known.length ? `interfaces in the store: ${known.join(', ')}` : 'the store is empty'})`,
    );
  }
}

/** The files of the range and interfaces, all of one link type. */
function chooseFiles(entries: CatalogEntry[], q: ExtractQuery): Chosen {
  checkInterfaces(entries, q.ifaces);
  const selection = selectFiles(entries, { fromNs: q.fromNs, toNs: q.toNs, ifaces: q.ifaces });
  const selected = selection.streams.flatMap((s) => s.files);
  const linktypes = linktypesOf(selected);
  if (linktypes.size > 1) {
    const parts = [...linktypes].map(([lt, ifaces]) => `link type ${lt} on ${[...ifaces].sort().join(', ')}`);
    throw new Refusal(ExitCode.input, `the range holds files of different link types (${parts.join('; ')}): extract them separately with --iface`);
  }
  const candidates = q.ifaces.length ? entries.filter((e) => q.ifaces.includes(e.iface)) : entries;
  const linktype = selected[0]?.linktype ?? candidates[0]?.linktype ?? 1;
  const snaplen = selected.reduce((m, f) => Math.max(m, f.snaplen), 0) || candidates[0]?.snaplen || 262144;
  return { selection, linktype, snaplen };
}

function linktypesOf(files: readonly CatalogEntry[]): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  for (const f of files) {
    let ifaces = out.get(f.linktype);
    if (!ifaces) out.set(f.linktype, (ifaces = new Set()));
    ifaces.add(f.iface);
  }
  return out;
}

/** Says why files of the range are scanned when a filter could have used their index. */
export function noteScans(reads: readonly FileRead[], say: Say): void {
  const unusable = reads.filter((r) => r.why === 'index-unusable');
  for (const r of unusable.slice(0, MAX_PROBLEMS_SHOWN)) say(`warning: ${r.note}`);
  if (unusable.length > MAX_PROBLEMS_SHOWN) say(`warning: ${unusable.length - MAX_PROBLEMS_SHOWN} more indexes could not be used`);
  const count = (why: FileRead['why']) => reads.filter((r) => r.why === why).length;
  const n = (k: number) => `${k} file${k === 1 ? '' : 's'}`;
  if (count('not-narrowed')) say(`note: the filter cannot be narrowed by an index (not X, lengths, names...): scanning ${n(count('not-narrowed'))} of the range`);
  if (count('fields')) say(`note: ${n(count('fields'))} of the range ${count('fields') === 1 ? 'has an index' : 'have indexes'} without a field the filter needs: scanning ${count('fields') === 1 ? 'it' : 'them'}`);
  const through = count('index');
  if (through && count('no-index')) say(`note: ${n(count('no-index'))} of the range ${count('no-index') === 1 ? 'has' : 'have'} no index yet: scanning ${count('no-index') === 1 ? 'it' : 'them'} (qe-packets index builds them)`);
}

/** The words for an empty result (exit 3). */
export function emptyText(q: ExtractQuery, files: number): string {
  const range = `between ${formatIsoNs(q.fromNs)} and ${formatIsoNs(q.toNs)}`;
  const filter = q.filter !== undefined ? ` matching "${q.filter}"` : '';
  const ifaces = q.ifaces.length ? ` on ${q.ifaces.join(', ')}` : '';
  const searched = files === 0 ? 'no capture file covers that range' : `searched ${files} file${files === 1 ? '' : 's'}`;
  return `no packets ${range}${ifaces}${filter} (${searched})`;
}
