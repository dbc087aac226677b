// The state engine: each element's level from its indicators over its window, the reasons, when it
// changed and from what. It reads the helpers' `elements` messages (never packets) and re-judges
// every element on each message, and a second after the last judgement when none came, so `silence`
// rises while nothing arrives.
import type { ElementsMessage } from '../capture/protocol.js';
import type { Config, ElementConfig } from '../config/config.js';
import { THRESHOLD_UNIT, indicatorDefinition, type IndicatorContext } from './indicators.js';
import { rttPercentileMs } from './helper-file.js';
import type { ElementLevel, ElementReason, ElementState, ElementStateSource } from './types.js';
import { ElementWindows } from './window.js';

export interface EngineOptions {
  /** The clock (ms since the epoch); tests drive their own. */
  now?: () => number;
}

interface Tracked {
  state: ElementState;
  /** Wall-clock ms of the element's last packet (the helpers' last_ns), undefined before any. */
  lastPacketMs?: number;
  /** When the element was configured: silence counts from here until a first packet. */
  configuredAt: number;
}

/** Longer than a report interval and a `set elements` round trip. */
const RECONFIGURE_HOLD_MS = 5000;
const LEVEL_ORDER: Record<ElementLevel, number> = { ok: 0, unknown: 1, warning: 2, critical: 3 };
/** Figures as shown: enough digits for a share of a busy element, no float noise. */
const round = (v: number | null) => (v === null ? null : Math.round(v * 1000) / 1000);

const customsOf = (elements: ElementConfig[]) => elements.map((e) => e.indicators.filter((x) => x.filter !== undefined).length);
const longest = (elements: ElementConfig[]) => Math.max(0, ...elements.map((e) => e.windowMs));

export class ElementEngine implements ElementStateSource {
  private elements: ElementConfig[];
  private windows: ElementWindows;
  private tracked = new Map<string, Tracked>();
  private listeners = new Set<(s: ElementState) => void>();
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;
  /** After a reconfigure, until the helpers report the new elements (or a few seconds pass): the
   *  windows are empty then, and judging kept elements on nothing would flap them to ok. */
  private holdUntil = 0;

  constructor(elements: ElementConfig[], opts: EngineOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.elements = elements;
    this.windows = new ElementWindows(customsOf(elements), longest(elements));
    this.evaluate();
  }

  /** Re-judges a second after the last judgement (silence grows without messages); unref'd: it never keeps a process up. */
  start(): void {
    this.timer ??= setInterval(() => this.evaluate(), 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  ingest(m: ElementsMessage): void {
    const at = this.now();
    if (!this.windows.ingest(m, at)) return;
    this.holdUntil = 0;
    m.elements.forEach((c, i) => {
      const t = this.tracked.get(this.elements[i]!.id);
      if (t && c.last_ns > 0n) t.lastPacketMs = Math.max(t.lastPacketMs ?? 0, Number(c.last_ns / 1_000_000n));
    });
    this.evaluate();
    // Judged now: the timer's next judgement is a second from here, not also in between (the
    // daemon shares a core with the capture helper, whose caches every wake-up here disturbs).
    this.timer?.refresh();
  }

  /** The interface's helper ended: a new one counts from zero. */
  helperExited(iface: string): void {
    this.windows.forget(iface);
  }

  /** A reload: elements kept by id keep their state and last packet; their windows start again. */
  reconfigure(config: Config): void {
    const next = config.elements;
    if (JSON.stringify(next) === JSON.stringify(this.elements)) return;
    this.elements = next;
    this.windows.reconfigure(customsOf(next), longest(next));
    this.holdUntil = this.now() + RECONFIGURE_HOLD_MS;
    const ids = new Set(next.map((e) => e.id));
    for (const id of this.tracked.keys()) if (!ids.has(id)) this.tracked.delete(id);
    this.evaluate();
  }

  current(): ElementState[] {
    return this.elements.map((e) => this.tracked.get(e.id)!.state);
  }

  onChange(listener: (s: ElementState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every element judged now; a change of level is told to the listeners. */
  evaluate(): void {
    const now = this.now();
    this.elements.forEach((e, i) => {
      const t = this.tracked.get(e.id);
      if (!t) {
        // A new element starts at what it is judged now, not with a change.
        const fresh: Tracked = { configuredAt: now, state: undefined as unknown as ElementState };
        fresh.state = { ...this.judge(e, i, fresh, now), previous: null, since: new Date(now).toISOString() };
        this.tracked.set(e.id, fresh);
        return;
      }
      if (now < this.holdUntil) return;
      const judged = this.judge(e, i, t, now);
      const before = t.state;
      if (judged.state === before.state) {
        t.state = { ...judged, previous: before.previous, since: before.since };
        return;
      }
      t.state = { ...judged, previous: before.state, since: new Date(now).toISOString() };
      for (const l of this.listeners) l(t.state);
    });
  }

  private judge(e: ElementConfig, index: number, t: Tracked, now: number): Omit<ElementState, 'previous' | 'since'> {
    const w = this.windows.window(index, e.windowMs, now);
    const silentMs = Math.max(0, now - (t.lastPacketMs ?? t.configuredAt));
    const counts = { ...w, silentMs };
    let customIndex = 0;
    const figures: Record<string, number | null> = {};
    const reasons: ElementReason[] = [];
    for (const x of e.indicators) {
      const def = indicatorDefinition(x.name);
      const ctx: IndicatorContext = { customIndex, percentileMs: rttPercentileMs };
      if (def.takesFilter) customIndex++;
      const value = round(def.measure(counts, ctx));
      figures[x.name] = value;
      if (value === null) continue;
      const level = x.critical !== undefined && value >= x.critical ? 'critical' : x.warning !== undefined && value >= x.warning ? 'warning' : undefined;
      if (level) reasons.push({ indicator: x.name, value, threshold: level === 'critical' ? x.critical! : x.warning!, level, unit: THRESHOLD_UNIT[def.threshold] });
    }
    reasons.sort((a, b) => LEVEL_ORDER[b.level] - LEVEL_ORDER[a.level]);
    // No packet yet says nothing of the element, unless its silence is itself the indicator.
    const unknown = t.lastPacketMs === undefined && !e.indicators.some((x) => x.name === 'silence');
    const state: ElementLevel = unknown ? 'unknown' : (reasons[0]?.level ?? 'ok');
    return {
      element: e.id,
      ...(e.name ? { name: e.name } : {}),
      state,
      reasons: unknown ? [] : reasons,
      figures,
      window_seconds: e.windowMs / 1000,
    };
  }
}
