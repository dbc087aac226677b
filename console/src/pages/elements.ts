// The elements' states (GET /elements): each element's level since when and from what, the
// reasons, and every indicator's value over its window. Shown only when elements are configured.
import type { ElementsResponse, StatusResponse } from '../../../daemon/src/api/types.js';
import { INDICATORS, THRESHOLD_UNIT } from '../../../daemon/src/elements/indicators.js';
import type { ElementReason, ElementState } from '../../../daemon/src/elements/types.js';
import { api } from '../api.js';
import { Time, duration } from '../format.js';
import { html } from '../html.js';
import { usePoll } from '../poll.js';

/** The nav shows the page when the status lists elements. */
export function elementsConfigured(status: StatusResponse): boolean {
  return (status.figures.elements?.length ?? 0) > 0;
}

const dec = (digits: number) => new Intl.NumberFormat('en-US', { maximumFractionDigits: digits });
const UNIT_TEXT: Record<ElementReason['unit'], string> = { '%': ' %', ms: ' ms', s: ' s' };

function value(v: number, unit: ElementReason['unit']): string {
  return `${dec(unit === '%' && v < 10 ? 2 : unit === 's' ? 0 : 1).format(v)}${UNIT_TEXT[unit]}`;
}

const unitOf = (indicator: string): ElementReason['unit'] | undefined => {
  const def = INDICATORS.find((d) => d.name === indicator);
  return def && THRESHOLD_UNIT[def.threshold];
};

function Element({ e }: { e: ElementState }) {
  return html`<tr data-element=${e.element}>
    <td><code>${e.element}</code>${e.name ? html`<br /><span class="muted">${e.name}</span>` : ''}</td>
    <td><span class=${`badge ${e.state}`} data-testid="element-state">${e.state}</span></td>
    <td data-testid="element-since"><${Time} t=${e.since} />${e.previous ? html`<br /><span class="muted">was ${e.previous}</span>` : ''}</td>
    <td data-testid="element-reasons">
      ${e.reasons.length
        ? html`<ul class="reasons">${e.reasons.map((r) => html`<li class=${r.level}><b>${r.level}</b> ${r.indicator} ${value(r.value, r.unit)} (threshold ${value(r.threshold, r.unit)})</li>`)}</ul>`
        : html`<span class="muted">${e.state === 'unknown' ? 'no packet seen yet' : 'none'}</span>`}
    </td>
    <td>
      <dl class="figures" data-testid="element-figures">
        ${Object.entries(e.figures).map(([k, v]) => {
          const unit = unitOf(k);
          return html`<dt>${k}</dt><dd data-indicator=${k}>${v === null ? '–' : unit ? value(v, unit) : dec(2).format(v)}</dd>`;
        })}
      </dl>
      <span class="muted">over ${duration(e.window_seconds)}</span>
    </td>
  </tr>`;
}

export function Elements() {
  const elements = usePoll((signal) => api<ElementsResponse>('/elements', {}, signal), 2000);
  const list = elements.data?.elements;
  return html`<section>
    <h2>Elements</h2>
    ${elements.error && html`<p class="error" role="alert">Elements: ${elements.error}</p>`}
    ${!list
      ? html`<p>Loading…</p>`
      : html`<div class="scroll">
          <table data-testid="elements">
            <thead><tr><th>Element</th><th>State</th><th>Since</th><th>Reasons</th><th>Indicators</th></tr></thead>
            <tbody>${list.map((e) => html`<${Element} key=${e.element} e=${e} />`)}</tbody>
          </table>
        </div>`}
  </section>`;
}
