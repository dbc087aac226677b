// `qe-packets flows`: the merged flow records of a time range, one per line (text, JSON lines or
// CSV), earliest first, written as they are rendered.
import { ExitCode } from '../extract/exit-codes.js';
import { totalsOf } from '../flows/stats.js';
import { CSV_KEYS, flowCsv, flowJson, flowLine } from '../flows/render.js';
import { formatCount, formatSize } from '../config/units.js';
import { nowNs } from '../time/format-time.js';
import { FLOWS_USAGE, parseFlowsArgs, type FlowsRequest } from './flows-args.js';
import { UsageError } from './extract-args.js';
import { TableMerger } from '../flows/collect.js';
import type { Flow } from '../flows/merge.js';
import type { StatsTotal } from '../flows/stats.js';
import { Refusal, emptyRange, runQuery, sourcesText, storePathsOf, type Say } from './flow-query.js';

const PREFIX = 'qe-packets flows';

export async function flowsCommand(argv: string[]): Promise<number> {
  const say: Say = (text) => process.stderr.write(`${PREFIX}: ${text}\n`);
  let req: FlowsRequest;
  try {
    req = parseFlowsArgs(argv, nowNs());
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    say(e.message);
    return ExitCode.usage;
  }
  if (req.help) {
    process.stdout.write(`${FLOWS_USAGE}\n`);
    return ExitCode.ok;
  }
  try {
    const { flows, total, sources } = await flowsAnswer(req, await storePathsOf(req.configPath), say);
    const ok = await write(flows.map((f) => flowJson(f)), req.format);
    if (!ok) return ExitCode.pipeClosed;
    say(`${formatCount(total.flows)} flows, ${formatCount(total.packets)} packets (${formatSize(total.bytes)}) from ${sources}`);
    return ExitCode.ok;
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    say(e.message);
    return e.exitCode;
  }
}

/**
 * The merged flows of a request over the store at `paths`, earliest first: what the command prints
 * and the API streams. Nothing in the range is a Refusal (exit 3, the API's 404 empty_range).
 */
export async function flowsAnswer(req: Omit<FlowsRequest, 'format' | 'help'>, paths: readonly string[], say: Say): Promise<{ flows: Flow[]; total: StatsTotal; sources: string }> {
  const { result, selection } = await runQuery(req, paths, say, () => new TableMerger());
  const flows = result.sink.merger.sorted();
  const total = totalsOf(flows);
  if (total.packets === 0) throw emptyRange(req, selection.files);
  return { flows, total, sources: sourcesText(result.plans, result.read) };
}

/** Writes the lines in chunks, waiting for the reader (a pager, head); false when it went away. */
async function write(rows: ReturnType<typeof flowJson>[], format: FlowsRequest['format']): Promise<boolean> {
  const out = process.stdout;
  let closed = false;
  out.on('error', () => (closed = true));
  const line = format === 'json' ? (j: (typeof rows)[number]) => JSON.stringify(j) : format === 'csv' ? flowCsv : flowLine;
  let chunk = format === 'csv' ? `${CSV_KEYS.join(',')}\n` : '';
  for (const j of rows) {
    chunk += `${line(j)}\n`;
    if (chunk.length > 64 * 1024) {
      if (!out.write(chunk)) await new Promise<void>((r) => (closed ? r() : out.once('drain', r).once('error', () => r())));
      chunk = '';
      if (closed) return false;
    }
  }
  if (chunk) out.write(chunk);
  return !closed;
}
