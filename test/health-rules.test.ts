// The decisions behind the health state and the watchdog, on figures built by hand: the cases a
// live test cannot stage on demand (a link that receives while capture takes nothing, a store
// at capacity with a short retention).
import { describe, expect, it } from 'vitest';
import { zeroCounters, type Counters } from '../daemon/src/capture/supervisor.js';
import { parseConfigText } from '../daemon/src/config/load.js';
import { evaluateHealth } from '../daemon/src/health/evaluate.js';
import type { Figures, InterfaceFigures } from '../daemon/src/health/figures.js';
import { WatchdogGate } from '../daemon/src/systemd/watchdog-gate.js';

const T0 = 1_800_000_000_000;

function iface(name: string, o: Partial<InterfaceFigures> = {}, counters: Partial<Counters> = {}): InterfaceFigures {
  return {
    name,
    up: true,
    restarts: 0,
    counters: { ...zeroCounters(), ...counters },
    filesWritten: 0,
    lastStatsAt: T0,
    window: { seconds: 60, packetsPerSecond: 0, bitsPerSecond: 0, offered: 0, dropped: 0, storeFullDrops: 0, writeErrors: 0 },
    ...o,
  };
}

function figures(interfaces: InterfaceFigures[], at = T0, store: Partial<Figures['store']> = {}): Figures {
  return {
    at,
    version: '0.0.0',
    startedAt: T0 - 600_000,
    interfaces,
    store: { mode: 'circular', paths: ['/s'], capacityBytes: 1000, usedBytes: 100, freeBytes: 5000, full: false, filesDeleted: 0, bytesDeleted: 0, ...store },
  };
}

const health = (yaml = '') => parseConfigText(yaml, 'test').health;

describe('health state', () => {
  it('is ok on quiet, healthy figures', () => {
    expect(evaluateHealth(figures([iface('eth1')]), health())).toEqual({ state: 'ok', reasons: [] });
  });

  it('grades the share of drops against drops_warning and drops_critical', () => {
    const h = health('health: {drops_warning: 0.1%, drops_critical: 5%}');
    const at = (dropped: number) => evaluateHealth(figures([iface('eth1', { window: { ...iface('x').window, offered: 100_000, dropped } })]), h);
    expect(at(100).state).toBe('ok'); // exactly 0.1% is not above it
    expect(at(101).state).toBe('warning');
    expect(at(101).reasons[0]).toMatchObject({ code: 'drops', interface: 'eth1' });
    expect(at(5001).state).toBe('critical');
  });

  it('is critical for a down interface, write errors and store_full drops, naming the interface', () => {
    const r = evaluateHealth(
      figures([iface('eth1', { up: false, lastError: 'no such device' }), iface('eth2', { window: { ...iface('x').window, writeErrors: 3 } })]),
      health(),
    );
    expect(r.state).toBe('critical');
    expect(r.reasons.map((x) => [x.code, x.interface])).toEqual([['capture_down', 'eth1'], ['write_errors', 'eth2']]);
    expect(r.reasons[0]!.message).toContain('no such device');
  });

  it('warns when a linear store passes store_full_warning and is critical when full', () => {
    const h = health('health: {store_full_warning: 90%}');
    expect(evaluateHealth(figures([], T0, { mode: 'linear', usedBytes: 900 }), h).state).toBe('ok');
    expect(evaluateHealth(figures([], T0, { mode: 'linear', usedBytes: 901 }), h).reasons[0]!.code).toBe('store_nearly_full');
    expect(evaluateHealth(figures([], T0, { mode: 'linear', usedBytes: 1000, full: true }), h)).toMatchObject({ state: 'critical', reasons: [{ code: 'store_full' }] });
    // Circular stores are meant to be full.
    expect(evaluateHealth(figures([], T0, { mode: 'circular', usedBytes: 1000 }), h).state).toBe('ok');
  });

  it('warns on retention below its target only once circular retention deletes files', () => {
    const h = health('health: {retention_target: 7d}');
    const young = { retentionSeconds: 3 * 86400, oldestNs: 1n };
    expect(evaluateHealth(figures([], T0, young), h).state).toBe('ok'); // still filling: uptime bounds retention
    const r = evaluateHealth(figures([], T0, { ...young, filesDeleted: 5 }), h);
    expect(r).toMatchObject({ state: 'warning', reasons: [{ code: 'retention' }] });
    expect(r.reasons[0]!.message).toBe('retention 3d is below the target of 7d');
    expect(evaluateHealth(figures([], T0, { retentionSeconds: 8 * 86400, oldestNs: 1n, filesDeleted: 5 }), h).state).toBe('ok');
  });

  it('rejects thresholds that make no sense, naming the key', () => {
    expect(() => health('health: {drops_warning: 2%, drops_critical: 1%}')).toThrow(/health\.drops_critical.*below health\.drops_warning/s);
    expect(() => health('health: {drops_warning: 5}')).toThrow(/health\.drops_warning.*percentage/s);
    expect(() => health('health: {window: 1s}')).toThrow(/health\.window.*below 5s/s);
  });
});

describe('watchdog gate', () => {
  const rxOf = (values: Record<string, number>) => (name: string) => values[name];

  it('pings while the helper reports and its counters advance, or while the link is idle', () => {
    const rx = { eth1: 100 };
    const g = new WatchdogGate(5000, 60_000, rxOf(rx));
    for (let s = 0; s <= 20; s++) {
      // Idle link: neither the kernel's nor the helper's counters move.
      expect(g.check(figures([iface('eth1', { lastStatsAt: T0 + s * 1000 }, { received: 7 })], T0 + s * 1000)).alive).toBe(true);
    }
    for (let s = 21; s <= 40; s++) {
      rx.eth1 += 1000;
      expect(g.check(figures([iface('eth1', { lastStatsAt: T0 + s * 1000 }, { received: 7 + s * 1000 })], T0 + s * 1000)).alive).toBe(true);
    }
  });

  it('stops when the helper stops reporting', () => {
    const g = new WatchdogGate(5000, 60_000, () => undefined);
    expect(g.check(figures([iface('eth1', { lastStatsAt: T0 })], T0 + 5000)).alive).toBe(true);
    const v = g.check(figures([iface('eth1', { lastStatsAt: T0 })], T0 + 6000));
    expect(v).toEqual({ alive: false, why: 'eth1: no report from its capture helper for 6s' });
  });

  it('stops when the link receives but the helper takes nothing, unless a kernel BPF filter may be why', () => {
    const rx = { eth1: 0 };
    const g = new WatchdogGate(5000, 60_000, rxOf(rx));
    const f = (s: number) => figures([iface('eth1', { lastStatsAt: T0 + s * 1000 }, { received: 50 })], T0 + s * 1000);
    const verdicts: boolean[] = [];
    for (let s = 0; s <= 8; s++) {
      rx.eth1 += 1000;
      verdicts.push(g.check(f(s)).alive);
    }
    expect(verdicts.slice(0, 6).every(Boolean)).toBe(true);
    expect(verdicts.at(-1)).toBe(false);
    rx.eth1 += 1000;
    expect(g.check(f(9)).why).toMatch(/^eth1: the link receives packets but capture has not advanced for \d+s$/);
    const filtered = new WatchdogGate(5000, 60_000, rxOf(rx));
    for (let s = 0; s <= 8; s++) {
      rx.eth1 += 1000;
      expect(filtered.check(f(s), true).alive).toBe(true);
    }
  });

  it('keeps pinging while one interface of several is down, stops when none has captured for a minute', () => {
    const g = new WatchdogGate(5000, 60_000, () => undefined);
    const down = (since: number) => iface('eth2', { up: false, downSince: since });
    expect(g.check(figures([iface('eth1', { lastStatsAt: T0 + 120_000 }), down(T0)], T0 + 120_000)).alive).toBe(true);
    expect(g.check(figures([down(T0)], T0 + 59_000)).alive).toBe(true);
    expect(g.check(figures([down(T0)], T0 + 61_000))).toEqual({ alive: false, why: 'no interface has captured for 61s' });
  });
});
