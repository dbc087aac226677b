// The indicators an element can be judged by: the one registry. The config schema takes its keys
// and threshold kinds from here, the state engine its computations, the docs (docs/INDICATORS.md)
// explain how to add one. Each indicator turns one window of counter differences (window.ts) into
// a value in its unit, or null when the window holds nothing it could measure.
import type { ElementReason } from './types.js';

/** What the thresholds of an indicator are written as in the config. */
export type ThresholdKind =
  /** A share of something: "5%" (kept as 5). */
  | 'share'
  /** A short time: "50ms", "0.2s" (kept in ms). */
  | 'time'
  /** A span: "60s", "5m" (kept in s). */
  | 'span';

export const THRESHOLD_UNIT: Record<ThresholdKind, ElementReason['unit']> = { share: '%', time: 'ms', span: 's' };

/** One window of an element's counters: differences of the helper's cumulative counters summed over
 *  every interface (window.ts), plus what is not a difference. */
export interface WindowCounts {
  packets: number;
  bytes: number;
  tcp_attempts: number;
  tcp_answered: number;
  tcp_unanswered: number;
  tcp_reset: number;
  /** Handshake round trips in the window: bucket → count (the bucket rule is the helper's). */
  rtt_hist: Map<number, number>;
  dns_answers: number;
  dns_errors: number;
  http_responses: number;
  http_errors: number;
  /** Per `custom` filter of the element, in its order. */
  custom: number[];
  /** Milliseconds since the element's last packet (or since it was configured, when none was seen). */
  silentMs: number;
}

export interface IndicatorContext {
  /** Index of this indicator's own filter among the element's custom filters (filter-taking ones). */
  customIndex: number;
  /** A percentile (0 < p ≤ 1) of a round-trip histogram's [bucket, count] pairs, in ms (the helper's bucket rule). */
  percentileMs: (hist: ReadonlyArray<readonly [number, number]>, p: number) => number | null;
}

export interface IndicatorDefinition {
  /** The key under `elements[].indicators` and the `indicator` label of the metric. */
  name: string;
  /** What it measures, for the docs and the JSON Schema. */
  description: string;
  threshold: ThresholdKind;
  /** Takes a second BPF filter of its own (`filter:` next to its thresholds), run natively on the element's packets. */
  takesFilter?: boolean;
  /** An example of its config for messages: `{warning: 1%, critical: 5%}`. */
  example: string;
  /** Its value over the window, in THRESHOLD_UNIT[threshold]; null when nothing was measurable. */
  measure(w: WindowCounts, ctx: IndicatorContext): number | null;
}

/** part/whole as a percentage; null when there is no whole. A part counted in the window after its
 *  whole was counted in the previous one can exceed it: the share stops at 100%. */
const share = (part: number, whole: number): number | null => (whole > 0 ? Math.min(100, (100 * part) / whole) : null);

const REGISTRY = [
  {
    name: 'tcp_resets',
    description: 'Share of the TCP connections attempted in the window that saw a reset (refused connections included)',
    threshold: 'share',
    example: '{warning: 1%, critical: 5%}',
    measure: (w) => share(w.tcp_reset, w.tcp_attempts),
  },
  {
    name: 'tcp_unanswered_syns',
    description: 'Share of the TCP connections attempted in the window whose SYN got neither SYN-ACK nor reset',
    threshold: 'share',
    example: '{warning: 1%, critical: 10%}',
    measure: (w) => share(w.tcp_unanswered, w.tcp_attempts),
  },
  {
    name: 'tcp_handshake_rtt',
    description: '95th percentile of the SYN to SYN-ACK round trip of the connections answered in the window',
    threshold: 'time',
    example: '{warning: 50ms, critical: 200ms}',
    measure: (w, ctx) => ctx.percentileMs([...w.rtt_hist], 0.95),
  },
  {
    name: 'dns_errors',
    description: 'Share of the DNS answers in the window with a response code other than 0 (NOERROR)',
    threshold: 'share',
    example: '{warning: 5%, critical: 20%}',
    measure: (w) => share(w.dns_errors, w.dns_answers),
  },
  {
    name: 'http_errors',
    description: 'Share of the HTTP/1.x responses in the window with a 5xx status',
    threshold: 'share',
    example: '{warning: 5%, critical: 20%}',
    measure: (w) => share(w.http_errors, w.http_responses),
  },
  {
    name: 'silence',
    description: "Time since the element's last packet (since the element was configured when none was seen)",
    threshold: 'span',
    example: '{critical: 60s}',
    measure: (w) => w.silentMs / 1000,
  },
  {
    name: 'custom_share',
    description: "Share of the element's packets in the window that also match the indicator's own filter",
    threshold: 'share',
    takesFilter: true,
    example: '{filter: "icmp[icmptype] == icmp-unreach", warning: 1%, critical: 5%}',
    measure: (w, ctx) => share(w.custom[ctx.customIndex] ?? 0, w.packets),
  },
] as const satisfies readonly IndicatorDefinition[];

export type IndicatorName = (typeof REGISTRY)[number]['name'];
/** The registry, in the order states list their figures. */
export const INDICATORS: readonly (IndicatorDefinition & { name: IndicatorName })[] = REGISTRY;

export function indicatorDefinition(name: IndicatorName): IndicatorDefinition {
  return INDICATORS.find((d) => d.name === name)!;
}
