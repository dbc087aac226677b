// Login with a token made by `qe-packets token create`. The certificate fingerprint is shown so it
// can be compared with the one `qe-packets status` prints on the appliance before a token is typed.
import { useEffect, useState } from 'preact/hooks';
import type { InfoResponse, WhoamiResponse } from '../../../daemon/src/api/types.js';
import { api, session, tryToken } from '../api.js';
import { html } from '../html.js';

export function Login({ onLogin }: { onLogin: (who: WhoamiResponse) => void }) {
  const [info, setInfo] = useState<InfoResponse | null>(null);
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<InfoResponse>('/info').then(setInfo, () => setInfo(null));
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const who = await tryToken<WhoamiResponse>('/whoami', token.trim());
      session.set(token.trim());
      onLogin(who);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return html`
    <main class="login">
      <h1>Qe-Packets</h1>
      <form onSubmit=${submit}>
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" required value=${token} onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)} />
        <button type="submit" disabled=${busy || !token.trim()}>Log in</button>
        ${error && html`<p class="error" role="alert" data-testid="login-error">${error}</p>`}
        <p class="hint">Make one on the appliance: <code>qe-packets token create NAME --role viewer</code>. It is kept for this browser tab's session only.</p>
      </form>
      ${info &&
      html`<dl class="info">
        <dt>Version</dt>
        <dd>${info.version}</dd>
        <dt>Certificate SHA-256</dt>
        <dd class="fingerprint" data-testid="fingerprint">${info.tls_fingerprint ?? 'none (plain HTTP on loopback)'}</dd>
      </dl>
      ${info.tls_fingerprint && html`<p class="hint">Check it against <code>qe-packets status</code> on the appliance before typing a token.</p>`}`}
    </main>
  `;
}
