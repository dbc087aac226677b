// The shell: login until a token works, then the pages by the URL's hash (#/traffic), which needs
// no server-side routes. The status is polled here once for the header and every page.
import { useEffect, useState } from 'preact/hooks';
import type { StatusResponse, WhoamiResponse } from '../../daemon/src/api/types.js';
import { roleAllows } from '../../daemon/src/api/types.js';
import { api, session, whenUnauthorized } from './api.js';
import { html } from './html.js';
import { Elements, elementsConfigured } from './pages/elements.js';
import { Extraction } from './pages/extraction.js';
import { Login } from './pages/login.js';
import { Overview } from './pages/overview.js';
import { Traffic } from './pages/traffic.js';
import { usePoll } from './poll.js';

const PAGES = ['overview', 'traffic', 'extraction', 'elements'] as const;
type Page = (typeof PAGES)[number];

function pageOfHash(): { page: Page; params: URLSearchParams } {
  const [path = '', query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  return { page: (PAGES as readonly string[]).includes(path) ? (path as Page) : 'overview', params: new URLSearchParams(query) };
}

export function App() {
  const [who, setWho] = useState<WhoamiResponse | null>(null);
  const [checking, setChecking] = useState(Boolean(session.token()));
  const [route, setRoute] = useState(pageOfHash);

  useEffect(() => {
    const onHash = () => setRoute(pageOfHash());
    addEventListener('hashchange', onHash);
    whenUnauthorized(() => {
      session.clear();
      setWho(null);
    });
    // A reload within the session keeps the token: check it is still good.
    if (session.token())
      api<WhoamiResponse>('/whoami')
        .then(setWho, () => session.clear())
        .finally(() => setChecking(false));
    return () => removeEventListener('hashchange', onHash);
  }, []);

  if (checking) return html`<main class="page"><p>Connecting…</p></main>`;
  if (!who) return html`<${Login} onLogin=${setWho} />`;
  return html`<${Shell} who=${who} route=${route} onLogout=${() => (session.clear(), setWho(null))} />`;
}

function Shell({ who, route, onLogout }: { who: WhoamiResponse; route: ReturnType<typeof pageOfHash>; onLogout: () => void }) {
  const status = usePoll((signal) => api<StatusResponse>('/status', {}, signal), 5000);
  const analyst = roleAllows(who.role, 'analyst');
  const elements = status.data ? elementsConfigured(status.data) : false;
  const nav: [Page, string][] = [
    ['overview', 'Overview'],
    ['traffic', 'Traffic'],
    ...(analyst ? [['extraction', 'Extraction'] as [Page, string]] : []),
    ...(elements ? [['elements', 'Elements'] as [Page, string]] : []),
  ];
  const page = nav.some(([p]) => p === route.page) ? route.page : 'overview';
  // A link to a page this token's role may not use (shared by an analyst) says so, over the overview.
  const refused = route.page === 'extraction' && !analyst;
  const state = status.data?.state;
  // The extraction form is keyed by its URL's parameters: a link with another range (traffic's
  // "extract this range") starts a new form rather than keeping the one on screen.
  return html`
    <header class="top">
      <span class="brand">Qe-Packets</span>
      <nav>${nav.map(([p, label]) => html`<a href=${`#/${p}`} class=${p === page ? 'active' : ''} aria-current=${p === page ? 'page' : undefined}>${label}</a>`)}</nav>
      <span class="who">
        ${state && html`<span class=${`badge ${state}`} data-testid="health-badge">${state}</span>`}
        <span title=${`role: ${who.role}`}>${who.name}</span>
        <button type="button" class="link" onClick=${onLogout}>Log out</button>
      </span>
    </header>
    <main class="page">
      ${status.error && html`<p class="error" role="alert">Status: ${status.error}</p>`}
      ${refused && html`<p class="error" role="alert" data-testid="forbidden">Extraction needs a token of role analyst or admin: ${who.name} has role ${who.role}. Ask for an analyst token (qe-packets token create NAME --role analyst).</p>`}
      ${page === 'overview' && html`<${Overview} status=${status.data} />`}
      ${page === 'traffic' && html`<${Traffic} status=${status.data} analyst=${analyst} />`}
      ${page === 'extraction' && html`<${Extraction} key=${route.params.toString()} params=${route.params} />`}
      ${page === 'elements' && html`<${Elements} />`}
    </main>
  `;
}
