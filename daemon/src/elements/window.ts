// Windows over the helpers' cumulative element counters: the daemon keeps each interface's
// once-a-second `elements` messages for as long as the longest window, and an element's window is
// the difference between the last one and the one at the window's start, summed over interfaces.
// Differences of cumulative counters lose nothing when a line is lost; a new generation (a `set
// elements`, a restarted helper) starts again from zero.
import { elementCounters, type ElementsMessage } from '../capture/protocol.js';
import { rttHistDelta } from './helper-file.js';
import type { WindowCounts } from './indicators.js';

export type ElementCounters = ElementsMessage['elements'][number];

interface Sample {
  /** When it arrived (ms since the epoch). */
  at: number;
  elements: ElementCounters[];
}

interface Track {
  generation: number;
  samples: Sample[];
}

type Scalar = Exclude<keyof ElementCounters, 'last_ns' | 'rtt_hist' | 'custom'>;
/** Every plain count of the message (a new field parser's pair included), read from its schema. */
const SCALARS = Object.keys(elementCounters.shape).filter((k) => !['last_ns', 'rtt_hist', 'custom'].includes(k)) as Scalar[];

const zeroScalars = (): Record<Scalar, number> => {
  const z = {} as Record<Scalar, number>;
  for (const k of SCALARS) z[k] = 0;
  return z;
};

const zero = (customs: number): ElementCounters => ({ ...zeroScalars(), last_ns: 0n, rtt_hist: [], custom: Array<number>(customs).fill(0) });

/** The last sample at or before `from` (the first when none is): samples arrive in time order. */
function sampleAt(samples: Sample[], from: number): Sample {
  let lo = 0;
  let hi = samples.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (samples[mid]!.at <= from) lo = mid;
    else hi = mid - 1;
  }
  return samples[lo]!;
}

export type WindowDiff = Omit<WindowCounts, 'silentMs'>;

export class ElementWindows {
  private tracks = new Map<string, Track>();
  /** Per interface, a generation whose counters belong to elements no longer configured. */
  private stale = new Map<string, number>();

  constructor(
    /** Custom filters of each configured element, in config order: what a message must match. */
    private customs: number[],
    /** The longest window: samples older than it (and one more) are let go. */
    private keepMs: number,
  ) {}

  /**
   * Takes a helper's message; false when it cannot be about the configured elements (a generation
   * from before the last reconfigure, or another number of elements), and then it is left out.
   */
  ingest(m: ElementsMessage, at: number): boolean {
    // A helper's generations only grow (a restarted one is forgotten first).
    if (m.generation <= (this.stale.get(m.iface) ?? -1)) return false;
    if (m.elements.length !== this.customs.length || m.elements.some((e, i) => e.custom.length !== this.customs[i])) return false;
    this.stale.delete(m.iface);
    let t = this.tracks.get(m.iface);
    if (!t || t.generation !== m.generation) {
      // Counters of a generation count from zero at its start, about a report interval before its first message.
      t = { generation: m.generation, samples: [{ at: at - 1000, elements: this.customs.map(zero) }] };
      this.tracks.set(m.iface, t);
    }
    t.samples.push({ at, elements: m.elements });
    const keepFrom = at - this.keepMs - 1000;
    while (t.samples.length > 2 && t.samples[1]!.at <= keepFrom) t.samples.shift();
    return true;
  }

  /** Its helper ended: the next one counts from zero whatever its generation. */
  forget(iface: string): void {
    this.tracks.delete(iface);
    this.stale.delete(iface);
  }

  /** The elements changed: what the helpers report until their next generation is about the old ones. */
  reconfigure(customs: number[], keepMs: number): void {
    for (const [iface, t] of this.tracks) this.stale.set(iface, t.generation);
    this.tracks.clear();
    this.customs = customs;
    this.keepMs = keepMs;
  }

  /** Element `index`'s counters over the `windowMs` before `now`, summed over interfaces. */
  window(index: number, windowMs: number, now: number): WindowDiff {
    // Every element is judged every second: what this allocates is the window itself, no more.
    const out: WindowDiff = Object.assign(zeroScalars(), { custom: Array<number>(this.customs[index] ?? 0).fill(0), rtt_hist: new Map<number, number>() });
    for (const t of this.tracks.values()) {
      const last = t.samples[t.samples.length - 1]!;
      const base = sampleAt(t.samples, now - windowMs);
      if (base === last) continue;
      const a = base.elements[index]!;
      const b = last.elements[index]!;
      for (const k of SCALARS) out[k] += Math.max(0, b[k] - a[k]);
      for (let k = 0; k < b.custom.length; k++) out.custom[k]! += Math.max(0, b.custom[k]! - (a.custom[k] ?? 0));
      if (b.rtt_hist.length)
        for (const [bucket, n] of rttHistDelta(b.rtt_hist, a.rtt_hist)) out.rtt_hist.set(bucket, (out.rtt_hist.get(bucket) ?? 0) + n);
    }
    return out;
  }
}
