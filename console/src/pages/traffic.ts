// The store's traffic over the whole retention, a range selected on it by dragging, and what was
// in that range: top talkers, conversations, ports and protocols (the flow tables, /stats).
//
// The timeline is drawn from the store's catalog (/files: each file's span and bytes), not from
// /stats?interval: a series per interval is counted from every packet record, which means reading
// the whole store each time the page opens, where the catalog is already in the daemon's memory.
// Within a file the bytes are spread evenly over its span, so the resolution is a file's (at most
// storage.file_duration); the tables below, for any range, come from the flow tables.
import { useMemo, useState } from 'preact/hooks';
import type { FilesResponse, StatsResponse, StatusResponse } from '../../../daemon/src/api/types.js';
import { api, orEmpty } from '../api.js';
import { Chart, color } from '../chart.js';
import { Time, bitRate, bytes, isoUtc, nsToMs, num, toMs, utc } from '../format.js';
import { html } from '../html.js';
import { usePoll } from '../poll.js';

/** About this many points on the timeline, at a whole number of seconds each. */
const POINTS = 240;
const NICE = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

export function timelineInterval(spanS: number): number {
  const want = spanS / POINTS;
  return NICE.find((n) => n >= want) ?? Math.ceil(want / 86400) * 86400;
}

/** Bytes per bucket [from + k*interval, …) with each file's bytes spread evenly over its span. */
export function bytesPerInterval(files: FilesResponse['files'], fromS: number, toS: number, intervalS: number): { x: number[]; bytes: number[] } {
  const n = Math.max(1, Math.ceil((toS - fromS) / intervalS));
  const out = new Array<number>(n).fill(0);
  for (const f of files) {
    const a = toMs(f.first) / 1000;
    const b = Math.max(a, toMs(f.last) / 1000);
    const span = b - a;
    const first = Math.max(0, Math.floor((a - fromS) / intervalS));
    const last = Math.min(n - 1, Math.floor((b - fromS) / intervalS));
    for (let k = first; k <= last; k++) {
      const lo = Math.max(a, fromS + k * intervalS);
      const hi = Math.min(b, fromS + (k + 1) * intervalS);
      out[k]! += span > 0 ? (f.bytes * (hi - lo)) / span : f.bytes;
    }
  }
  return { x: out.map((_, k) => fromS + k * intervalS), bytes: out };
}

const TABLES = [
  ['host', 'Top talkers'],
  ['conversation', 'Conversations'],
  ['port', 'Ports'],
  ['proto', 'Protocols'],
] as const;

interface Range {
  from: number;
  to: number;
}

export function Traffic({ status, analyst }: { status?: StatusResponse; analyst: boolean }) {
  const oldest = status?.figures.store.oldestNs;
  // The whole retention, fixed when the page opens (a refresh of the status must not move it).
  const whole = useMemo<Range | null>(() => {
    if (!status) return null;
    const to = Math.ceil(Date.now() / 1000);
    const from = oldest ? Math.floor(nsToMs(oldest) / 1000) : to - 3600;
    return { from, to: Math.max(to, from + 60) };
  }, [Boolean(status), oldest === undefined]);
  const [range, setRange] = useState<Range | null>(null);
  const interval = whole ? timelineInterval(whole.to - whole.from) : 0;

  const timeline = usePoll(
    // An empty store is an empty timeline, not an error.
    (signal) => (whole ? orEmpty(api<FilesResponse>('/files', { from: isoUtc(whole.from * 1000), to: isoUtc(whole.to * 1000) }, signal)).then((f) => f ?? { from: '', to: '', files: [], total: { files: 0, packets: 0, bytes: 0, size: 0 } }) : Promise.resolve(undefined)),
    0,
    [whole?.from, whole?.to],
  );
  const shown = range ?? whole;

  if (!whole || !shown) return html`<p>Loading…</p>`;
  const series = timeline.data ? bytesPerInterval(timeline.data.files, whole.from, whole.to, interval) : { x: [], bytes: [] };
  const x = series.x;
  const rate = series.bytes.map((b) => (b * 8) / interval);
  const query = { from: isoUtc(shown.from * 1000), to: isoUtc(shown.to * 1000) };
  return html`
    <section>
      <h2>Store timeline</h2>
      <p class="muted" data-testid="timeline-summary">
        From <${Time} t=${whole.from * 1000} /> to <${Time} t=${whole.to * 1000} />, ${timeline.data ? `${bytes(timeline.data.total.bytes)} in ${num(timeline.data.total.packets)} packets and ${num(timeline.data.total.files)} ${timeline.data.total.files === 1 ? 'file' : 'files'}, ` : ''}bit rate per ${interval} s (within a file, spread over its span). Drag across the chart to select a range.
      </p>
      ${timeline.error && html`<p class="error" role="alert">${timeline.error}</p>`}
      ${!timeline.data && !timeline.error && html`<p>Reading the store…</p>`}
      ${timeline.data &&
      html`<div data-testid="timeline"><${Chart}
        label="store traffic over the retention"
        data=${[x, rate]}
        series=${[{ label: 'bits/s', color: color(0) }]}
        format=${bitRate}
        height=${200}
        onSelect=${(from: number, to: number) => setRange({ from: Math.floor(from), to: Math.ceil(to) })}
      /></div>`}
    </section>
    <section>
      <h2>
        <span data-testid="range">${range ? html`<${Time} t=${range.from * 1000} /> – <${Time} t=${range.to * 1000} />` : 'The whole retention'}</span>
        ${range && html` <button type="button" class="link" onClick=${() => setRange(null)}>show all</button>`}
        ${analyst && html` <a class="small" href=${`#/extraction?${new URLSearchParams(query).toString()}`}>extract this range</a>`}
      </h2>
      <div class="tables">${TABLES.map(([by, title]) => html`<${TopTable} key=${by} by=${by} title=${title} from=${query.from} to=${query.to} />`)}</div>
    </section>
  `;
}

function TopTable({ by, title, from, to }: { by: (typeof TABLES)[number][0]; title: string; from: string; to: string }) {
  // Nothing in the range (the CLI's exit 3) is a table with no rows.
  const stats = usePoll((signal) => orEmpty(api<StatsResponse>('/stats', { from, to, by, top: 10 }, signal)).then((s) => s ?? { from, to, by, total: { packets: 0, bytes: 0, flows: 0 }, rows: [] }), 0, [from, to]);
  const s = stats.data;
  return html`
    <figure class="top-table" data-testid=${`top-${by}`}>
      <figcaption>${title}</figcaption>
      ${stats.error && html`<p class="error">${stats.error}</p>`}
      ${!s && !stats.error && html`<p class="muted">Loading…</p>`}
      ${s &&
      html`<div class="scroll"><table>
        <thead><tr><th>${by === 'host' ? 'Address' : by === 'conversation' ? 'Between' : by === 'port' ? 'Port' : 'Protocol'}</th><th class="n">Bytes</th><th class="n">Packets</th><th class="n">Flows</th><th class="n">Share</th></tr></thead>
        <tbody>
          ${s.rows.length === 0 && html`<tr><td colspan="5" class="muted">Nothing in ${utc(from)} – ${utc(to)}</td></tr>`}
          ${s.rows.map(
            (r) => html`<tr>
              <td><code>${r.key}</code></td>
              <td class="n">${bytes(r.bytes)}</td>
              <td class="n">${num(r.packets)}</td>
              <td class="n">${num(r.flows)}</td>
              <td class="n"><meter min="0" max=${s.total.bytes || 1} value=${r.bytes}></meter></td>
            </tr>`,
          )}
        </tbody>
      </table></div>`}
    </figure>
  `;
}
