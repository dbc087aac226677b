// The last hour of the overview's figures, kept in the daemon's memory (no database): every 10 s,
// each interface's packets/s, bits/s and drops/s since the sample before (from the helpers'
// cumulative counters), and the store's use. 360 samples of a few interfaces: tens of kilobytes.
import type { StatusReport } from '../health/figures.js';
import type { HistoryResponse, HistorySample } from './types.js';

export const HISTORY_INTERVAL_MS = 10_000;
export const HISTORY_SPAN_MS = 3600_000;

type Totals = Map<string, { packets: number; bytes: number; drops: number }>;

export class History {
  private samples: HistorySample[] = [];
  private last?: { t: number; totals: Totals };
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly report: () => StatusReport,
    private readonly intervalMs = HISTORY_INTERVAL_MS,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Takes one sample now (the timer's job; tests call it too). */
  sample(): void {
    const r = this.report();
    const t = r.figures.at;
    const totals: Totals = new Map();
    for (const i of r.figures.interfaces) {
      const c = i.counters;
      totals.set(i.name, { packets: c.written, bytes: c.written_bytes, drops: c.kernel_drops + c.if_drops + c.writer_drops + c.store_full_drops });
    }
    const prev = this.last;
    this.last = { t, totals };
    if (!prev || t <= prev.t) return; // the first sample is the baseline rates are measured from
    const secs = (t - prev.t) / 1000;
    // A helper restarted since (counters back to zero) counts from zero, never negative.
    const rate = (now: number, before: number | undefined) => Math.max(0, now - (before !== undefined && before <= now ? before : 0)) / secs;
    this.samples.push({
      t,
      interfaces: [...totals].map(([name, n]) => {
        const p = prev.totals.get(name);
        return { name, packets_per_s: rate(n.packets, p?.packets), bits_per_s: rate(n.bytes, p?.bytes) * 8, drops_per_s: rate(n.drops, p?.drops) };
      }),
      store: { used_bytes: r.figures.store.usedBytes, capacity_bytes: r.figures.store.capacityBytes },
    });
    const since = t - HISTORY_SPAN_MS;
    while (this.samples.length && this.samples[0]!.t <= since) this.samples.shift();
  }

  snapshot(): HistoryResponse {
    return { interval_s: this.intervalMs / 1000, samples: [...this.samples] };
  }
}
