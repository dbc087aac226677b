// `qe-packets extract`: the packets of a time range (and a BPF filter) from every interface in the
// store, merged in timestamp order into one pcap file or onto stdout. The catalog picks the files;
// qe-extract reads, filters and merges them.
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ExitCode } from '../extract/exit-codes.js';
import { runExtractor, type ExtractCounts, type ExtractOutcome } from '../extract/run-extractor.js';
import { scanCatalog, type CatalogEntry } from '../store/catalog.js';
import { selectFiles, unknownInterfaces } from '../store/select-files.js';
import { formatIsoNs, nowNs } from '../time/format-time.js';
import { EXTRACT_USAGE, UsageError, parseExtractArgs, type ExtractRequest } from './extract-args.js';
import { ProgressBar } from './progress-bar.js';
import { formatSize } from '../config/units.js';
import { ConfigError } from '../config/errors.js';
import { encodeRanges, planReads, type FileRead } from '../extract/read-plan.js';
import { explain, explainText } from '../extract/explain.js';
import { loadConfigFile } from '../config/load.js';

const PREFIX = 'qe-packets extract';
const PROGRESS_MS = 150;
// More problems than this are summarised: a badly damaged store should not bury the result.
const MAX_PROBLEMS_SHOWN = 5;

/** A request refused before or instead of extracting: what to say, and the exit status. */
class Refusal extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

type Say = (text: string) => void;

export async function extractCommand(argv: string[]): Promise<number> {
  const say: Say = (text) => process.stderr.write(`${PREFIX}: ${text}\n`);
  try {
    const req = readRequest(argv);
    if (req.help) {
      process.stdout.write(`${EXTRACT_USAGE}\n`);
      return ExitCode.ok;
    }
    if (!req.explain) checkDestination(req.output);
    const paths = await storePaths(req);
    const catalog = await readCatalog(paths, say);
    const chosen = chooseFiles(catalog.entries, req);
    const reads = planReads(chosen.selection.streams.flatMap((s) => s.files), req.filter, !req.noIndex);
    if (req.explain) {
      const e = explain(reads, req.filter, req.fromNs, req.toNs);
      process.stdout.write(req.json ? `${JSON.stringify(e)}\n` : `${explainText(e)}\n`);
      return ExitCode.ok;
    }
    noteScans(reads, say);
    const outcome = await extract(req, chosen, reads, say);
    reportOutcome(req, chosen.selection.files, outcome, say, indexedText(reads, outcome));
    return outcome.exitCode;
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    say(e.message);
    return e.exitCode;
  }
}

function readRequest(argv: string[]): ExtractRequest {
  try {
    return parseExtractArgs(argv, nowNs());
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    throw new Refusal(ExitCode.usage, e.message);
  }
}

function checkDestination(output: string): void {
  if (output === '-' && process.stdout.isTTY) {
    throw new Refusal(ExitCode.usage, 'refusing to write a binary pcap to a terminal: pipe it (-w - | wireshark -k -i -) or give -w FILE');
  }
  const outputProblem = checkOutput(output);
  if (outputProblem) throw new Refusal(ExitCode.output, outputProblem);
}

/** The store's directories from the configuration; the output must not be one of them. */
async function storePaths(req: ExtractRequest): Promise<string[]> {
  let paths: string[];
  try {
    paths = (await loadConfigFile(req.configPath)).storage.paths;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new Refusal(ExitCode.usage, `invalid configuration\n${e.message}`);
  }
  const intoStore = storeDirHolding(req.output, paths);
  if (intoStore) {
    throw new Refusal(ExitCode.output, `-w ${req.output} is inside the capture store (${intoStore}): write the extract somewhere else, so it can never replace or mix with captures`);
  }
  return paths;
}

async function readCatalog(paths: string[], say: Say) {
  const catalog = await scanCatalog(paths);
  const problems = catalog.problems;
  for (const p of problems.slice(0, MAX_PROBLEMS_SHOWN)) say(`warning: ${p.path}: ${p.message}`);
  if (problems.length > MAX_PROBLEMS_SHOWN) say(`warning: ${problems.length - MAX_PROBLEMS_SHOWN} more files could not be read`);
  return catalog;
}

interface Chosen {
  selection: ReturnType<typeof selectFiles>;
  /** The output's link type and snaplen. */
  linktype: number;
  snaplen: number;
}

/** The files of the range and interfaces, all of one link type. */
function chooseFiles(entries: CatalogEntry[], req: ExtractRequest): Chosen {
  const unknown = unknownInterfaces(entries, req.ifaces);
  if (unknown.length > 0) {
    const known = [...new Set(entries.map((e) => e.iface))].sort();
    throw new Refusal(
      ExitCode.usage,
      `--iface ${unknown.join(',')}: no capture files for ${unknown.length > 1 ? 'these interfaces' : 'that interface'} in the store` +
        ` (${known.length ? `interfaces in the store: ${known.join(', ')}` : 'the store is empty'})`,
    );
  }
  const selection = selectFiles(entries, { fromNs: req.fromNs, toNs: req.toNs, ifaces: req.ifaces });
  const selected = selection.streams.flatMap((s) => s.files);
  const linktypes = linktypesOf(selected);
  if (linktypes.size > 1) {
    const parts = [...linktypes].map(([lt, ifaces]) => `link type ${lt} on ${[...ifaces].sort().join(', ')}`);
    throw new Refusal(ExitCode.input, `the range holds files of different link types (${parts.join('; ')}): extract them separately with --iface`);
  }
  const candidates = req.ifaces.length ? entries.filter((e) => req.ifaces.includes(e.iface)) : entries;
  const linktype = selected[0]?.linktype ?? candidates[0]?.linktype ?? 1;
  const snaplen = selected.reduce((m, f) => Math.max(m, f.snaplen), 0) || candidates[0]?.snaplen || 262144;
  return { selection, linktype, snaplen };
}

/** Runs qe-extract, with a progress bar on a terminal. */
async function extract(req: ExtractRequest, { selection, linktype, snaplen }: Chosen, reads: readonly FileRead[], say: Say): Promise<ExtractOutcome> {
  const stderr = process.stderr;
  const ranges = encodeRanges(reads);
  const total = reads.reduce((n, r) => n + r.bytes, 0);
  const bar = stderr.isTTY ? new ProgressBar(stderr, { total, columns: stderr.columns }) : undefined;
  let outcome: ExtractOutcome;
  try {
    outcome = await runExtractor(
      {
        streams: selection.streams,
        fromNs: req.fromNs,
        toNs: req.toNs,
        ...(req.filter !== undefined ? { filter: req.filter } : {}),
        output: req.output,
        linktype,
        snaplen,
        ...(ranges.spans.size ? { ranges } : {}),
      },
      {
        progressMs: bar ? PROGRESS_MS : 0,
        onProgress: (c) => bar?.update(c.bytes_read, c.packets),
        onWarning: (m) => (bar ? bar.message(`${PREFIX}: warning: ${m}`) : say(`warning: ${m}`)),
      },
    );
  } catch (e) {
    // qe-extract missing or not executable: an installation problem, said plainly.
    throw new Refusal(ExitCode.internal, (e as Error).message);
  }
  if (bar && (outcome.exitCode === ExitCode.ok || outcome.exitCode === ExitCode.empty)) {
    bar.update(outcome.counts?.bytes_read ?? 0, outcome.counts?.packets ?? 0);
    bar.finish();
  } else if (bar) {
    stderr.write('\r\x1b[K');
  }
  return outcome;
}

/** How much the index saved, for the closing line: "; read 2MB of 40GB (3 of 3 files through their index)". */
function indexedText(reads: readonly FileRead[], outcome: ExtractOutcome): string {
  const through = reads.filter((r) => r.why === 'index').length;
  if (!through || !outcome.counts) return '';
  const total = reads.reduce((n, r) => n + r.file.size, 0);
  return `; read ${formatSize(outcome.counts.bytes_read)} of ${formatSize(total)} (${through} of ${reads.length} file${reads.length === 1 ? '' : 's'} through their index)`;
}

function reportOutcome(req: ExtractRequest, files: number, outcome: ExtractOutcome, say: Say, indexed = ''): void {
  const where = req.output === '-' ? 'standard output' : req.output;
  switch (outcome.exitCode) {
    case ExitCode.ok:
      say(`wrote ${countText(outcome.counts)} from ${files} file${files === 1 ? '' : 's'} to ${where}${indexed}`);
      break;
    case ExitCode.empty:
      say(`${emptyText(req, files)}; wrote an empty pcap to ${where}`);
      break;
    case ExitCode.pipeClosed:
    case ExitCode.interrupted:
      break; // the person or the reader ended it: nothing to add
    default:
      say(outcome.error ?? `qe-extract failed with exit status ${outcome.exitCode}`);
  }
}

/** Says why files of the range are scanned when a filter could have used their index. */
function noteScans(reads: readonly FileRead[], say: Say): void {
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

/** Fails fast, before a possibly long scan, on an output that cannot be written. */
function checkOutput(output: string): string | undefined {
  if (output === '-') return undefined;
  const dir = dirname(resolve(output));
  try {
    if (statSync(output, { throwIfNoEntry: false })?.isDirectory()) {
      return `-w ${output} is a directory: give a file name inside it`;
    }
    accessSync(dir, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    return `-w ${output}: cannot write in ${dir} (${why})`;
  }
  return undefined;
}

/** The store directory the output would land in, if any. */
function storeDirHolding(output: string, storePaths: readonly string[]): string | undefined {
  if (output === '-' || output === '') return undefined; // stdout, or --explain (no output)
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const dir = real(dirname(resolve(output)));
  return storePaths.find((p) => real(p) === dir);
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

function countText(c: ExtractCounts | undefined): string {
  if (!c) return 'the packets';
  return `${c.packets.toLocaleString('en-US')} packet${c.packets === 1 ? '' : 's'} (${formatSize(c.bytes)})`;
}

function emptyText(req: ExtractRequest, files: number): string {
  const range = `between ${formatIsoNs(req.fromNs)} and ${formatIsoNs(req.toNs)}`;
  const filter = req.filter !== undefined ? ` matching "${req.filter}"` : '';
  const ifaces = req.ifaces.length ? ` on ${req.ifaces.join(', ')}` : '';
  const searched = files === 0 ? 'no capture file covers that range' : `searched ${files} file${files === 1 ? '' : 's'}`;
  return `no packets ${range}${ifaces}${filter} (${searched})`;
}
