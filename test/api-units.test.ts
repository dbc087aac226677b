// The API's pieces with a clock of their own: the history's rates from cumulative counters (a helper
// restarted, the hour's end), and the failed-attempt bound per address (its window passing).
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { Authenticator, FAILURE_WINDOW_MS, MAX_FAILURES } from '../daemon/src/api/auth.js';
import { HISTORY_SPAN_MS, History } from '../daemon/src/api/history.js';
import { TokenStore, createToken } from '../daemon/src/api/tokens.js';
import { MAX_TICKETS, TICKET_TTL_MS, Tickets } from '../daemon/src/api/tickets.js';
import type { StatusReport } from '../daemon/src/health/figures.js';

function report(at: number, written: number, bytes: number, drops: number): StatusReport {
  const counters = { received: 0, written, written_bytes: bytes, filtered: 0, kernel_drops: drops, if_drops: 0, writer_drops: 0, write_errors: 0, store_full_drops: 0, cpu_us: 0 };
  return {
    state: 'ok',
    reasons: [],
    figures: {
      at,
      version: 't',
      startedAt: 0,
      interfaces: [{ name: 'eth1', up: true, restarts: 0, counters, filesWritten: 0, window: { seconds: 60, packetsPerSecond: 0, bitsPerSecond: 0, offered: 0, dropped: 0, storeFullDrops: 0, writeErrors: 0 } } as never],
      store: { mode: 'circular', paths: [], capacityBytes: 1000, usedBytes: at / 1000, freeBytes: 0, full: false, filesDeleted: 0, bytesDeleted: 0 },
    },
  } as StatusReport;
}

describe('history', () => {
  it('rates since the sample before, a restarted helper counted from zero, one hour kept', () => {
    let r = report(0, 0, 0, 0);
    const h = new History(() => r);
    h.sample(); // the baseline
    expect(h.snapshot().samples).toEqual([]);
    r = report(10_000, 50_000, 50_000_000, 10);
    h.sample();
    expect(h.snapshot().samples[0]).toEqual({ t: 10_000, interfaces: [{ name: 'eth1', packets_per_s: 5000, bits_per_s: 40e6, drops_per_s: 1 }], store: { used_bytes: 10, capacity_bytes: 1000 } });
    // The helper restarted: its counters began again at zero.
    r = report(20_000, 1000, 1_000_000, 0);
    h.sample();
    expect(h.snapshot().samples[1]!.interfaces[0]).toEqual({ name: 'eth1', packets_per_s: 100, bits_per_s: 800_000, drops_per_s: 0 });
    for (let t = 30_000; t <= HISTORY_SPAN_MS + 20_000; t += 10_000) {
      r = report(t, 1000 + t, 1_000_000 + t, 0);
      h.sample();
    }
    const s = h.snapshot().samples;
    expect(s.length).toBe(HISTORY_SPAN_MS / 10_000);
    expect(s[0]!.t).toBe(30_000);
  });
});

describe('failed attempts per address', () => {
  it(`${MAX_FAILURES} failures in ${FAILURE_WINDOW_MS / 1000} s block the address until the window has passed; a valid token is still checked afterwards`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qe-auth-'));
    const path = join(dir, 'tokens.json');
    const { token } = await createToken(path, 'ops', 'viewer');
    let now = 1_000_000;
    const auth = new Authenticator(new TokenStore(path), () => now);
    const req = (t?: string) => ({ headers: t ? { authorization: `Bearer ${t}` } : {} }) as IncomingMessage;
    for (let i = 0; i < MAX_FAILURES; i++) {
      expect((await auth.check(req('qep_' + 'x'.repeat(43)), '192.0.2.9', 'viewer')).ok).toBe(false);
      now += 1000;
    }
    expect(await auth.check(req(token), '192.0.2.9', 'viewer')).toMatchObject({ ok: false, status: 429, retryAfterS: 50 });
    expect(await auth.check(req(token), '192.0.2.10', 'viewer')).toMatchObject({ ok: true });
    now += 50_000;
    expect(await auth.check(req(token), '192.0.2.9', 'viewer')).toMatchObject({ ok: true, token: { name: 'ops', role: 'viewer' } });
    expect(await auth.check(req(token), '192.0.2.9', 'analyst')).toMatchObject({ ok: false, status: 403 });
  });
});

describe('download tickets', () => {
  it('grant one extraction once, within their minute, kept only as hashes; a bounded number outstanding', () => {
    let now = 1_000_000;
    const tickets = new Tickets<string>(() => now);
    const who = { name: 'alice', role: 'analyst' };
    const a = tickets.issue(who, 'range A')!;
    expect(a.ticket).toMatch(/^qet_[A-Za-z0-9_-]{43}$/);
    expect(a.expiresMs).toBe(now + TICKET_TTL_MS);
    // Nothing the store holds is the ticket itself.
    expect(JSON.stringify([...(tickets as unknown as { byHash: Map<string, unknown> }).byHash])).not.toContain(a.ticket.slice(4));
    expect(tickets.redeem(a.ticket)).toEqual({ token: who, what: 'range A', expiresMs: a.expiresMs });
    expect(tickets.redeem(a.ticket)).toBeUndefined();

    const late = tickets.issue(who, 'range B')!;
    now += TICKET_TTL_MS;
    expect(tickets.redeem(late.ticket)).toBeUndefined();
    expect(tickets.redeem('qet_x')).toBeUndefined();

    const many = Array.from({ length: MAX_TICKETS }, (_, i) => tickets.issue(who, `r${i}`));
    expect(many.every(Boolean)).toBe(true);
    expect(tickets.issue(who, 'one more')).toBeUndefined();
    // Used or expired ones make room.
    expect(tickets.redeem(many[0]!.ticket)?.what).toBe('r0');
    expect(tickets.issue(who, 'one more')).toBeDefined();
    now += TICKET_TTL_MS;
    expect(tickets.outstanding).toBe(0);

    // Given back (its download found no free slot): good again until its own expiry, not longer.
    const back = tickets.issue(who, 'range C')!;
    const grant = tickets.redeem(back.ticket)!;
    tickets.giveBack(back.ticket, grant);
    expect(tickets.redeem(back.ticket)?.what).toBe('range C');
    tickets.giveBack(back.ticket, grant);
    now += TICKET_TTL_MS;
    expect(tickets.redeem(back.ticket)).toBeUndefined();
    tickets.giveBack(back.ticket, grant);
    expect(tickets.outstanding).toBe(0);
  });
});
