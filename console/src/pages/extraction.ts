// A time range and a filter, checked as they are typed (the daemon's `explain`: its plan and how
// much it will read), a download the browser saves as it comes (a single-use link), and the recent
// extractions of the audit log, where a download's outcome shows.
import { useEffect, useState } from 'preact/hooks';
import type { AuditResponse, ExplainResponse } from '../../../daemon/src/api/types.js';
import { ApiFailure, api, startDownload } from '../api.js';
import { Time, bytes, isoUtc, num } from '../format.js';
import { html } from '../html.js';
import { usePoll } from '../poll.js';

interface Form {
  from: string;
  to: string;
  filter: string;
  iface: string;
}

export function Extraction({ params }: { params: URLSearchParams }) {
  const [form, setForm] = useState<Form>(() => ({
    from: params.get('from') ?? isoUtc(Math.floor(Date.now() / 60000) * 60000 - 15 * 60000),
    to: params.get('to') ?? 'now',
    filter: params.get('filter') ?? '',
    iface: params.get('iface') ?? '',
  }));
  const [plan, setPlan] = useState<{ ok?: ExplainResponse; error?: string; checking: boolean }>({ checking: true });
  const [got, setGot] = useState<{ started?: boolean; error?: string } | null>(null);
  const [auditTick, setAuditTick] = useState(0);
  const audit = usePoll((signal) => api<AuditResponse>('/audit', { limit: 20 }, signal), 30_000, [auditTick]);

  // Checked as typed: a short pause after the last key, the previous check abandoned.
  useEffect(() => {
    const abort = new AbortController();
    setPlan((p) => ({ ...p, checking: true }));
    const timer = setTimeout(() => {
      api<ExplainResponse>('/explain', { ...form }, abort.signal).then(
        (ok) => setPlan({ ok, checking: false }),
        (e: unknown) => {
          if (!abort.signal.aborted) setPlan({ error: e instanceof Error ? e.message : String(e), checking: false });
        },
      );
    }, 350);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
  }, [form.from, form.to, form.filter, form.iface]);

  const field = (key: keyof Form, label: string, hint: string) => html`
    <label>
      <span>${label}</span>
      <input name=${key} value=${form[key]} spellcheck=${false} autocomplete="off" onInput=${(e: Event) => setForm({ ...form, [key]: (e.target as HTMLInputElement).value })} />
      <small class="muted">${hint}</small>
    </label>`;

  const start = async () => {
    setGot({});
    try {
      await startDownload({ ...form });
      setGot({ started: true });
    } catch (e) {
      setGot({ error: e instanceof ApiFailure || e instanceof Error ? e.message : String(e) });
    }
    // The audit log says when the download has ended, and how.
    setAuditTick((t) => t + 1);
    for (const ms of [2000, 10_000]) setTimeout(() => setAuditTick((t) => t + 1), ms);
  };

  const ok = plan.ok;
  return html`
    <section>
      <h2>Extract packets</h2>
      <form class="extract" onSubmit=${(e: Event) => (e.preventDefault(), ok && !plan.checking && void start())}>
        ${field('from', 'From', 'UTC: 2026-12-06T10:00:00Z, or 15m ago')}
        ${field('to', 'To', 'UTC, or now')}
        ${field('filter', 'Filter', 'libpcap: host 10.0.0.1 and tcp port 443')}
        ${field('iface', 'Interfaces', 'comma-separated; empty: all')}
        <div class="plan" data-testid="plan" aria-live="polite">
          ${plan.error && html`<p class="error" data-testid="plan-error">${plan.error}</p>`}
          ${ok &&
          !plan.error &&
          html`<dl class="figures">
            <dt>Range</dt><dd><${Time} t=${ok.from} /> – <${Time} t=${ok.to} /></dd>
            <dt>Plan</dt><dd><code>${ok.plan ?? (ok.filter ? 'filter on every packet' : 'every packet of the range')}</code></dd>
            <dt>Files</dt><dd>${num(ok.files)}, ${num(ok.files_read_through_index)} read through their index</dd>
            <dt>To read</dt><dd data-testid="estimate">${bytes(ok.bytes_to_read)} (${num(ok.records_to_read)} packets at most) of ${bytes(ok.bytes_full_scan)}, about ${ok.estimated_s < 1 ? '< 1' : num(ok.estimated_s)} s</dd>
          </dl>`}
          ${plan.checking && html`<p class="muted">Checking…</p>`}
        </div>
        <button type="submit" disabled=${!ok || plan.checking || Boolean(plan.error) || (got !== null && !got.started && !got.error)}>Download pcap</button>
        ${got && html`<p data-testid="download-state" class=${got.error ? 'error' : ''}>${got.error ?? (got.started ? 'Download started: your browser saves the pcap as it comes (see its downloads); its outcome shows below.' : 'Asking for a download link…')}</p>`}
      </form>
    </section>
    <section>
      <h2>Recent extractions</h2>
      ${audit.error && html`<p class="error">${audit.error}</p>`}
      <div class="scroll">
        <table data-testid="audit">
          <thead><tr><th>Time</th><th>Who</th><th>What</th><th>Range</th><th>Filter</th><th class="n">Packets</th><th class="n">Bytes</th><th>Outcome</th></tr></thead>
          <tbody>
            ${audit.data?.entries.length === 0 && html`<tr><td colspan="8" class="muted">None yet.</td></tr>`}
            ${audit.data?.entries.map(
              (a) => html`<tr>
                <td><${Time} t=${a.time} /></td>
                <td title=${`${a.role} from ${a.address}`}>${a.token}</td>
                <td>${a.action}</td>
                <td><${Time} t=${a.query.from} /> – <${Time} t=${a.query.to} /></td>
                <td><code>${a.query.filter ?? ''}</code></td>
                <td class="n">${num(a.packets)}</td>
                <td class="n">${bytes(a.bytes)}</td>
                <td class=${a.outcome === 'complete' ? '' : 'warning'} title=${a.error ?? ''}>${a.outcome}</td>
              </tr>`,
            )}
          </tbody>
        </table>
      </div>
    </section>
  `;
}
