// Turns `qe-packets extract` flags into a checked request. Every mistake becomes a UsageError that
// names the flag, the value and what to write instead.
import { parseArgs } from 'node:util';
import { formatIsoNs } from '../time/format-time.js';
import { TIME_FORMS, TimeParseError, parseTime, type TimeZoneRule } from '../time/parse-time.js';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';

export const EXTRACT_USAGE = `usage: qe-packets extract --from TIME [--to TIME] [--filter BPF] [--iface NAME]... -w OUT|- [--config FILE]
       qe-packets extract --explain [--json] --from TIME [--to TIME] [--filter BPF] [--iface NAME]...

  --from TIME      start of the range (inclusive)
  --to TIME        end of the range (inclusive; default: now)
  --filter BPF     keep only packets matching this libpcap filter ("host 10.0.0.1 and tcp port 443")
  --iface NAME     only these interfaces (repeat, or separate with commas; default: all)
  -w, --write OUT  output pcap file, or - for standard output (| wireshark -k -i -)
  --config FILE    daemon configuration for storage.paths (default ${DEFAULT_CONFIG_PATH})
  --no-index       scan every file of the range instead of reading through their indexes
  --explain        print the plan (files, index lookups, bytes to read, estimated time), extract nothing
  --json           with --explain: the plan as JSON

A filter means what it meant as capture.filter: a filter without the vlan keyword sees a tagged
frame without its outer tag, as the kernel showed it live (host X finds X's tagged packets too).

TIME is ${TIME_FORMS}.
An ISO time without Z or an offset is local time (TZ). Exit status: 0 packets written,
2 bad arguments or filter, 3 nothing in the range (an empty pcap is written), 4 unreadable
input, 5 output not writable.`;

export class UsageError extends Error {}

export interface ExtractRequest {
  help: boolean;
  fromNs: bigint;
  toNs: bigint;
  filter?: string;
  ifaces: string[];
  output: string;
  configPath: string;
  noIndex: boolean;
  explain: boolean;
  json: boolean;
}

export function parseExtractArgs(argv: readonly string[], nowNs: bigint, zone: TimeZoneRule = 'local'): ExtractRequest {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        filter: { type: 'string' },
        iface: { type: 'string', multiple: true },
        write: { type: 'string', short: 'w' },
        config: { type: 'string' },
        'no-index': { type: 'boolean' },
        explain: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    // parseArgs already names the flag ("Unknown option '--form'"); add what is accepted.
    throw new UsageError(`${(e as Error).message}\n\n${EXTRACT_USAGE}`);
  }
  const v = parsed.values;
  const base = { ifaces: [], configPath: v.config ?? DEFAULT_CONFIG_PATH, noIndex: !!v['no-index'], explain: !!v.explain, json: !!v.json };
  if (v.help) return { help: true, fromNs: 0n, toNs: 0n, output: '', ...base };

  if (v.from === undefined) throw new UsageError('--from is required: the start of the range, e.g. --from "15m ago"');
  if (v.json && !v.explain) throw new UsageError('--json goes with --explain (the plan as JSON); extracted packets are written with -w');
  if (v.explain && v.write !== undefined) throw new UsageError('--explain extracts nothing: leave out -w (or drop --explain to extract)');
  if (!v.explain && (v.write === undefined || v.write === '')) {
    throw new UsageError('-w is required: an output file, or -w - for standard output');
  }
  const { fromNs, toNs } = parseRange(v.from, v.to, nowNs, zone);
  const ifaces = parseIfaces(v.iface);
  checkFilter(v.filter);
  return {
    help: false,
    fromNs,
    toNs,
    ...(v.filter !== undefined ? { filter: v.filter } : {}),
    ifaces,
    output: v.write ?? '',
    configPath: base.configPath,
    noIndex: base.noIndex,
    explain: base.explain,
    json: base.json,
  };
}

/** --from and --to (default now) as nanoseconds, in order. The same words for every command that takes a range. */
export function parseRange(from: string, to: string | undefined, nowNs: bigint, zone: TimeZoneRule): { fromNs: bigint; toNs: bigint } {
  const fromNs = time('--from', from, nowNs, zone);
  const toNs = to === undefined ? nowNs : time('--to', to, nowNs, zone);
  if (fromNs > toNs) {
    throw new UsageError(`--from ${from} (${formatIsoNs(fromNs)}) is after --to ${to ?? 'now'} (${formatIsoNs(toNs)}): swap them`);
  }
  return { fromNs, toNs };
}

/** --iface, repeated or comma-separated, without duplicates. */
export function parseIfaces(values: readonly string[] | undefined): string[] {
  const ifaces = (values ?? []).flatMap((s) => s.split(',')).map((s) => s.trim());
  if (ifaces.some((s) => s === '')) throw new UsageError(`--iface ${JSON.stringify(values?.join(','))} has an empty interface name: write e.g. --iface eth0,eth1`);
  return [...new Set(ifaces)];
}

export function checkFilter(filter: string | undefined): void {
  if (filter !== undefined && filter.trim() === '') {
    throw new UsageError('--filter is empty: give a BPF expression (e.g. --filter "tcp port 443") or leave the flag out');
  }
}

function time(flag: string, text: string, nowNs: bigint, zone: TimeZoneRule): bigint {
  try {
    return parseTime(text, { nowNs, zone });
  } catch (e) {
    if (e instanceof TimeParseError) throw new UsageError(`${flag}: ${e.message}`);
    throw e;
  }
}
