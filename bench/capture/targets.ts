// The targets, judged from the medians, plus the ratios they rest on. A target the run
// could not judge (the daemon was missing, a peer was missing, no condition applied) is
// "skipped", never "pass".

import type { LiveCondition, LiveSummary, LiveTrial } from './live.js';
import { limitRate, type OfflineSummary } from './offline.js';
import { ratio, round } from './stats.js';

export type Status = 'pass' | 'fail' | 'skipped';

export interface TargetResult {
  id: string;
  target: string;
  status: Status;
  detail: string;
  conditions?: { condition: string; status: Status; detail: string }[];
}

export interface LiveConditionResult {
  condition: LiveCondition & { label: string };
  summaries: LiveSummary[];
  trials: LiveTrial[];
}

const DAEMON = 'daemon';

function combine(parts: { status: Status }[], none: string): { status: Status; detail: string } {
  const judged = parts.filter((p) => p.status !== 'skipped');
  if (judged.length === 0) return { status: 'skipped', detail: none };
  const failed = judged.filter((p) => p.status === 'fail').length;
  return {
    status: failed ? 'fail' : 'pass',
    detail: `${judged.length - failed}/${judged.length} conditions met`,
  };
}

function usable(s: LiveSummary | undefined): s is LiveSummary & { lossPct: number } {
  return s !== undefined && s.trials > s.failed && s.lossPct !== undefined;
}

export function evaluateTargets(live: readonly LiveConditionResult[] | undefined, offline: readonly OfflineSummary[] | undefined): TargetResult[] {
  const results: TargetResult[] = [];
  if (live) {
    const noLoss = live.map((c) => {
      const d = c.summaries.find((s) => s.tool === DAEMON);
      const lossless = c.summaries.filter((s) => s.tool !== DAEMON && usable(s) && s.lossPct === 0).map((s) => s.tool);
      if (lossless.length === 0) return { condition: c.condition.label, status: 'skipped' as Status, detail: 'every peer lost packets' };
      if (!usable(d)) return { condition: c.condition.label, status: 'skipped' as Status, detail: 'no daemon result' };
      return {
        condition: c.condition.label,
        status: (d.lossPct === 0 ? 'pass' : 'fail') as Status,
        detail: `daemon loss ${d.lossPct}%; lossless peers: ${lossless.join(', ')}`,
      };
    });
    results.push({
      id: 'live-no-loss',
      target: 'No loss at any rate where any peer loses none',
      ...combine(noLoss, 'no condition with a lossless peer and a daemon result'),
      conditions: noLoss,
    });

    const lessLoss = live.map((c) => {
      const d = c.summaries.find((s) => s.tool === DAEMON);
      const peers = c.summaries.filter((s) => s.tool !== DAEMON && usable(s)) as (LiveSummary & { lossPct: number })[];
      if (peers.length === 0 || peers.some((p) => p.lossPct === 0)) {
        return { condition: c.condition.label, status: 'skipped' as Status, detail: 'some peer lost nothing (or no peer result)' };
      }
      if (!usable(d)) return { condition: c.condition.label, status: 'skipped' as Status, detail: 'no daemon result' };
      const best = peers.reduce((a, b) => (b.lossPct < a.lossPct ? b : a));
      return {
        condition: c.condition.label,
        status: (d.lossPct < best.lossPct ? 'pass' : 'fail') as Status,
        detail: `daemon loss ${d.lossPct}% vs best peer ${best.tool} ${best.lossPct}%`,
      };
    });
    results.push({
      id: 'live-less-loss',
      target: 'Less loss than the best peer where every peer loses',
      ...combine(lessLoss, 'no condition where every peer lost packets and the daemon ran'),
      conditions: lessLoss,
    });

    const counted = live.map((c) => {
      const trials = c.trials.filter((t) => t.tool === DAEMON && !t.error);
      if (trials.length === 0) return { condition: c.condition.label, status: 'skipped' as Status, detail: 'no daemon trial' };
      const bad = trials.filter((t) => t.unaccounted !== 0);
      return {
        condition: c.condition.label,
        status: (bad.length === 0 ? 'pass' : 'fail') as Status,
        detail: bad.length === 0
          ? `${trials.length} trials: offered − written = reported drops by cause`
          : `unaccounted packets per trial: ${bad.map((t) => t.unaccounted ?? 'no report').join(', ')}`,
      };
    });
    results.push({
      id: 'live-every-loss-counted',
      target: 'Every packet not written is counted, by cause',
      ...combine(counted, 'no daemon trial'),
      conditions: counted,
    });

    const cpu = live.map((c) => {
      const d = c.summaries.find((s) => s.tool === DAEMON)?.cpuPerMpktS;
      const st = c.summaries.find((s) => s.tool === 'stenotype')?.cpuPerMpktS;
      if (d === undefined || st === undefined) {
        return { condition: c.condition.label, status: 'skipped' as Status, detail: d === undefined ? 'no daemon result' : 'no stenotype result' };
      }
      return {
        condition: c.condition.label,
        status: (d <= st ? 'pass' : 'fail') as Status,
        detail: `daemon/stenotype CPU per packet = ${round(d / st, 3)}`,
      };
    });
    results.push({
      id: 'live-cpu',
      target: "CPU per packet no more than stenotype's",
      ...combine(cpu, 'daemon or stenotype missing'),
      conditions: cpu,
    });
  }

  if (offline) {
    const d = offline.find((r) => r.row === 'daemon');
    const limit = limitRate(offline);
    const ok = d?.fileGbps !== undefined;
    const vs = ratio(d?.fileGbps, limit);
    results.push({
      id: 'offline-vs-limit',
      target: 'Offline at least 80% of the cat/dd rate (rotation on)',
      status: !ok || vs === undefined ? 'skipped' : vs >= 0.8 ? 'pass' : 'fail',
      detail: !ok ? 'no daemon result' : vs === undefined ? 'no cat/dd result' : `daemon / max(cat, dd) = ${round(vs, 3)}`,
    });
    results.push({
      id: 'offline-10gbps',
      target: 'Offline at least 10 Gbps of IMIX',
      status: d?.imixGbps === undefined ? 'skipped' : d.imixGbps >= 10 ? 'pass' : 'fail',
      detail: d?.imixGbps === undefined ? 'no daemon result' : `daemon ${d.imixGbps} Gbps of IMIX frames`,
    });
  }
  return results;
}

/** Ratios of every tool to the daemon and to stenotype (live), and to the copy limit (offline). */
export function computeRatios(live: readonly LiveConditionResult[] | undefined, offline: readonly OfflineSummary[] | undefined) {
  const liveRatios = live?.map((c) => {
    const d = c.summaries.find((s) => s.tool === DAEMON);
    const st = c.summaries.find((s) => s.tool === 'stenotype');
    return {
      condition: c.condition.label,
      tools: c.summaries.map((s) => ({
        tool: s.tool,
        cpuVsStenotype: round(ratio(s.cpuPerMpktS, st?.cpuPerMpktS), 3),
        daemonCpuVsThis: round(ratio(d?.cpuPerMpktS, s.cpuPerMpktS), 3),
        daemonLossMinusThisPct: d?.lossPct !== undefined && s.lossPct !== undefined ? round(d.lossPct - s.lossPct, 4) : undefined,
        writtenVsOffered: round(ratio(s.written, s.offered), 5),
      })),
    };
  });
  const limit = offline ? limitRate(offline) : undefined;
  const d = offline?.find((r) => r.row === 'daemon');
  const offlineRatios = offline?.map((r) => ({
    row: r.row,
    vsLimit: round(ratio(r.fileGbps, limit), 3),
    daemonVsThis: round(ratio(d?.fileGbps, r.fileGbps), 3),
  }));
  return { live: liveRatios, offline: offlineRatios };
}
