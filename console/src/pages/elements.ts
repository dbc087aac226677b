// Element states come with the next issue (#20); the page exists so the navigation is settled, and
// shows only when the daemon's status says elements are configured.
import type { StatusResponse } from '../../../daemon/src/api/types.js';
import { html } from '../html.js';

/** The status has no `elements` yet: a daemon that has them will say so under figures. */
export function elementsConfigured(status: StatusResponse): boolean {
  const elements = (status.figures as { elements?: unknown }).elements;
  return Array.isArray(elements) ? elements.length > 0 : Boolean(elements);
}

export function Elements() {
  return html`<section><h2>Elements</h2><p>Element states are not served by this version of the daemon yet.</p></section>`;
}
