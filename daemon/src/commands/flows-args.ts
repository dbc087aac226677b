// Turns `qe-packets flows` and `qe-packets stats` flags into checked requests, in extract's words
// (extract-args.ts): every mistake is a UsageError naming the flag, the value and what to write.
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { parseDuration } from '../config/units.js';
import { STATS_BY, type StatsBy } from '../flows/stats.js';
import { TIME_FORMS, type TimeZoneRule } from '../time/parse-time.js';
import { UsageError, checkFilter, parseIfaces, parseRange } from './extract-args.js';

const RANGE_HELP = `  --from TIME      start of the range (inclusive)
  --to TIME        end of the range (inclusive; default: now)
  --filter BPF     only packets matching this libpcap filter, as extract means it (read from the
                   packets, through the index where it helps, instead of the flow tables)
  --iface NAME     only these interfaces (repeat, or separate with commas; default: all)
  --config FILE    daemon configuration for storage.paths (default ${DEFAULT_CONFIG_PATH})
  --no-index       with --filter: read every file of the range whole instead of through its index`;

export const FLOWS_USAGE = `usage: qe-packets flows --from TIME [--to TIME] [--filter BPF] [--iface NAME]... [--json | --csv]

The flows of a time range (what talked to what, how much each way, TCP flags and handshake round
trip, Community ID), one per line, earliest first. A flow that spans files is one line.

${RANGE_HELP}
  --json           one JSON object per line: community_id, iface, vlan, proto, src, sport, dst,
                   dport, first, last, packets, bytes, packets_rev, bytes_rev, tcp_flags, syn,
                   synack, fin, rst, rtt_ms
  --csv            the same keys as CSV, with a header line

TIME is ${TIME_FORMS}.
Exit status: 0 flows printed, 2 bad arguments or filter, 3 nothing in the range, 4 unreadable input.`;

export const STATS_USAGE = `usage: qe-packets stats --from TIME [--to TIME] [--filter BPF] [--iface NAME]...
                        [--by host|src|dst|conversation|port|proto|vlan|iface] [--top N] [--interval D] [--json]

Totals and the top talkers of a time range: packets, bytes, share of the total and flows per key;
exact (the packets of the range counted, whatever the flow tables hold).

${RANGE_HELP}
  --by KEY         host (default), src, dst, conversation, port (the destination port), proto,
                   vlan or iface
  --top N          rows to show (default 10)
  --interval D     also a time series of packets/s and bits/s per D (1s, 5m, 1h...): reads the
                   packets of the range
  --json           {"from", "to", "by", "total": {...}, "rows": [...], "series": [...]} on stdout

TIME is ${TIME_FORMS}.
Exit status: 0 statistics printed, 2 bad arguments or filter, 3 nothing in the range, 4 unreadable input.`;

export interface FlowsRequest {
  help: boolean;
  fromNs: bigint;
  toNs: bigint;
  filter?: string;
  ifaces: string[];
  configPath: string;
  noIndex: boolean;
  format: 'text' | 'json' | 'csv';
}

export interface StatsRequest extends Omit<FlowsRequest, 'format'> {
  by: StatsBy;
  top: number;
  intervalNs?: bigint;
  json: boolean;
}

const COMMON = {
  from: { type: 'string' },
  to: { type: 'string' },
  filter: { type: 'string' },
  iface: { type: 'string', multiple: true },
  config: { type: 'string' },
  'no-index': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parse<O extends Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>>(argv: readonly string[], options: O, usage: string) {
  try {
    return parseArgs({ args: [...argv], strict: true, allowPositionals: false, options }).values;
  } catch (e) {
    // parseArgs already names the flag ("Unknown option '--form'"); add what is accepted.
    throw new UsageError(`${(e as Error).message}\n\n${usage}`);
  }
}

function common(v: { from?: string; to?: string; filter?: string; iface?: string[]; config?: string; 'no-index'?: boolean }, nowNs: bigint, zone: TimeZoneRule) {
  if (v.from === undefined) throw new UsageError('--from is required: the start of the range, e.g. --from "15m ago"');
  const { fromNs, toNs } = parseRange(v.from, v.to, nowNs, zone);
  checkFilter(v.filter);
  return { help: false, fromNs, toNs, ...(v.filter !== undefined ? { filter: v.filter } : {}), ifaces: parseIfaces(v.iface), configPath: v.config ?? DEFAULT_CONFIG_PATH, noIndex: !!v['no-index'] };
}

const HELP = { help: true, fromNs: 0n, toNs: 0n, ifaces: [], configPath: DEFAULT_CONFIG_PATH, noIndex: false };

export function parseFlowsArgs(argv: readonly string[], nowNs: bigint, zone: TimeZoneRule = 'local'): FlowsRequest {
  const v = parse(argv, { ...COMMON, csv: { type: 'boolean' } }, FLOWS_USAGE);
  if (v.help) return { ...HELP, format: 'text' };
  if (v.json && v.csv) throw new UsageError('--json and --csv both given: choose one output format');
  return { ...common(v, nowNs, zone), format: v.json ? 'json' : v.csv ? 'csv' : 'text' };
}

export function parseStatsArgs(argv: readonly string[], nowNs: bigint, zone: TimeZoneRule = 'local'): StatsRequest {
  const v = parse(argv, { ...COMMON, by: { type: 'string' }, top: { type: 'string' }, interval: { type: 'string' } }, STATS_USAGE);
  if (v.help) return { ...HELP, by: 'host', top: 10, json: false };
  const base = common(v, nowNs, zone);
  const by = v.by ?? 'host';
  if (!(STATS_BY as readonly string[]).includes(by)) throw new UsageError(`--by ${by}: not a statistic; choose one of ${STATS_BY.join(', ')}`);
  let top = 10;
  if (v.top !== undefined) {
    top = Number(v.top);
    if (!/^\d+$/.test(v.top.trim()) || top < 1) throw new UsageError(`--top ${v.top}: not a positive whole number of rows, e.g. --top 20`);
  }
  let intervalNs: bigint | undefined;
  if (v.interval !== undefined) {
    const ms = parseDuration(v.interval);
    if (ms === undefined || ms <= 0) throw new UsageError(`--interval ${v.interval}: not a duration; write e.g. 1s, 5m or 1h`);
    intervalNs = BigInt(Math.round(ms * 1e6));
    const buckets = (base.toNs - base.fromNs) / intervalNs + 1n;
    if (buckets > 100_000n) throw new UsageError(`--interval ${v.interval} cuts the range into ${buckets} intervals: choose a longer interval (at most 100,000 of them)`);
  }
  return { ...base, by: by as StatsBy, top, ...(intervalNs !== undefined ? { intervalNs } : {}), json: !!v.json };
}
