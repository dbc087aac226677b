// `qe-packets stats`: totals and top-N tables of a time range, and with --interval a time series,
// as an aligned table with human units or one JSON object.
import { formatCount, formatSize } from '../config/units.js';
import { ExitCode } from '../extract/exit-codes.js';
import { NativeStats } from '../flows/native-stats.js';
import type { SeriesPoint } from '../flows/series.js';
import type { StatsRow, StatsTotal } from '../flows/stats.js';
import { formatIsoNs, nowNs } from '../time/format-time.js';
import { UsageError } from './extract-args.js';
import { STATS_USAGE, parseStatsArgs, type StatsRequest } from './flows-args.js';
import { Refusal, emptyRange, runQuery, sourcesText, storePathsOf, type Say } from './flow-query.js';

const PREFIX = 'qe-packets stats';

export async function statsCommand(argv: string[]): Promise<number> {
  const say: Say = (text) => process.stderr.write(`${PREFIX}: ${text}\n`);
  let req: StatsRequest;
  try {
    req = parseStatsArgs(argv, nowNs());
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    say(e.message);
    return ExitCode.usage;
  }
  if (req.help) {
    process.stdout.write(`${STATS_USAGE}\n`);
    return ExitCode.ok;
  }
  try {
    const { total, rows, series, sources } = await statsAnswer(req, await storePathsOf(req.configPath), say);
    if (req.json) {
      process.stdout.write(`${JSON.stringify(statsJson(req, total, rows, series))}\n`);
    } else {
      process.stdout.write(statsText(req, total, rows, series));
    }
    say(`from ${sources}`);
    return ExitCode.ok;
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    say(e.message);
    return e.exitCode;
  }
}

export interface StatsAnswer {
  total: StatsTotal;
  rows: StatsRow[];
  series?: SeriesPoint[];
  /** Where the answer came from (the command's closing line). */
  sources: string;
}

/**
 * The statistics of a request over the store at `paths`: what the command prints and the API
 * serves. Nothing in the range is a Refusal (exit 3, the API's 404 empty_range).
 */
export async function statsAnswer(req: StatsRequest, paths: readonly string[], say: Say): Promise<StatsAnswer> {
  const { result, selection } = await runQuery(req, paths, say, () => new NativeStats(req.fromNs, req.toNs, req.by, req.top), req.intervalNs);
  // Merged and counted by qe-flowstat: no flow passes through JavaScript.
  let s;
  try {
    s = await result.sink.finish();
  } catch (e) {
    throw new Refusal(ExitCode.internal, (e as Error).message);
  }
  if (s.total.packets === 0) throw emptyRange(req, selection.files);
  const series = result.series?.points();
  return { ...s, ...(series ? { series } : {}), sources: sourcesText(result.plans, result.read) };
}

export function statsJson(req: StatsRequest, total: StatsTotal, rows: StatsRow[], series?: SeriesPoint[]) {
  return {
    from: formatIsoNs(req.fromNs),
    to: formatIsoNs(req.toNs),
    by: req.by,
    total,
    rows,
    ...(series ? { series: series.map((p) => ({ start: formatIsoNs(p.startNs), packets: p.packets, bytes: p.bytes })) } : {}),
  };
}

const count = (n: number) => formatCount(n);
const pct = (part: number, whole: number) => `${whole ? ((100 * part) / whole).toFixed(1) : '0.0'}%`;
/** Bits per second in SI units, as links are sold: 1.2Gbit/s. */
const rate = (bits: number) => `${formatSize(bits, 'si').replace(/B$/, '')}bit/s`;

/** Columns padded to their widest cell: the first left-aligned, the rest right-aligned. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function statsText(req: StatsRequest, total: StatsTotal, rows: StatsRow[], series?: SeriesPoint[]): string {
  let out = `${formatIsoNs(req.fromNs)} to ${formatIsoNs(req.toNs)}${req.filter !== undefined ? `, filter "${req.filter}"` : ''}: ${count(total.packets)} packets, ${formatSize(total.bytes)}, ${count(total.flows)} flows\n\n`;
  out += table(
    [req.by.toUpperCase(), 'PACKETS', 'BYTES', 'SHARE', 'FLOWS'],
    rows.map((r) => [String(r.key), count(r.packets), formatSize(r.bytes), pct(r.bytes, total.bytes), count(r.flows)]),
  );
  if (series && req.intervalNs) {
    const secs = Number(req.intervalNs) / 1e9;
    out += `\n${table(
      ['START', 'PACKETS/S', 'BITS/S'],
      series.map((p) => [formatIsoNs(p.startNs), formatCount(p.packets / secs, 1, true), rate((p.bytes * 8) / secs)]),
    )}`;
  }
  return out;
}
