// The state engine driven by the helper's `elements` messages on a clock of the test's own: each
// indicator's value from counter differences over the window, summed over interfaces, a new
// generation counting from zero, levels with their reasons, previous and since, the unknown rule,
// silence, and a reload that keeps states by id while the old generation's lines are left out.
import { describe, expect, it, vi } from 'vitest';
import type { ElementsMessage } from '../daemon/src/capture/protocol.js';
import { parseHelperLine } from '../daemon/src/capture/protocol.js';
import { parseConfigText } from '../daemon/src/config/load.js';
import { ElementEngine } from '../daemon/src/elements/engine.js';
import type { ElementState } from '../daemon/src/elements/types.js';

type Counters = ElementsMessage['elements'][number];
const T0 = Date.parse('2026-12-06T12:00:00Z');

const counters = (c: Partial<Counters> = {}): Counters => ({
  packets: 0,
  bytes: 0,
  last_ns: 0n,
  tcp_attempts: 0,
  tcp_answered: 0,
  tcp_unanswered: 0,
  tcp_reset: 0,
  rtt_hist: [],
  dns_answers: 0,
  dns_errors: 0,
  http_responses: 0,
  http_errors: 0,
  custom: [],
  ...c,
});

/** A message as the helper prints it, read back through the protocol's strict parser. */
const line = (iface: string, generation: number, elements: Counters[]): ElementsMessage =>
  parseHelperLine(JSON.stringify({ type: 'elements', iface, generation, elements }, (_, v) => (typeof v === 'bigint' ? v.toString() : v))) as ElementsMessage;

const ns = (ms: number) => BigInt(ms) * 1_000_000n;

function rig(yaml: string) {
  let now = T0;
  const config = parseConfigText(yaml, 'c.yaml');
  const engine = new ElementEngine(config.elements, { now: () => now });
  const changes: ElementState[] = [];
  engine.onChange((s) => changes.push(s));
  return {
    engine,
    changes,
    config,
    at: (ms: number) => (now = T0 + ms),
    get now() {
      return now;
    },
    state: (id: string) => engine.current().find((s) => s.element === id)!,
  };
}

const WEB = `
elements:
  - id: crm-web
    name: CRM front end
    filter: "tcp port 443"
    window: 10s
    indicators:
      tcp_resets: {warning: 1%, critical: 5%}
      tcp_unanswered_syns: {warning: 1%, critical: 10%}
`;

describe('element state engine', () => {
  it('is unknown before any packet (no silence rule), ok once traffic shows nothing wrong', () => {
    const r = rig(WEB);
    expect(r.state('crm-web')).toEqual({
      element: 'crm-web',
      name: 'CRM front end',
      state: 'unknown',
      previous: null,
      since: new Date(T0).toISOString(),
      reasons: [],
      figures: { tcp_resets: null, tcp_unanswered_syns: null },
      window_seconds: 10,
    });
    r.at(1000);
    r.engine.ingest(line('eth1', 1, [counters({ packets: 40, tcp_attempts: 10, tcp_answered: 10, last_ns: ns(r.now) })]));
    expect(r.state('crm-web')).toMatchObject({ state: 'ok', previous: 'unknown', since: new Date(T0 + 1000).toISOString(), reasons: [], figures: { tcp_resets: 0, tcp_unanswered_syns: 0 } });
    expect(r.changes.map((c) => c.state)).toEqual(['ok']);
  });

  it('takes shares over the window from cumulative counters: warning, critical with its reasons, back to ok when the window has passed', () => {
    const r = rig(WEB);
    // 100 connections, 3 reset: 3% → warning (1%), below critical (5%).
    for (let s = 1; s <= 5; s++) {
      r.at(s * 1000);
      r.engine.ingest(line('eth1', 1, [counters({ packets: s * 100, tcp_attempts: s * 20, tcp_answered: s * 20, tcp_reset: s === 5 ? 3 : 0, last_ns: ns(r.now) })]));
    }
    expect(r.state('crm-web')).toMatchObject({
      state: 'warning',
      previous: 'ok',
      since: new Date(T0 + 5000).toISOString(),
      reasons: [{ indicator: 'tcp_resets', value: 3, threshold: 1, level: 'warning', unit: '%' }],
      figures: { tcp_resets: 3, tcp_unanswered_syns: 0 },
    });
    // 20 more attempts, 10 of them unanswered and 4 more reset: 7/120 reset (critical), 10/120 unanswered (warning).
    r.at(6000);
    r.engine.ingest(line('eth1', 1, [counters({ packets: 700, tcp_attempts: 120, tcp_answered: 106, tcp_unanswered: 10, tcp_reset: 7, last_ns: ns(r.now) })]));
    const s = r.state('crm-web');
    expect(s).toMatchObject({ state: 'critical', previous: 'warning', since: new Date(T0 + 6000).toISOString() });
    expect(s.reasons).toEqual([
      { indicator: 'tcp_resets', value: 5.833, threshold: 5, level: 'critical', unit: '%' },
      { indicator: 'tcp_unanswered_syns', value: 8.333, threshold: 1, level: 'warning', unit: '%' },
    ]);
    // Quiet healthy traffic: after the 10 s window the resets have left it.
    for (let t = 7; t <= 17; t++) {
      r.at(t * 1000);
      r.engine.ingest(line('eth1', 1, [counters({ packets: 700 + t, tcp_attempts: 120 + t, tcp_answered: 106 + t, tcp_unanswered: 10, tcp_reset: 7, last_ns: ns(r.now) })]));
      if (t < 16) expect(r.state('crm-web').state, `at ${t}s`).toBe('critical');
    }
    expect(r.state('crm-web')).toMatchObject({ state: 'ok', previous: 'critical', reasons: [], figures: { tcp_resets: 0, tcp_unanswered_syns: 0 } });
    expect(r.changes.map((c) => `${c.previous}→${c.state}`)).toEqual(['unknown→ok', 'ok→warning', 'warning→critical', 'critical→ok']);
  });

  it('sums interfaces; a new generation or a restarted helper counts from zero, never negative', () => {
    const r = rig(WEB);
    r.at(1000);
    r.engine.ingest(line('eth1', 3, [counters({ packets: 1000, tcp_attempts: 500, tcp_answered: 500, last_ns: ns(r.now) })]));
    r.engine.ingest(line('eth2', 7, [counters({ packets: 10, tcp_attempts: 50, tcp_reset: 50, last_ns: ns(r.now) })]));
    // Both since their generation began: 50 of 550.
    expect(r.state('crm-web').figures.tcp_resets).toBe(9.091);
    r.at(2000);
    // eth2's helper restarted: generation 0, small counters again.
    r.engine.helperExited('eth2');
    r.engine.ingest(line('eth2', 0, [counters({ packets: 2, tcp_attempts: 2, tcp_answered: 2, last_ns: ns(r.now) })]));
    r.engine.ingest(line('eth1', 3, [counters({ packets: 1000, tcp_attempts: 500, tcp_answered: 500, last_ns: ns(r.now) })]));
    // The old eth2 generation is forgotten: 0 reset of 502.
    expect(r.state('crm-web').figures).toEqual({ tcp_resets: 0, tcp_unanswered_syns: 0 });
    // Past the 10 s window, eth1's helper re-reads its elements: generation 4 counts from zero, so
    // its window is its 8 attempts (2 reset) whatever generation 3 had reached.
    for (let t = 3; t <= 13; t++) {
      r.at(t * 1000);
      r.engine.ingest(line('eth1', 3, [counters({ packets: 1000 + t, tcp_attempts: 500 + t, tcp_answered: 500 + t, last_ns: ns(r.now) })]));
    }
    r.at(14_000);
    r.engine.helperExited('eth2');
    r.engine.ingest(line('eth1', 4, [counters({ packets: 5, tcp_attempts: 8, tcp_answered: 6, tcp_reset: 2, last_ns: ns(r.now) })]));
    expect(r.state('crm-web').figures).toEqual({ tcp_resets: 25, tcp_unanswered_syns: 0 });
  });

  it('measures rtt percentile, dns and http error shares, custom share; silence rises without messages', () => {
    const r = rig(`
elements:
  - id: svc
    filter: "host 10.0.0.1"
    window: 5s
    indicators:
      tcp_handshake_rtt: {warning: 50ms, critical: 200ms}
      dns_errors: {warning: 5%, critical: 20%}
      http_errors: {warning: 5%, critical: 20%}
      silence: {warning: 10s, critical: 60s}
      custom_share: {filter: "icmp", warning: 1%, critical: 5%}
`);
    // Silence rule: ok from the start, not unknown.
    expect(r.state('svc').state).toBe('ok');
    // 20 handshakes at ~1 ms (bucket floor(4*log2(1000)) = 39), 2 at ~300 ms (bucket 72): the 95th is 300 ms.
    r.at(1000);
    r.engine.ingest(line('eth1', 1, [counters({ packets: 200, rtt_hist: [[39, 20], [72, 2]], dns_answers: 10, dns_errors: 1, http_responses: 4, http_errors: 1, custom: [1], last_ns: ns(r.now) })]));
    const s = r.state('svc');
    expect(s.figures.tcp_handshake_rtt).toBeGreaterThan(256);
    expect(s.figures.tcp_handshake_rtt).toBeLessThan(330);
    expect(s.figures).toMatchObject({ dns_errors: 10, http_errors: 25, silence: 0, custom_share: 0.5 });
    expect(s.reasons.map((x) => `${x.level} ${x.indicator}`)).toEqual(['critical tcp_handshake_rtt', 'critical http_errors', 'warning dns_errors']);
    expect(s.state).toBe('critical');
    // Nothing more from the helper: silence grows once a second on the engine's own tick.
    r.at(1000 + 12_000);
    r.engine.evaluate();
    expect(r.state('svc').figures.silence).toBe(12);
    expect(r.state('svc').reasons.find((x) => x.indicator === 'silence')).toEqual({ indicator: 'silence', value: 12, threshold: 10, level: 'warning', unit: 's' });
    r.at(1000 + 61_000);
    r.engine.evaluate();
    expect(r.state('svc')).toMatchObject({ state: 'critical', reasons: [{ indicator: 'silence', value: 61, threshold: 60, level: 'critical' }] });
  });

  it('judges on each message, and on its own tick only a second after the last judgement', () => {
    // The daemon shares a core with its helpers: a tick between two messages would judge twice a second for nothing.
    vi.useFakeTimers();
    try {
      const r = rig(WEB);
      const judged = vi.spyOn(r.engine, 'evaluate');
      r.engine.start();
      const message = () => r.engine.ingest(line('eth1', 1, [counters({ packets: 10, last_ns: ns(r.now) })]));
      vi.advanceTimersByTime(900);
      message();
      expect(judged).toHaveBeenCalledTimes(1);
      vi.advanceTimersByTime(900); // 1.8 s from the start: the tick it would have had at 1 s was moved
      expect(judged).toHaveBeenCalledTimes(1);
      message();
      expect(judged).toHaveBeenCalledTimes(2);
      vi.advanceTimersByTime(999);
      expect(judged).toHaveBeenCalledTimes(2);
      vi.advanceTimersByTime(1); // no message for a second: the tick judges (silence grows)
      expect(judged).toHaveBeenCalledTimes(3);
      vi.advanceTimersByTime(1000);
      expect(judged).toHaveBeenCalledTimes(4);
      r.engine.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('silence counts from the start for an element never seen', () => {
    const r = rig(`elements:\n  - {id: quiet, filter: "host 10.9.9.9", window: 5s, indicators: {silence: {critical: 30s}}}\n`);
    r.at(29_000);
    r.engine.evaluate();
    expect(r.state('quiet')).toMatchObject({ state: 'ok', figures: { silence: 29 } });
    r.at(30_000);
    r.engine.evaluate();
    expect(r.state('quiet')).toMatchObject({ state: 'critical', previous: 'ok', reasons: [{ indicator: 'silence', value: 30, threshold: 30, level: 'critical', unit: 's' }] });
  });

  it('a reload keeps states by id, drops removed elements, and leaves out lines of the generation before it', () => {
    const r = rig(WEB);
    r.at(1000);
    r.engine.ingest(line('eth1', 1, [counters({ packets: 100, tcp_attempts: 10, tcp_reset: 10, last_ns: ns(r.now) })]));
    expect(r.state('crm-web').state).toBe('critical');
    const next = parseConfigText(`${WEB}  - {id: dns, filter: "udp port 53", window: 5s, indicators: {dns_errors: {critical: 50%}}}\n`, 'c.yaml');
    r.at(2000);
    r.engine.reconfigure(next);
    expect(r.engine.current().map((s) => s.element)).toEqual(['crm-web', 'dns']);
    // The state stays (by id) until the new counters say otherwise; the new element starts unknown.
    expect(r.state('crm-web')).toMatchObject({ state: 'critical', previous: 'unknown', figures: { tcp_resets: 100 } });
    expect(r.state('dns')).toMatchObject({ state: 'unknown', previous: null });
    // A line of generation 1 still in flight: one element, not two — left out.
    r.engine.ingest(line('eth1', 1, [counters({ packets: 200, tcp_attempts: 20, tcp_reset: 20 })]));
    // Generation 1 with two elements would be as wrong: the helper has not re-read the file yet.
    r.engine.ingest(line('eth1', 1, [counters({ tcp_attempts: 5, tcp_reset: 5 }), counters()]));
    // Held as it was until the new generation reports (not judged on an empty window: no flap to ok).
    r.engine.evaluate();
    expect(r.state('crm-web')).toMatchObject({ state: 'critical', figures: { tcp_resets: 100 } });
    r.at(3000);
    r.engine.ingest(line('eth1', 2, [counters({ packets: 10, tcp_attempts: 10, tcp_answered: 10, last_ns: ns(r.now) }), counters({ packets: 4, dns_answers: 4, dns_errors: 3, last_ns: ns(r.now) })]));
    expect(r.state('crm-web')).toMatchObject({ state: 'ok', previous: 'critical', figures: { tcp_resets: 0 } });
    expect(r.state('dns')).toMatchObject({ state: 'critical', previous: 'unknown', figures: { dns_errors: 75 } });
    r.engine.reconfigure(parseConfigText(`elements:\n  - {id: dns, filter: "udp port 53", window: 5s, indicators: {dns_errors: {critical: 50%}}}\n`, 'c.yaml'));
    expect(r.engine.current().map((s) => s.element)).toEqual(['dns']);
  });
});
