// The readable side of bench:index: ratios first (the machine is shared and noisy, absolute times
// are for the JSON), then the issue's targets with a verdict each.

import { table } from '../capture/report.js';
import { ratio, round } from '../capture/stats.js';
import type { QuerySummary, QueryTool } from './query.js';

export interface ImportSummary {
  row: string;
  bytes: number;
  wallS: number;
  gbps: number;
  vsCat?: number;
  /** The same with one command start-up (extract's on an empty range) taken off per import. */
  vsCatWithoutStartup?: number;
}

export interface Target {
  target: string;
  status: 'pass' | 'fail' | 'skipped';
  detail: string;
}

const f = (n: number | undefined, d = 2) => (n === undefined || !Number.isFinite(n) ? undefined : n.toFixed(d));

export function qTime(s: readonly QuerySummary[], tool: QueryTool, q: string) {
  return s.find((x) => x.tool === tool && x.query === q);
}

// Everything the report and the targets read; index.ts fills it.
export interface Figures {
  storeBytes: number;
  storePackets: number;
  imports: ImportSummary[];
  queries: { id: string; planted: number; counts: Record<string, number | undefined>; agree: boolean; sameBytes: boolean | undefined }[];
  full: QuerySummary[];
  half: QuerySummary[] | undefined;
  slice?: { bytes: number; ours: QuerySummary[]; steno: QuerySummary[]; completeAfterS: number | undefined; lostPackets?: number };
  findableS?: number[];
  sizes?: { rows: { fields: string; pctOfPcap: number | undefined }[]; storeIndexPct: number | undefined };
  /** Issue 18: the flow tables' share of the pcap bytes, and `stats --by host --top 10` against tshark. */
  flows?: { tablePct: number | undefined; atTargetPct?: number | undefined; statsS: number | undefined; apiStatsS?: number; tsharkS: number | undefined; speedup: number | undefined; agree: boolean };
  startup?: { nodeS?: number; emptyRangeS?: number; explainS?: number; explainColdS?: number };
  capture?: { profile: string; onVsOff: number | undefined; withFlowsVsOff: number | undefined; onVsStenotype: number | undefined; loss: Record<string, number | undefined> }[];
}

export function report(x: Figures): string {
  const out: string[] = [];
  out.push(`\nStore: ${(x.storeBytes / 1e9).toFixed(2)} GB of pcap, ${x.storePackets.toLocaleString('en-US')} packets (${(x.storeBytes / x.storePackets).toFixed(0)} B a packet in the file)`);
  out.push('\nBuild: capture --read with storage.fsync on, then sync -f, against cat + sync -f of the same bytes');
  out.push(
    table(
      ['row', 'GB', 'Gbit/s', 'vs cat', 'vs cat, start-up out'],
      x.imports.map((i) => [i.row, f(i.bytes / 1e9), f(i.gbps), f(i.vsCat, 3), f(i.vsCatWithoutStartup, 3)]),
    ),
  );

  out.push('\nQueries on the full store, each from a cold page cache (medians): speed-ups of extract through the index');
  out.push(
    table(
      ['query', 'packets', 'share %', 'agree', 'index = scan', 'vs --no-index', 'vs tcpdump -r', 'extract s', 'API: vs tcpdump -r', 'API s'],
      x.queries.map((q) => {
        const e = qTime(x.full, 'extract', q.id);
        const a = qTime(x.full, 'API (curl)', q.id);
        const n = qTime(x.full, 'extract --no-index', q.id);
        const t = qTime(x.full, 'tcpdump -r', q.id);
        return [
          q.id,
          e?.packets,
          f((100 * (e?.packets ?? NaN)) / x.storePackets, 4),
          q.agree ? 'yes' : `NO ${JSON.stringify(q.counts)}`,
          q.sameBytes === undefined ? undefined : q.sameBytes ? 'yes' : 'NO',
          f(ratio(n?.wallS, e?.wallS), 1),
          f(ratio(t?.wallS, e?.wallS), 1),
          f(e?.wallS, 3),
          f(ratio(t?.wallS, a?.wallS), 1),
          f(a?.wallS, 3),
        ];
      }),
    ),
  );
  if (x.half) {
    out.push('\nScaling: the same answer from half the store and from all of it (the second half holds no match)');
    out.push(
      table(
        ['query', 'half s', 'full s', 'full / half', 'API: half s', 'full s', 'full / half'],
        x.queries.map((q) => {
          const h = qTime(x.half!, 'extract', q.id)?.wallS;
          const w = qTime(x.full, 'extract', q.id)?.wallS;
          const ah = qTime(x.half!, 'API (curl)', q.id)?.wallS;
          const aw = qTime(x.full, 'API (curl)', q.id)?.wallS;
          return [q.id, f(h, 3), f(w, 3), f(ratio(w, h), 2), f(ah, 3), f(aw, 3), f(ratio(aw, ah), 2)];
        }),
      ),
    );
  }
  if (x.slice) {
    const s = x.slice;
    out.push(`\nStenographer on a ${(s.bytes / 1e9).toFixed(2)} GB slice replayed live (ours: a store of the same slice file), cold cache`);
    out.push(
      table(
        ['query', 'packets ours', 'packets steno', 'stenoread / extract', 'stenoread / API (curl)'],
        x.queries.map((q) => {
          const o = qTime(s.ours, 'extract', q.id);
          const a = qTime(s.ours, 'API (curl)', q.id);
          const st = qTime(s.steno, 'stenoread', q.id);
          return [q.id, o?.packets, st ? st.packets : 'cannot ask', f(ratio(st?.wallS, o?.wallS), 2), f(ratio(st?.wallS, a?.wallS), 2)];
        }),
      ),
    );
    out.push(`  stenoread's answer complete ${s.completeAfterS === undefined ? 'NEVER within the wait' : `${s.completeAfterS} s`} after the replay ended; stenotype lost ${s.lostPackets ?? '?'} packets of the slice`);
  }
  if (x.findableS) out.push(`\nFindable: a packet sent live was returned by extract after ${x.findableS.map((v) => `${v} s`).join(', ')} (each includes one extract run)`);
  if (x.flows) {
    out.push(
      `\nFlow tables: ${f(x.flows.tablePct, 3)}% of the pcap bytes of the store, ${f(x.flows.atTargetPct, 3)}% for IMIX with 100,000 concurrent flows in 1 GiB files. stats --by host --top 10 over the whole store, cold cache: ` +
        `${f(x.flows.statsS)} s (asked of a running daemon with curl: ${f(x.flows.apiStatsS)} s); tshark -z endpoints,ip over the same files ${f(x.flows.speedup)}× that; top hosts ${x.flows.agree ? 'agree' : 'DIFFER'}`,
    );
  }
  if (x.sizes) {
    out.push(`\nIndex size, % of pcap bytes (qe-index over a sample; the store's own default index: ${f(x.sizes.storeIndexPct, 3)}%)`);
    out.push(table(['fields', '% of pcap'], x.sizes.rows.map((r) => [r.fields, f(r.pctOfPcap, 3)])));
  }
  if (x.startup) {
    const s = x.startup;
    out.push(
      `\nStart-up (warm, medians): node -e 0 ${f(s.nodeS, 3)} s; extract of an empty range ${f(s.emptyRangeS, 3)} s; ` +
        `extract --explain ${f(s.explainS, 3)} s (cold: ${f(s.explainColdS, 3)} s)`,
    );
  }
  if (x.capture) {
    out.push('\nCapture cost, helper CPU per packet (medians)');
    out.push(
      table(
        ['size', 'index on / off', 'index + flows / off', 'index on / stenotype', 'lost % on', 'lost % off', 'lost % + flows', 'lost % stenotype'],
        x.capture.map((c) => [c.profile, f(c.onVsOff, 3), f(c.withFlowsVsOff, 3), f(c.onVsStenotype, 3), f(c.loss['index on'], 2), f(c.loss['index off'], 2), f(c.loss['index + flows'], 2), f(c.loss.stenotype, 2)]),
      ),
    );
  }
  return out.join('\n');
}

export function targets(x: Figures): Target[] {
  const t: Target[] = [];
  const judge = (target: string, values: (number | undefined)[], ok: (v: number) => boolean, fmt: (v: number) => string): void => {
    const known = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (known.length === 0) t.push({ target, status: 'skipped', detail: 'not measured' });
    else t.push({ target, status: known.length === values.length && known.every(ok) ? 'pass' : 'fail', detail: values.map((v) => (v === undefined ? '–' : fmt(v))).join(', ') });
  };
  const ids = x.queries.map((q) => q.id);
  const sp = (tool: QueryTool) => ids.map((q) => ratio(qTime(x.full, tool, q)?.wallS, qTime(x.full, 'extract', q)?.wallS));
  judge(`≥ 100× faster than tcpdump -r (${ids.join(', ')})`, sp('tcpdump -r'), (v) => v >= 100, (v) => `${v.toFixed(1)}×`);
  judge(
    `≥ 100× faster than tcpdump -r, asked of the running daemon with curl as stenoread asks stenographer (${ids.join(', ')})`,
    ids.map((q) => ratio(qTime(x.full, 'tcpdump -r', q)?.wallS, qTime(x.full, 'API (curl)', q)?.wallS)),
    (v) => v >= 100,
    (v) => `${v.toFixed(1)}×`,
  );
  judge(`≥ 20× faster than --no-index (${ids.join(', ')})`, sp('extract --no-index'), (v) => v >= 20, (v) => `${v.toFixed(1)}×`);
  t.push({
    target: 'the same packets from every tool, the index byte for byte the scan',
    status: x.queries.every((q) => q.agree && q.sameBytes !== false) ? 'pass' : 'fail',
    detail: x.queries.map((q) => `${q.id}: ${q.agree ? 'agree' : 'DISAGREE'}${q.sameBytes === false ? ', bytes DIFFER' : ''}`).join('; '),
  });
  if (x.half) judge('double the store: under 1.2× the time', ids.map((q) => ratio(qTime(x.full, 'extract', q)?.wallS, qTime(x.half!, 'extract', q)?.wallS)), (v) => v < 1.2, (v) => `${v.toFixed(2)}×`);
  if (x.half) judge('double the store: under 1.2× the time (API, curl)', ids.map((q) => ratio(qTime(x.full, 'API (curl)', q)?.wallS, qTime(x.half!, 'API (curl)', q)?.wallS)), (v) => v < 1.2, (v) => `${v.toFixed(2)}×`);
  if (x.slice) {
    const st = x.queries.filter((q) => qTime(x.slice!.steno, 'stenoread', q.id));
    t.push({
      target: 'stenoread returns the packets extract returns (slice)',
      status: st.length > 0 && st.every((q) => qTime(x.slice!.steno, 'stenoread', q.id)?.packets === qTime(x.slice!.ours, 'extract', q.id)?.packets) ? 'pass' : 'fail',
      detail: st.map((q) => `${q.id}: ${qTime(x.slice!.steno, 'stenoread', q.id)?.packets ?? '?'} vs ${qTime(x.slice!.ours, 'extract', q.id)?.packets ?? '?'}`).join('; '),
    });
    judge('faster than stenoread for the same answer', st.map((q) => ratio(qTime(x.slice!.steno, 'stenoread', q.id)?.wallS, qTime(x.slice!.ours, 'extract', q.id)?.wallS)), (v) => v > 1, (v) => `stenoread ${v.toFixed(2)}× our time`);
    judge('faster than stenoread for the same answer, both asked of a running daemon with curl', st.map((q) => ratio(qTime(x.slice!.steno, 'stenoread', q.id)?.wallS, qTime(x.slice!.ours, 'API (curl)', q.id)?.wallS)), (v) => v > 1, (v) => `stenoread ${v.toFixed(2)}× our time`);
  }
  judge('findable within 2 s of capture', x.findableS ?? [undefined], (v) => v <= 2, (v) => `${v} s`);
  judge('default index ≤ 2% of pcap bytes', [x.sizes?.storeIndexPct], (v) => v <= 2, (v) => `${v.toFixed(3)}%`);
  judge('flow tables ≤ 1% of pcap bytes (IMIX, 100,000 concurrent flows, 1 GiB files)', [x.flows?.atTargetPct], (v) => v <= 1, (v) => `${v.toFixed(3)}% (the bench store: ${x.flows?.tablePct?.toFixed(3) ?? '?'}%)`);
  judge('stats --by host --top 10 over the whole store < 1 s (cold cache)', [x.flows?.statsS], (v) => v < 1, (v) => `${v.toFixed(2)} s (tshark -z endpoints,ip ${x.flows?.speedup ?? '?'}× that)`);
  judge('stats --by host --top 10 over the whole store < 1 s (cold cache), asked of the running daemon with curl', [x.flows?.apiStatsS], (v) => v < 1, (v) => `${v.toFixed(2)} s`);
  if (x.flows) t.push({ target: 'stats counts the top hosts as tshark does', status: x.flows.agree ? 'pass' : 'fail', detail: x.flows.agree ? 'the same packets for each of the top 10' : 'differs (see results.flows.stats.top)' });
  judge('import with the index ≥ 0.8× cat + sync', [x.imports.find((i) => i.row === 'index')?.vsCat], (v) => v >= 0.8, (v) => `${v.toFixed(3)}×`);
  judge('capture CPU per packet, index on ≤ 1.2× off (64 B, IMIX, 1500 B)', (x.capture ?? [undefined]).map((c) => c?.onVsOff), (v) => v <= 1.2, (v) => `${v.toFixed(3)}×`);
  judge('capture CPU per packet, index and flows ≤ 1.3× neither (64 B, IMIX, 1500 B)', (x.capture ?? [undefined]).map((c) => c?.withFlowsVsOff), (v) => v <= 1.3, (v) => `${v.toFixed(3)}×`);
  judge('capture CPU per packet ≤ stenotype (64 B, IMIX, 1500 B)', (x.capture ?? [undefined]).map((c) => c?.onVsStenotype), (v) => v <= 1, (v) => `${v.toFixed(3)}×`);
  judge(
    'no added loss with the index on',
    (x.capture ?? [undefined]).map((c) => (c === undefined ? undefined : (c.loss['index on'] ?? NaN) - (c.loss['index off'] ?? NaN))),
    (v) => v <= 0,
    (v) => `${round(v, 3)} points`,
  );
  return t;
}

export function targetsText(ts: readonly Target[]): string {
  return ['\nTargets', ...ts.map((x) => `  ${x.status.toUpperCase().padEnd(7)} ${x.target}: ${x.detail}`)].join('\n');
}
