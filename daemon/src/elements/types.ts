// What an element's state is, as every consumer sees it: `qe-packets status`, the API and console,
// the metrics, and the Qualevent reporter (daemon/src/qualevent/). The one definition of these
// shapes; the state engine (daemon/src/elements/) produces them, the rest only read them.

/** Levels in increasing gravity; `unknown`: no traffic yet and no `silence` rule. */
export const ELEMENT_LEVELS = ['ok', 'warning', 'critical', 'unknown'] as const;
export type ElementLevel = (typeof ELEMENT_LEVELS)[number];

/** The metric `qe_packets_element_state{element}` encodes a level as this number. */
export const ELEMENT_LEVEL_VALUE: Record<ElementLevel, number> = { ok: 0, warning: 1, critical: 2, unknown: 3 };

/** Why an element is at its level: one indicator past one threshold. */
export interface ElementReason {
  indicator: string;
  /** The measured value, in `unit`. */
  value: number;
  threshold: number;
  level: 'warning' | 'critical';
  /** '%' for shares (0–100), 'ms' for times, 's' for durations such as silence. */
  unit: '%' | 'ms' | 's';
}

export interface ElementState {
  /** The id in Qe-Inventory (config `elements[].id`). */
  element: string;
  name?: string;
  state: ElementLevel;
  /** The state before the last change; null until the first change after start. */
  previous: ElementLevel | null;
  /** ISO 8601 time the element entered `state`. */
  since: string;
  /** Empty when ok or unknown. */
  reasons: ElementReason[];
  /** Every configured indicator's value over the window, in its unit; null when not measurable yet
   *  (no TCP connection attempted, no DNS answer seen...). */
  figures: Record<string, number | null>;
  window_seconds: number;
}

/** The state engine as the reporter, API and metrics see it. */
export interface ElementStateSource {
  /** Every configured element, in config order. */
  current(): ElementState[];
  /** Called on every change of an element's state (not on a change of figures alone); returns an
   *  unsubscribe function. */
  onChange(listener: (s: ElementState) => void): () => void;
}
