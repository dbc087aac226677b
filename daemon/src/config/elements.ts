// `elements:` as written → ElementConfig: thresholds in their indicator's unit, the window in ms,
// and the checks a schema cannot make (a duplicate id, a warning above its critical). The filters
// are compiled by libpcap in check-environment.ts, with the capture filter.
import { ELEM_FILTER_MAX, ELEM_MAX } from '../elements/helper-file.js';
import { INDICATORS, THRESHOLD_UNIT, type IndicatorDefinition } from '../elements/indicators.js';
import type { ElementConfig, ElementIndicatorConfig } from './config.js';
import type { ConfigProblem } from './errors.js';
import type { ParsedRawConfig } from './schema.js';
import { PERCENT_RE, parseDuration } from './units.js';

type RawElement = ParsedRawConfig['elements'][number];
type RawThresholds = { warning?: string | number; critical?: string | number; filter?: string };

/** Shortest window: the helper reports once a second, and a SYN is unanswered only after 3 s. */
export const ELEMENT_WINDOW_MIN_MS = 5000;

/** A threshold as written ("5%", "50ms", "60s") in the indicator's unit; undefined when unusable. */
function thresholdOf(def: IndicatorDefinition, v: string | number): number | undefined {
  if (def.threshold === 'share') {
    const m = typeof v === 'string' ? PERCENT_RE.exec(v) : null;
    return m ? Number(m[1]) : undefined;
  }
  const ms = parseDuration(v);
  return ms === undefined ? undefined : def.threshold === 'time' ? ms : ms / 1000;
}

const shown = (n: number, def: IndicatorDefinition) => `${n}${THRESHOLD_UNIT[def.threshold]}`;

/** The capture helper's limit on one filter (element-format.h), said where the filter is written. */
function checkLength(key: string, filter: string, problems: ConfigProblem[]): void {
  const bytes = Buffer.byteLength(filter.replace(/[\r\n]+/g, ' '));
  if (bytes > ELEM_FILTER_MAX)
    problems.push({ key, value: `${filter.slice(0, 60)}… (${bytes} bytes)`, message: `longer than the ${ELEM_FILTER_MAX} bytes the capture helper takes`, fix: 'shorten it: a net (net 10.1.0.0/16) or a range (portrange 8000-8100) instead of a list of hosts or ports' });
}

export function elementsOf(raw: RawElement[], defaultWindowMs: number, problems: ConfigProblem[]): ElementConfig[] {
  if (raw.length > ELEM_MAX)
    problems.push({ key: 'elements', value: `${raw.length} elements`, message: `more than the ${ELEM_MAX} elements the capture helper counts`, fix: `keep at most ${ELEM_MAX}: one element per service, with a filter covering its hosts (net, or host a or host b)` });
  const firstAt = new Map<string, number>();
  return raw.map((e, i) => {
    const at = `elements[${i}]`;
    const before = firstAt.get(e.id);
    if (before !== undefined)
      problems.push({ key: `${at}.id`, value: e.id, message: `already the id of elements[${before}]`, fix: 'give each element its own id (the one Qe-Inventory knows it by)' });
    else firstAt.set(e.id, i);
    checkLength(`${at}.filter`, e.filter, problems);

    let windowMs = defaultWindowMs;
    if (e.window !== undefined) {
      const ms = parseDuration(e.window);
      if (ms === undefined || ms < ELEMENT_WINDOW_MIN_MS)
        problems.push({ key: `${at}.window`, value: e.window, message: ms === undefined ? 'not a duration' : 'below 5s: too few once-a-second counts', fix: 'use 5s or more, e.g. 60s, or remove the key to use health.window' });
      else windowMs = ms;
    }

    const written = e.indicators as Record<string, RawThresholds | undefined>;
    const indicators: ElementIndicatorConfig[] = [];
    for (const def of INDICATORS) {
      const t = written[def.name];
      if (!t) continue;
      const key = `${at}.indicators.${def.name}`;
      const out: ElementIndicatorConfig = { name: def.name };
      for (const level of ['warning', 'critical'] as const) {
        const v = t[level];
        if (v === undefined) continue;
        const n = thresholdOf(def, v);
        if (n === undefined) problems.push({ key: `${key}.${level}`, value: v, message: `not a ${def.threshold === 'share' ? 'share' : 'duration'}`, fix: `write e.g. ${def.name}: ${def.example}` });
        else out[level] = n;
      }
      if (t.warning === undefined && t.critical === undefined)
        problems.push({ key, value: t, message: 'has no threshold: it could never change the state', fix: `give it a warning, a critical or both, e.g. ${def.name}: ${def.example}` });
      if (out.warning !== undefined && out.critical !== undefined && out.warning > out.critical)
        problems.push({
          key: `${key}.warning`,
          value: t.warning,
          message: `above its critical (${String(t.critical)}): the ${def.name} would be critical before it is a warning`,
          fix: `make warning at most critical, e.g. warning ${shown(out.critical, def)} or less, or raise critical`,
        });
      if (def.takesFilter) {
        out.filter = t.filter;
        if (t.filter !== undefined) checkLength(`${key}.filter`, t.filter, problems);
      }
      indicators.push(out);
    }
    if (!indicators.length)
      problems.push({ key: `${at}.indicators`, value: e.indicators, message: 'no indicator: the element could never leave ok', fix: `add at least one, e.g. tcp_resets: {warning: 1%, critical: 5%} (known: ${INDICATORS.map((d) => d.name).join(', ')})` });
    return { id: e.id, ...(e.name ? { name: e.name } : {}), filter: e.filter, windowMs, indicators };
  });
}
