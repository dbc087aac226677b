// What `qe-packets flows` and `qe-packets stats` share: the files of the range (as extract picks
// them), the query (daemon/src/flows/collect.ts) with a progress bar on a terminal, and extract's
// refusals and closing words. The store's paths come from the caller: the commands read the
// config file (storePathsOf), the API serves the daemon's loaded config.
import { Refusal, emptyText } from '../extract/prepare.js';
import { ConfigError } from '../config/errors.js';
import { loadConfigFile } from '../config/load.js';
import { formatSize } from '../config/units.js';
import { ExitCode } from '../extract/exit-codes.js';
import { collectFlows, type FilePlan, type FlowQueryResult, type FlowSink } from '../flows/collect.js';
import { scanCatalog } from '../store/catalog.js';
import { selectFiles, unknownInterfaces, type Selection } from '../store/select-files.js';
import type { FlowsRequest } from './flows-args.js';
import { ProgressBar } from './progress-bar.js';

const PROGRESS_MS = 150;
const MAX_PROBLEMS_SHOWN = 5;

export type Say = (text: string) => void;

/** A request refused before or instead of answering: what to say, and the exit status. */
// One refusal for every query the store answers (extract, flows, stats): the API maps it alike.
export { Refusal };

export interface Answer<S extends FlowSink> {
  result: FlowQueryResult<S>;
  selection: Selection;
}

/** storage.paths of the config file a command was given (--config). */
export async function storePathsOf(configPath: string): Promise<string[]> {
  try {
    return (await loadConfigFile(configPath)).storage.paths;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new Refusal(ExitCode.usage, `invalid configuration\n${e.message}`);
  }
}

/** Nothing in the range: the command's exit 3 and the API's 404 empty_range, in the same words. */
export function emptyRange(req: Omit<FlowsRequest, 'format' | 'help'>, files: number): Refusal {
  return new Refusal(ExitCode.empty, emptyText(req, files));
}

/** Runs the query into `sink` (made once the files are chosen); a refusal ends it (`abort`). */
export async function runQuery<S extends FlowSink & { abort?(): void }>(req: Omit<FlowsRequest, 'format' | 'help'>, paths: readonly string[], say: Say, makeSink: () => S, intervalNs?: bigint): Promise<Answer<S>> {
  const catalog = await scanCatalog(paths, { range: { fromNs: req.fromNs, toNs: req.toNs } });
  for (const p of catalog.problems.slice(0, MAX_PROBLEMS_SHOWN)) say(`warning: ${p.path}: ${p.message}`);
  if (catalog.problems.length > MAX_PROBLEMS_SHOWN) say(`warning: ${catalog.problems.length - MAX_PROBLEMS_SHOWN} more files could not be read`);
  const unknown = unknownInterfaces(catalog.entries, req.ifaces);
  if (unknown.length > 0) {
    const known = [...new Set(catalog.entries.map((e) => e.iface))].sort();
    throw new Refusal(
      ExitCode.usage,
      `--iface ${unknown.join(',')}: no capture files for ${unknown.length > 1 ? 'these interfaces' : 'that interface'} in the store` +
        ` (${known.length ? `interfaces in the store: ${known.join(', ')}` : 'the store is empty'})`,
    );
  }
  const selection = selectFiles(catalog.entries, { fromNs: req.fromNs, toNs: req.toNs, ifaces: req.ifaces });
  const stderr = process.stderr;
  let bar: ProgressBar | undefined;
  let shown = 0;
  const warn = (m: string) => (bar ? bar.message(m) : say(m));
  let result: FlowQueryResult<S>;
  const sink = makeSink();
  try {
    result = await collectFlows(
      { streams: selection.streams, fromNs: req.fromNs, toNs: req.toNs, ...(req.filter !== undefined ? { filter: req.filter } : {}), useIndex: !req.noIndex, ...(intervalNs !== undefined ? { intervalNs } : {}) },
      sink,
      {
        progressMs: stderr.isTTY ? PROGRESS_MS : 0,
        onPlanned: (plans) => {
          for (const p of plans) if (p.note && shown++ < MAX_PROBLEMS_SHOWN) say(`warning: ${p.note}`);
          const missing = plans.filter((p) => p.why === 'no-table').length;
          if (missing) say(`note: ${missing} file${missing === 1 ? '' : 's'} of the range ${missing === 1 ? 'has' : 'have'} no flow table yet: reading ${missing === 1 ? 'it' : 'them'} (qe-packets index builds them)`);
          const total = plans.reduce((n, p) => n + p.bytes, 0);
          if (stderr.isTTY && total > 0) bar = new ProgressBar(stderr, { total, columns: stderr.columns });
        },
        onProgress: (bytes, packets) => bar?.update(bytes, packets),
        onWarning: (m) => warn(`warning: ${m}`),
      },
    );
  } catch (e) {
    sink.abort?.();
    // qe-extract, qe-index or qe-flowstat missing or not executable: an installation problem, said plainly.
    throw new Refusal(ExitCode.internal, (e as Error).message);
  }
  if (bar && result.exitCode === ExitCode.ok) bar.finish();
  else if (bar) stderr.write('\r\x1b[K');
  if (result.exitCode !== ExitCode.ok) {
    sink.abort?.();
    throw new Refusal(result.exitCode, result.error ?? `reading the packets failed with exit status ${result.exitCode}`);
  }
  return { result, selection };
}

/** Where the answer came from: "5 files: 4 through their flow tables, 1 read (10MiB)". */
export function sourcesText(plans: readonly FilePlan[], read: FlowQueryResult['read']): string {
  const n = (k: number) => `${k} file${k === 1 ? '' : 's'}`;
  const tables = plans.filter((p) => p.fromTable > 0 && !p.read).length;
  const partly = plans.filter((p) => p.fromTable > 0 && p.read).length;
  const whole = plans.filter((p) => p.fromTable === 0 && p.read).length;
  const parts = [`${tables} through ${tables === 1 ? 'its flow table' : 'their flow tables'}`];
  if (partly) parts.push(`${partly} partly (the rest of ${partly === 1 ? 'it' : 'them'} read)`);
  if (whole) parts.push(`${whole} read`);
  return `${n(plans.length)}: ${parts.join(', ')}${read.runs ? `; read ${formatSize(read.bytes)} of pcap` : ''}`;
}
