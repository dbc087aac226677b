// A small ElementStateSource the tests drive by hand: the contract of daemon/src/elements/types.ts
// without the state engine, for the consumers (Qualevent) built beside it.
import type { ElementLevel, ElementState, ElementStateSource } from '../../daemon/src/elements/types.js';

export class HandSource implements ElementStateSource {
  private readonly listeners = new Set<(s: ElementState) => void>();
  readonly states = new Map<string, ElementState>();

  constructor(ids: string[]) {
    const since = new Date().toISOString();
    for (const id of ids) this.states.set(id, { element: id, name: `Element ${id}`, state: 'unknown', previous: null, since, reasons: [], figures: { tcp_resets: null }, window_seconds: 60 });
  }

  current(): ElementState[] {
    return [...this.states.values()];
  }

  onChange(listener: (s: ElementState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The element moves to `level` (a reason past its threshold unless ok), and listeners hear it. */
  set(id: string, level: ElementLevel): ElementState {
    const before = this.states.get(id)!;
    const value = level === 'critical' ? 12.5 : level === 'warning' ? 3 : 0.2;
    const next: ElementState = {
      ...before,
      state: level,
      previous: before.state,
      since: new Date().toISOString(),
      reasons: level === 'warning' || level === 'critical' ? [{ indicator: 'tcp_resets', value, threshold: level === 'critical' ? 5 : 1, level, unit: '%' }] : [],
      figures: { tcp_resets: value },
    };
    this.states.set(id, next);
    for (const l of this.listeners) l(next);
    return next;
  }
}
