// Issue 20's capture cost: the helper's CPU per packet with 50 elements configured against none
// (product defaults otherwise: index and flow tables on), live at IMIX from tcpreplay; target at
// most 1.1×. The elements are what an appliance would carry: each a filter on a flow of the
// traffic (so elements match and their counters move) with every indicator, custom_share included
// (a second filter run on each of the element's packets).

import { fixedRateEnv, runLiveTrial, summarizeLive, type LiveTrial } from './live.js';
import { median, ratio, round } from './stats.js';
import { daemonWithElements, type LiveTool } from './tools.js';

export const ELEMENTS_TARGET = 1.1;

/** `count` elements on the bench traffic's UDP flows (sizes.ts: ports 41000 + i to 198.19.x.y). */
export function benchElements(count: number): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `bench-${i}`,
    filter: `udp and dst port ${41000 + (i % 64)} or net 198.19.${i}.0/24`,
    window: '60s',
    indicators: {
      tcp_resets: { warning: '1%', critical: '5%' },
      tcp_unanswered_syns: { warning: '1%', critical: '10%' },
      tcp_handshake_rtt: { warning: '50ms', critical: '200ms' },
      dns_errors: { warning: '5%', critical: '20%' },
      http_errors: { warning: '5%', critical: '20%' },
      silence: { critical: '60s' },
      custom_share: { filter: 'greater 1000', warning: '50%', critical: '90%' },
    },
  }));
}

export interface ElementsCostOptions {
  workDir: string;
  ifindex: number;
  seconds: number;
  pps: number;
  reps: number;
  elements: number;
  generatorCpu: number;
  captureCpu: number;
  seed: number;
}

export async function elementsCost(o: ElementsCostOptions, log: (s: string) => void) {
  const env = await fixedRateEnv(o, ['imix']);
  const rows: { label: string; tool: LiveTool }[] = [
    { label: 'no elements', tool: daemonWithElements([]) },
    { label: `${o.elements} elements`, tool: daemonWithElements(benchElements(o.elements)) },
  ];
  const c = { id: `imix/tcpreplay-${o.pps}`, profile: 'imix' as const, generator: { kind: 'tcpreplay' as const, pps: o.pps } };
  const trials: (LiveTrial & { row: string })[] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const row of rep % 2 ? rows : [...rows].reverse()) {
      const t = await runLiveTrial(row.tool, c, rep, env);
      trials.push({ ...t, row: row.label });
      log(`elements cost ${row.label} #${rep}: ${t.error ? `ERROR ${t.error}` : `offered ${t.offered}, in files ${t.written}, lost ${t.lossPct?.toFixed(2)}%, helper CPU ${t.cpu?.perMpktWrittenHelperS} s/Mpkt`}`);
    }
  }
  const summaries = rows.map((r) => {
    const mine = trials.filter((t) => t.row === r.label);
    const rest = mine.map((t) => (t.cpu?.perMpktWrittenSchedS !== undefined && t.cpu.perMpktWrittenHelperS !== undefined ? t.cpu.perMpktWrittenSchedS - t.cpu.perMpktWrittenHelperS : undefined));
    return { row: r.label, ...summarizeLive(r.tool.name, mine, o.seconds), daemonPerMpktS: round(median(rest.filter((x): x is number => x !== undefined)), 4) };
  });
  const cpu = (l: string) => summaries.find((x) => x.row === l)?.cpuPerMpktHelperS;
  const withVsWithout = round(ratio(cpu(rows[1]!.label), cpu(rows[0]!.label)), 3);
  // Each repetition's pair on its own: the medians' ratio above is the figure, the pairs show the
  // spread this machine adds.
  const helperOf = (rep: number, l: string) => trials.find((t) => t.rep === rep && t.row === l)?.cpu?.perMpktWrittenHelperS;
  const pairs = Array.from({ length: o.reps }, (_, i) => round(ratio(helperOf(i + 1, rows[1]!.label), helperOf(i + 1, rows[0]!.label)), 3));
  return {
    method: 'tcpreplay of IMIX at a fixed rate, bench:capture live trials; CPU = on-CPU time (schedstat) of the qe-capture helper per packet written, product defaults (index and flow tables on) in both rows; the daemon shares the capture core with its helper (the whole tree is pinned), so its own work for the elements shows in the helper\'s caches too: daemonPerMpktS is the rest of the tree',
    target: `at most ${ELEMENTS_TARGET}× with ${o.elements} elements`,
    withVsWithout,
    pairs,
    pass: withVsWithout !== undefined ? withVsWithout <= ELEMENTS_TARGET : undefined,
    summaries,
    trials,
  };
}

export function elementsReport(r: Awaited<ReturnType<typeof elementsCost>>): string {
  const lines = r.summaries.map((s) => `  ${s.row.padEnd(12)} helper CPU ${s.cpuPerMpktHelperS ?? '?'} s/Mpkt (daemon ${s.daemonPerMpktS ?? '?'}), loss ${s.lossPct ?? '?'}%`);
  return `\nElements: helper CPU per packet with elements against none (IMIX)\n${lines.join('\n')}\n  ratio ${r.withVsWithout ?? '?'}× (target ≤ ${ELEMENTS_TARGET}×: ${r.pass === undefined ? 'not measured' : r.pass ? 'PASS' : 'FAIL'}; pairs ${r.pairs.map((x) => x ?? '?').join(', ')})`;
}
