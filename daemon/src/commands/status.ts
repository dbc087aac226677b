import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { loadConfigFile } from '../config/load.js';
import { formatCount, formatSize } from '../config/units.js';
import { fetchStatus } from '../control/client.js';
import { INDICATORS, THRESHOLD_UNIT } from '../elements/indicators.js';
import type { ElementReason, ElementState } from '../elements/types.js';
import type { StatusReport } from '../health/figures.js';
import { formatDuration, formatIsoNs } from '../time/format-time.js';
import { toJson } from '../util/json.js';

export const statusHelp = `usage: qe-packets status [--json] [--config FILE | --socket PATH]

Asks the running daemon for its health: ok, warning or critical with the reasons, and the key
figures (rates, drops, retention, store use), then each configured element's state with its
reasons and indicators (the exit status is the capture's health alone).

  --json           print the report as JSON (for scripts)
  --config FILE    read control.socket from this configuration (default /etc/qe-packets/config.yaml)
  --socket PATH    ask the daemon on this socket instead

exit status: 0 ok, 1 warning, 2 critical, 3 the daemon could not be asked (the Nagios convention)`;

const STATUS_EXIT = { ok: 0, warning: 1, critical: 2, unknown: 3 } as const;
const DEFAULT_SOCKET = '/run/qe-packets/control.sock';

const num = (n: number, digits = 0) => formatCount(n, digits);

export function formatStatus(r: StatusReport): string {
  const f = r.figures;
  const out: string[] = [];
  out.push(`Qe-Packets ${f.version}: ${r.state.toUpperCase()} (up ${formatDuration(f.at - f.startedAt)})`);
  for (const reason of r.reasons) out.push(`  ${reason.level}: ${reason.message}`);
  out.push('');
  const rows = [['interface', 'state', 'packets/s', 'Mbit/s', 'captured', 'dropped', 'kernel', 'interface', 'writer', 'store full', 'files']];
  for (const i of f.interfaces) {
    const c = i.counters;
    rows.push([
      i.name,
      i.up ? 'up' : `DOWN${i.downSince ? ` ${formatDuration(f.at - i.downSince)}` : ''}`,
      num(i.window.packetsPerSecond),
      num(i.window.bitsPerSecond / 1e6, 1),
      num(c.written),
      num(c.kernel_drops + c.if_drops + c.writer_drops + c.store_full_drops),
      num(c.kernel_drops),
      num(c.if_drops),
      num(c.writer_drops),
      num(c.store_full_drops),
      num(i.filesWritten),
    ]);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  for (const row of rows) out.push(`  ${row.map((cell, col) => (col < 2 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  ')}`);
  out.push('');
  const s = f.store;
  const share = s.capacityBytes ? ` (${((s.usedBytes / s.capacityBytes) * 100).toFixed(1)}%)` : '';
  out.push(`  store      ${s.mode}, ${formatSize(s.usedBytes)} of ${formatSize(s.capacityBytes)} used${share}${s.full ? ', FULL' : ''}; ${formatSize(s.freeBytes)} free on disk`);
  out.push(`  retention  ${s.retentionSeconds === undefined ? 'no packets kept yet' : `${formatDuration(s.retentionSeconds * 1000)} (oldest packet ${formatIsoNs(s.oldestNs!)})`}`);
  if (s.mode === 'circular') out.push(`  deleted    ${num(s.filesDeleted)} files (${formatSize(s.bytesDeleted)}) by circular retention since start`);
  const x = f.index;
  if (x)
    out.push(
      `  index      ${x.fields.length ? x.fields.join(', ') : 'off'}` +
        (x.pendingFiles ? `; indexing ${num(x.pendingFiles)} files (${formatSize(x.pendingBytes)}) in the background` : x.running ? '; checking the indexes' : x.fields.length && !x.failedFiles ? '; every closed file indexed' : '') +
        (x.failedFiles ? `; ${num(x.failedFiles)} failed (last: ${x.lastError ?? '?'})` : ''),
    );
  if (f.api) out.push(`  api        ${f.api.url}${f.api.fingerprint ? ` (certificate SHA-256 ${f.api.fingerprint})` : ''}`);
  const q = f.qualevent;
  if (q)
    out.push(
      `  qualevent  ${q.url}: ${num(q.sent)} events sent, ${num(q.outboxEvents)} waiting (${formatSize(q.outboxBytes)} of ${formatSize(q.outboxLimitBytes)})` +
        (q.lastDeliveryAt !== undefined ? `, last delivery ${formatDuration(f.at - q.lastDeliveryAt)} ago` : ', nothing delivered yet') +
        (q.dropped ? `; ${num(q.dropped)} dropped (outbox full)` : '') +
        (q.parked ? `; ${num(q.parked)} refused, in ${q.parkedPath}` : ''),
    );
  if (f.elements?.length) out.push('', ...formatElements(f.elements, f.at));
  return `${out.join('\n')}\n`;
}

const UNIT_TEXT: Record<ElementReason['unit'], string> = { '%': '%', ms: ' ms', s: ' s' };
const valueText = (v: number, unit: ElementReason['unit']) => `${num(v, unit === '%' && v < 10 ? 2 : unit === 's' ? 0 : 1)}${UNIT_TEXT[unit]}`;

/** One block per element: its level and since when, then why, then every indicator's value. */
export function formatElements(elements: ElementState[], at: number): string[] {
  const out = ['elements'];
  const width = Math.max(...elements.map((e) => e.element.length));
  for (const e of elements) {
    const since = Date.parse(e.since);
    out.push(
      `  ${e.element.padEnd(width)}  ${e.state === 'ok' ? 'ok' : e.state.toUpperCase()} for ${formatDuration(Math.max(0, at - since))}` +
        `${e.previous ? ` (was ${e.previous})` : ''}${e.name ? `  ${e.name}` : ''}`,
    );
    for (const r of e.reasons) out.push(`  ${''.padEnd(width)}    ${r.level}: ${r.indicator} ${valueText(r.value, r.unit)} (threshold ${valueText(r.threshold, r.unit)})`);
    const figures = Object.entries(e.figures).map(([k, v]) => {
      const def = INDICATORS.find((d) => d.name === k);
      return `${k} ${v === null ? '-' : def ? valueText(v, THRESHOLD_UNIT[def.threshold]) : num(v, 2)}`;
    });
    out.push(`  ${''.padEnd(width)}    over ${formatDuration(e.window_seconds * 1000)}: ${figures.join(', ')}`);
  }
  return out;
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, config: { type: 'string' }, socket: { type: 'string' } } });
  let socket = values.socket;
  if (!socket) {
    try {
      socket = (await loadConfigFile(values.config ?? DEFAULT_CONFIG_PATH)).control.socket;
    } catch (e) {
      // Without a config file the daemon runs on defaults too; an explicit --config must be readable.
      if (values.config) {
        process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
        return STATUS_EXIT.unknown;
      }
      socket = DEFAULT_SOCKET;
    }
  }
  let report: StatusReport;
  try {
    report = await fetchStatus(socket);
  } catch (e) {
    if (values.json) process.stdout.write(`${toJson({ state: 'unknown', reasons: [{ level: 'critical', code: 'unreachable', message: (e as Error).message }] })}\n`);
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return STATUS_EXIT.unknown;
  }
  process.stdout.write(values.json ? `${toJson(report)}\n` : formatStatus(report));
  return STATUS_EXIT[report.state];
}
