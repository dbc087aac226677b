// `qe-packets files`: the capture files of a time range, oldest first, as a table or as the API's
// /files JSON. The command and the API answer through filesAnswer, with extract's choice of files
// (select-files.ts) and refusals.
import { parseArgs } from 'node:util';
import type { FilesResponse } from '../api/types.js';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { formatCount, formatSize } from '../config/units.js';
import { ExitCode } from '../extract/exit-codes.js';
import { Refusal, checkInterfaces, readCatalog, type Say } from '../extract/prepare.js';
import { selectFiles } from '../store/select-files.js';
import { formatIsoNs, nowNs } from '../time/format-time.js';
import { TIME_FORMS, type TimeZoneRule } from '../time/parse-time.js';
import { UsageError, parseIfaces, parseRange } from './extract-args.js';
import { storePathsOf } from './flow-query.js';

const PREFIX = 'qe-packets files';

export const FILES_USAGE = `usage: qe-packets files [--from TIME] [--to TIME] [--iface NAME]... [--json] [--config FILE]

The capture files whose packets meet a time range, oldest first: interface, first and last
packet, packets, size on disk, and whether the file is still being written.

  --from TIME      start of the range (inclusive; default: the beginning of the store)
  --to TIME        end of the range (inclusive; default: now)
  --iface NAME     only these interfaces (repeat, or separate with commas; default: all)
  --json           {"from", "to", "files": [...], "total": {...}} on stdout (the API's /files)
  --config FILE    daemon configuration for storage.paths (default ${DEFAULT_CONFIG_PATH})

TIME is ${TIME_FORMS}.
Exit status: 0 files listed, 2 bad arguments, 3 no capture file in the range, 4 unreadable input.`;

export interface FilesRequest {
  help: boolean;
  fromNs: bigint;
  toNs: bigint;
  ifaces: string[];
  configPath: string;
  json: boolean;
}

export function parseFilesArgs(argv: readonly string[], now: bigint, zone: TimeZoneRule = 'local'): FilesRequest {
  let v;
  try {
    v = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: { from: { type: 'string' }, to: { type: 'string' }, iface: { type: 'string', multiple: true }, json: { type: 'boolean' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }).values;
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${FILES_USAGE}`);
  }
  const base = { configPath: v.config ?? DEFAULT_CONFIG_PATH, json: !!v.json };
  if (v.help) return { help: true, fromNs: 0n, toNs: 0n, ifaces: [], ...base };
  // Without --from: from the epoch, so every file up to --to.
  const { fromNs, toNs } = parseRange(v.from ?? '0', v.to, now, zone);
  return { help: false, fromNs, toNs, ifaces: parseIfaces(v.iface), ...base };
}

/** The files of the range; no file at all is a Refusal (exit 3, the API's 404 empty_range). */
export async function filesAnswer(paths: readonly string[], req: Pick<FilesRequest, 'fromNs' | 'toNs' | 'ifaces'>, say: Say): Promise<FilesResponse> {
  const catalog = await readCatalog(paths, say, { fromNs: req.fromNs, toNs: req.toNs });
  checkInterfaces(catalog.entries, req.ifaces);
  const files = selectFiles(catalog.entries, req)
    .streams.flatMap((s) => s.files)
    .sort((a, b) => (a.firstNs < b.firstNs ? -1 : a.firstNs > b.firstNs ? 1 : a.name < b.name ? -1 : 1));
  if (files.length === 0) {
    const ifaces = req.ifaces.length ? ` on ${req.ifaces.join(', ')}` : '';
    throw new Refusal(ExitCode.empty, `no capture file between ${formatIsoNs(req.fromNs)} and ${formatIsoNs(req.toNs)}${ifaces}`);
  }
  return {
    from: formatIsoNs(req.fromNs),
    to: formatIsoNs(req.toNs),
    files: files.map((f) => ({ path: f.path, iface: f.iface, first: formatIsoNs(f.firstNs), last: formatIsoNs(f.lastNs), packets: f.packets, bytes: f.bytes, size: f.size, partial: f.partial, linktype: f.linktype })),
    total: { files: files.length, packets: files.reduce((n, f) => n + f.packets, 0), bytes: files.reduce((n, f) => n + f.bytes, 0), size: files.reduce((n, f) => n + f.size, 0) },
  };
}

/** An aligned table: first and last packet, interface, packets, size, path (partial files marked). */
export function filesText(r: FilesResponse): string {
  const header = ['FIRST', 'LAST', 'IFACE', 'PACKETS', 'SIZE', 'PATH'];
  const rows = r.files.map((f) => [f.first, f.last, f.iface, formatCount(f.packets), formatSize(f.size), `${f.path}${f.partial ? ' (being written)' : ''}`]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const right = new Set([3, 4]);
  const line = (cells: string[]) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const t = r.total;
  return `${[line(header), ...rows.map(line)].join('\n')}\n\n${formatCount(t.files)} file${t.files === 1 ? '' : 's'}, ${formatCount(t.packets)} packets, ${formatSize(t.size)} on disk\n`;
}

export async function filesCommand(argv: string[]): Promise<number> {
  const say: Say = (text) => process.stderr.write(`${PREFIX}: ${text}\n`);
  let req: FilesRequest;
  try {
    req = parseFilesArgs(argv, nowNs());
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    say(e.message);
    return ExitCode.usage;
  }
  if (req.help) {
    process.stdout.write(`${FILES_USAGE}\n`);
    return ExitCode.ok;
  }
  try {
    const answer = await filesAnswer(await storePathsOf(req.configPath), req, say);
    process.stdout.write(req.json ? `${JSON.stringify(answer)}\n` : filesText(answer));
    return ExitCode.ok;
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    say(e.message);
    return e.exitCode;
  }
}
