// The human-readable side of the results: fixed-width tables on stdout. The JSON file holds
// everything; this shows medians, ratios and the verdicts.

import type { LiveConditionResult, TargetResult } from './targets.js';
import type { OfflineSummary } from './offline.js';

type Cell = string | number | undefined;

export function table(headers: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map((c) => (c === undefined ? '–' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...text.map(line)].join('\n');
}

function fmt(n: number | undefined, digits: number): string | undefined {
  return n === undefined ? undefined : n.toFixed(digits);
}

function count(n: number | undefined): string | undefined {
  return n === undefined ? undefined : n.toLocaleString('en-US');
}

export function liveReport(conditions: readonly LiveConditionResult[], seconds: number): string {
  const out: string[] = [];
  for (const c of conditions) {
    const st = c.summaries.find((s) => s.tool === 'stenotype')?.cpuPerMpktS;
    out.push(`\n${c.condition.label}  (${seconds} s per trial, medians)`);
    out.push(
      table(
        ['tool', 'ok/trials', 'offered Mpps', 'offered', 'in files', 'lost %', 'tool says lost', 'unaccounted', 'CPU s/Mpkt', 'CPU vs stenotype'],
        c.summaries.map((s) => [
          s.tool,
          `${s.trials - s.failed}/${s.trials}`,
          fmt(s.offeredMpps, 3),
          count(s.offered),
          count(s.written),
          fmt(s.lossPct, 2),
          count(s.reportedDropped),
          count(s.unaccounted),
          fmt(s.cpuPerMpktS, 3),
          st && s.cpuPerMpktS !== undefined ? fmt(s.cpuPerMpktS / st, 2) : undefined,
        ]),
      ),
    );
  }
  return out.join('\n');
}

export function offlineReport(rows: readonly OfflineSummary[], inputBytes: number): string {
  return [
    `\nOffline: ${(inputBytes / 1e9).toFixed(2)} GB IMIX pcap from the page cache (medians)`,
    table(
      ['row', 'ok/trials', 'file Gbps', 'IMIX Gbps', 'vs max(cat,dd)', 'CPU s'],
      rows.map((r) => [r.row, `${r.trials - r.failed}/${r.trials}`, fmt(r.fileGbps, 2), fmt(r.imixGbps, 2), fmt(r.vsLimit, 3), fmt(r.cpuS, 2)]),
    ),
  ].join('\n');
}

export function targetsReport(targets: readonly TargetResult[]): string {
  const out = ['\nTargets'];
  for (const t of targets) {
    out.push(`  ${t.status.toUpperCase().padEnd(7)} ${t.target}: ${t.detail}`);
    for (const c of t.conditions ?? []) if (c.status !== 'skipped') out.push(`            ${c.status.padEnd(5)} ${c.condition}: ${c.detail}`);
  }
  return out.join('\n');
}
