import { useEffect, useState } from 'preact/hooks';

export interface Polled<T> {
  data?: T;
  error?: string;
}

/** Calls load now and every `ms` after the last answer; keeps the last data through a failed call. */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, ms: number, deps: unknown[] = []): Polled<T> {
  const [state, setState] = useState<Polled<T>>({});
  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const data = await load(abort.signal);
        if (!abort.signal.aborted) setState({ data });
      } catch (e) {
        if (!abort.signal.aborted) setState((s) => ({ data: s.data, error: e instanceof Error ? e.message : String(e) }));
      }
      if (!abort.signal.aborted && ms > 0) timer = setTimeout(tick, ms);
    };
    void tick();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, deps);
  return state;
}
