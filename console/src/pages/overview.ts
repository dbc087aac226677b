// Is capture healthy, how much is kept, and the last hour (the daemon's in-memory history).
import type { HistoryResponse, StatusResponse } from '../../../daemon/src/api/types.js';
import { api } from '../api.js';
import { Chart, color } from '../chart.js';
import { Time, bitRate, bytes, duration, nsToMs, num, percent, pktRate } from '../format.js';
import { html } from '../html.js';
import { usePoll } from '../poll.js';

type Metric = 'packets_per_s' | 'bits_per_s' | 'drops_per_s';

function series(history: HistoryResponse, metric: Metric) {
  const names = [...new Set(history.samples.flatMap((s) => s.interfaces.map((i) => i.name)))];
  const x = history.samples.map((s) => s.t / 1000);
  const ys = names.map((n) => history.samples.map((s) => s.interfaces.find((i) => i.name === n)?.[metric] ?? null));
  return { data: [x, ...ys] as [number[], ...(number | null)[][]], series: names.map((label, i) => ({ label, color: color(i) })) };
}

export function Overview({ status }: { status?: StatusResponse }) {
  const history = usePoll((signal) => api<HistoryResponse>('/history', {}, signal), 10_000);
  if (!status) return html`<p>Loading…</p>`;
  const { figures } = status;
  const store = figures.store;
  const h = history.data;
  // The whole hour on every chart, ending at the last sample, so the charts fill in from the right.
  const hour = (): [number, number] => {
    const last = (h?.samples.at(-1)?.t ?? Date.now()) / 1000;
    return [last - 3600, last];
  };
  return html`
    <section>
      <h2>Health: <span class=${`badge ${status.state}`} data-testid="health-state">${status.state}</span></h2>
      ${status.reasons.length
        ? html`<ul class="reasons">${status.reasons.map((r) => html`<li class=${r.level}><b>${r.level}</b> ${r.interface ? html`<code>${r.interface}</code> ` : ''}${r.message}</li>`)}</ul>`
        : html`<p>Every interface captures, nothing is lost, the store keeps what it should.</p>`}
      <p class="muted">Version ${figures.version}, running since <${Time} t=${figures.startedAt} />; figures of <${Time} t=${figures.at} />.</p>
    </section>
    <section>
      <h2>Interfaces</h2>
      <div class="scroll">
        <table data-testid="interfaces">
          <thead><tr><th>Interface</th><th>State</th><th class="n">Packets/s</th><th class="n">Bits/s</th><th class="n">Dropped (${figures.interfaces[0] ? duration(figures.interfaces[0].window.seconds) : 'window'})</th><th class="n">Written</th><th class="n">Bytes written</th></tr></thead>
          <tbody>
            ${figures.interfaces.map(
              (i) => html`<tr data-iface=${i.name}>
                <td><code>${i.name}</code></td>
                <td>${i.up ? html`<span class="ok">capturing</span>` : html`<span class="critical" title=${i.lastError ?? ''}>down${i.downSince ? html` since <${Time} t=${i.downSince} />` : ''}</span>`}${i.restarts ? ` (${num(i.restarts)} restarts)` : ''}</td>
                <td class="n" data-testid="pps">${pktRate(i.window.packetsPerSecond)}</td>
                <td class="n" data-testid="bps">${bitRate(i.window.bitsPerSecond)}</td>
                <td class="n" data-testid="drops">${num(i.window.dropped)} of ${num(i.window.offered)} (${percent(i.window.dropped, i.window.offered)})</td>
                <td class="n" data-testid="written">${num(i.counters.written)} packets</td>
                <td class="n">${bytes(i.counters.written_bytes)}</td>
              </tr>`,
            )}
          </tbody>
        </table>
      </div>
    </section>
    <section>
      <h2>Store</h2>
      <dl class="figures" data-testid="store">
        <dt>Used</dt>
        <dd><meter min="0" max=${store.capacityBytes} value=${store.usedBytes}></meter> ${bytes(store.usedBytes)} of ${bytes(store.capacityBytes)} (${percent(store.usedBytes, store.capacityBytes)})</dd>
        <dt>Free on disk</dt>
        <dd>${bytes(store.freeBytes)}</dd>
        <dt>Retention</dt>
        <dd data-testid="retention">${store.retentionSeconds !== undefined ? duration(store.retentionSeconds) : 'nothing kept yet'}${store.oldestNs ? html`, oldest packet <${Time} t=${nsToMs(store.oldestNs)} />` : ''}${store.retentionTargetSeconds ? `; target ${duration(store.retentionTargetSeconds)}` : ''}</dd>
        <dt>Deleted to make room</dt>
        <dd>${num(store.filesDeleted)} files, ${bytes(store.bytesDeleted)}</dd>
        <dt>Mode</dt>
        <dd>${store.mode}: ${store.paths.join(', ')}</dd>
      </dl>
    </section>
    <section>
      <h2>Last hour</h2>
      ${history.error && html`<p class="error">History: ${history.error}</p>`}
      ${h && h.samples.length < 2 && html`<p class="muted">A sample every ${h.interval_s} s: the charts fill in as the daemon runs.</p>`}
      ${h &&
      h.samples.length >= 2 &&
      html`<div class="charts">
        <figure><figcaption>Bits/s</figcaption><${Chart} label="bits per second, last hour" ...${series(h, 'bits_per_s')} format=${bitRate} xRange=${hour} /></figure>
        <figure><figcaption>Packets/s</figcaption><${Chart} label="packets per second, last hour" ...${series(h, 'packets_per_s')} format=${pktRate} xRange=${hour} /></figure>
        <figure><figcaption>Drops/s</figcaption><${Chart} label="drops per second, last hour" ...${series(h, 'drops_per_s')} format=${(v: number) => `${v > 0 && v < 10 ? v.toFixed(1) : num(v)}/s`} xRange=${hour} /></figure>
        <figure><figcaption>Store used</figcaption><${Chart} label="store use, last hour" data=${[h.samples.map((s) => s.t / 1000), h.samples.map((s) => s.store.used_bytes)]} series=${[{ label: 'used', color: color(0) }]} format=${bytes} xRange=${hour} /></figure>
      </div>`}
    </section>
  `;
}
