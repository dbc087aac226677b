// Qualevent end to end without the state engine: a hand-driven ElementStateSource, the reporter and
// its outbox, and a real HTTPS receiver (CA and certificate made here) that reads every POST with
// the CloudEvents SDK. Faults are real ones: the receiver's port closed and reopened, 429/503 with
// Retry-After, 400, a kill -9 of a reporting process.
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { evaluateHealth } from '../daemon/src/health/evaluate.js';
import type { Figures } from '../daemon/src/health/figures.js';
import { createMetrics } from '../daemon/src/metrics/registry.js';
import { BATCH_CONTENT_TYPE, EVENT_TYPE, stateEvent } from '../daemon/src/qualevent/events.js';
import { JOURNAL_FILE, eventFrame, frame, readJournal } from '../daemon/src/qualevent/journal.js';
import { Outbox, PARKED_FILE } from '../daemon/src/qualevent/outbox.js';
import { parseRetryAfter } from '../daemon/src/qualevent/post.js';
import { QualeventReporter, backoffMs } from '../daemon/src/qualevent/reporter.js';
import { uuidv7 } from '../daemon/src/qualevent/uuid7.js';
import { root, sleep, tempDir } from './lib/cli.js';
import { HandSource } from './lib/element-source.js';
import { Receiver, makeCertificates } from './lib/qualevent-receiver.js';

const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const HOUR = 3600_000;
type Data = { element: string; state: string; previous: string | null; sequence: number; kind: string; reasons: unknown[]; figures: Record<string, unknown>; since: string; window_seconds: number; name?: string };

let certs: Awaited<ReturnType<typeof makeCertificates>>;
let ca: string;
const running: { stop(): Promise<void> }[] = [];
const receivers: Receiver[] = [];

beforeAll(async () => {
  certs = await makeCertificates(await tempDir('qe-qualevent-ca-'));
  ca = await readFile(certs.caFile, 'utf8');
});

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  for (const r of receivers.splice(0)) await r.close();
});

async function receiver(): Promise<Receiver> {
  const r = new Receiver(certs);
  await r.open();
  receivers.push(r);
  return r;
}

const logs: string[] = [];
const log = (level: string, text: string) => logs.push(`${level}: ${text}`);

async function reporter(url: string, source: HandSource, o: { dir?: string; snapshotMs?: number; outbox?: number; token?: string } = {}) {
  const dir = o.dir ?? (await tempDir('qe-qualevent-'));
  const r = new QualeventReporter(
    { url, applianceId: 'lab-01', snapshotIntervalMs: o.snapshotMs ?? HOUR, outboxSizeBytes: o.outbox ?? 100 * 1024 * 1024 },
    source,
    { dir, log, ca, ...(o.token ? { token: o.token } : {}) },
  );
  await r.start();
  running.push(r);
  return { r, dir };
}

async function until(what: string, test: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const data = (e: { data?: unknown }) => e.data as Data;
const changes = (rx: Receiver, element?: string) => rx.events().filter((e) => data(e).kind === 'change' && (!element || e.subject === element));

describe('events', () => {
  it('are CloudEvents 1.0 batches the SDK reads, with every field, a bearer token and contiguous change numbers', async () => {
    const rx = await receiver();
    const src = new HandSource(['crm-web', 'crm-db']);
    await reporter(rx.url, src, { token: 's3cret-token' });
    await until('the start snapshot', () => rx.events().length >= 2);
    const t0 = Date.now();
    src.set('crm-web', 'ok');
    src.set('crm-web', 'critical');
    src.set('crm-db', 'warning');
    src.set('crm-web', 'ok');
    await until('four changes', () => changes(rx).length === 4);
    // Delivery latency with the server up: well under the 2 s.
    expect(rx.batches.at(-1)!.at - t0).toBeLessThan(2000);

    for (const b of rx.batches) {
      expect(b.headers['content-type']).toBe(BATCH_CONTENT_TYPE);
      expect(b.headers.authorization).toBe('Bearer s3cret-token');
      expect(Array.isArray(JSON.parse(b.body))).toBe(true);
    }
    const snap = rx.events().slice(0, 2);
    expect(snap.map((e) => [e.subject, data(e).kind, data(e).sequence, data(e).state])).toEqual([
      ['crm-web', 'snapshot', 0, 'unknown'],
      ['crm-db', 'snapshot', 0, 'unknown'],
    ]);
    for (const e of rx.events()) {
      expect(e.specversion).toBe('1.0');
      expect(e.type).toBe(EVENT_TYPE);
      expect(e.source).toBe('qe-packets/lab-01');
      expect(e.id).toMatch(UUID7);
      expect(e.datacontenttype).toBe('application/json');
      expect(Math.abs(Date.parse(e.time!) - Date.now())).toBeLessThan(60_000);
      expect(Object.keys(data(e)).sort()).toEqual(['element', 'figures', 'kind', 'name', 'previous', 'reasons', 'sequence', 'since', 'state', 'window_seconds']);
    }
    expect(changes(rx, 'crm-web').map((e) => [data(e).sequence, data(e).previous, data(e).state])).toEqual([
      [1, 'unknown', 'ok'],
      [2, 'ok', 'critical'],
      [3, 'critical', 'ok'],
    ]);
    const crit = changes(rx, 'crm-web')[1]!;
    expect(data(crit)).toMatchObject({ element: 'crm-web', name: 'Element crm-web', window_seconds: 60, figures: { tcp_resets: 12.5 } });
    expect(data(crit).reasons).toEqual([{ indicator: 'tcp_resets', value: 12.5, threshold: 5, level: 'critical', unit: '%' }]);
    expect(changes(rx, 'crm-db').map((e) => data(e).sequence)).toEqual([1]);
  });

  it('sends a snapshot of every element each snapshot_interval, carrying the last change number', async () => {
    const rx = await receiver();
    const src = new HandSource(['a', 'b']);
    await reporter(rx.url, src, { snapshotMs: 1000 });
    src.set('a', 'warning');
    src.set('a', 'critical');
    await until('three snapshots of each', () => rx.events().filter((e) => data(e).kind === 'snapshot').length >= 6);
    const snaps = rx.events().filter((e) => data(e).kind === 'snapshot' && e.subject === 'a');
    expect(snaps.at(-1)!.data).toMatchObject({ state: 'critical', sequence: 2 });
    const times = snaps.map((e) => Date.parse(e.time!));
    expect(times.at(-1)! - times.at(-2)!).toBeGreaterThanOrEqual(900);
  });

  it('refuses a server whose certificate does not chain to ca_file, and says why', async () => {
    const rx = await receiver();
    const src = new HandSource(['a']);
    const r = new QualeventReporter({ url: rx.url, applianceId: 'x', snapshotIntervalMs: HOUR, outboxSizeBytes: 1 << 20 }, src, { dir: await tempDir(), log });
    await r.start();
    running.push(r);
    await until('a failure', () => r.figures().failingSince !== undefined);
    expect(r.figures().lastError).toMatch(/certificate/i);
    expect(rx.requests).toEqual([]);
  });

  it('ids are UUIDv7 that sort in the order they were made, within one millisecond too', () => {
    const ids = Array.from({ length: 5000 }, () => uuidv7(1_700_000_000_000));
    expect(new Set(ids).size).toBe(5000);
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids.slice(0, 10)) expect(id).toMatch(UUID7);
    expect(parseInt(uuidv7(1_700_000_000_001).replace(/-/g, '').slice(0, 12), 16)).toBeGreaterThanOrEqual(1_700_000_000_001);
  });
});

describe('faults', () => {
  it('receiver down for several seconds while states change, then back: every change arrives, in order, none twice', async () => {
    const rx = await receiver();
    const src = new HandSource(['e1', 'e2', 'e3']);
    const { r } = await reporter(rx.url, src, { snapshotMs: 1000 });
    await until('the first snapshot', () => rx.events().length >= 3);
    await rx.close();
    const levels = ['ok', 'warning', 'critical'] as const;
    for (let i = 0; i < 12; i++) {
      for (const id of ['e1', 'e2', 'e3']) src.set(id, levels[i % 3]!);
      await sleep(400);
    }
    expect(r.figures().failingSince).toBeDefined();
    expect(r.figures().outboxEvents).toBeGreaterThanOrEqual(36);
    const sentBefore = changes(rx).length;
    expect(sentBefore).toBe(0);
    await rx.open();
    await until('all 36 changes', () => changes(rx).length >= 36, 40_000);
    const ids = rx.events().map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ['e1', 'e2', 'e3']) {
      const c = changes(rx, id);
      expect(c.map((e) => data(e).sequence)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(c.map((e) => data(e).state)).toEqual(Array.from({ length: 12 }, (_, i) => levels[i % 3]));
      // Per element, everything (snapshots included) in the order it was made.
      const times = rx.events().filter((e) => e.subject === id).map((e) => e.id);
      expect([...times].sort()).toEqual(times);
    }
    await until('the delivery heard', () => r.figures().failingSince === undefined);
  }, 60_000);

  it('honours Retry-After on 429 and 503', async () => {
    const rx = await receiver();
    rx.answer = (_, n) => (n === 0 ? { status: 429, headers: { 'retry-after': '3' } } : n === 1 ? { status: 503, headers: { 'retry-after': '2' } } : { status: 200 });
    const src = new HandSource(['a']);
    const { r } = await reporter(rx.url, src);
    await until('a delivery', () => rx.batches.length === 1, 15_000);
    const [a, b, c] = rx.requests;
    expect([a!.status, b!.status, c!.status]).toEqual([429, 503, 200]);
    // The backoff alone would retry within 0.5–1 s, then 1–2 s.
    expect(b!.at - a!.at).toBeGreaterThanOrEqual(2900);
    expect(b!.at - a!.at).toBeLessThan(4500);
    expect(c!.at - b!.at).toBeGreaterThanOrEqual(1900);
    expect(c!.at - b!.at).toBeLessThan(3500);
    await until('the delivery counted', () => r.figures().sent === 1);
    expect(parseRetryAfter(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
    expect(parseRetryAfter('999999999')).toBe(HOUR);
  }, 30_000);

  it('parks what the server refuses (400) with a health warning, and delivers the rest in order', async () => {
    const rx = await receiver();
    rx.answer = (events) => (events.some((e) => e.subject === 'bad' && data(e).state === 'critical') ? { status: 400, body: '{"error":"unknown element bad"}' } : { status: 200 });
    const src = new HandSource(['good', 'bad']);
    const { r, dir } = await reporter(rx.url, src);
    await until('the snapshot', () => rx.events().length === 2);
    src.set('good', 'warning');
    src.set('bad', 'critical');
    src.set('good', 'ok');
    await until('both changes of good', () => changes(rx, 'good').length === 2);
    await until('the parked one', () => r.figures().parked === 1);
    await until('the deliveries heard', () => r.figures().sent === 4);
    expect(changes(rx, 'good').map((e) => data(e).sequence)).toEqual([1, 2]);
    expect(changes(rx, 'bad')).toEqual([]);
    const parked = (await readFile(join(dir, PARKED_FILE), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { status: number; response: string; event: { subject: string; data: Data } });
    expect(parked).toHaveLength(1);
    expect(parked[0]).toMatchObject({ status: 400, response: expect.stringContaining('unknown element bad'), event: { subject: 'bad', data: { state: 'critical', sequence: 1 } } });
    // Not retried forever: the refused event was tried once alone, and nothing is left.
    expect(r.figures().outboxEvents).toBe(0);
    expect(rx.requests.filter((q) => q.status === 400).length).toBeLessThanOrEqual(2);
    const figures = { at: Date.now(), version: 't', startedAt: 0, interfaces: [], store: { mode: 'circular', paths: [], capacityBytes: 1, usedBytes: 0, freeBytes: 1, full: false, filesDeleted: 0, bytesDeleted: 0 }, qualevent: r.figures() } satisfies Figures;
    const h = evaluateHealth(figures, { dropsWarning: 0.001, dropsCritical: 0.05, windowMs: 60_000, retentionTargetMs: 0, storeFullWarning: 0.9 });
    expect(h.reasons.map((x) => x.code)).toEqual(['qualevent_rejected']);
    expect(h.reasons[0]!.message).toContain(PARKED_FILE);
    expect(h.state).toBe('warning');
    const text = await createMetrics(() => ({ ...h, figures })).render();
    expect(text).toMatch(/^qe_packets_qualevent_events_parked_total 1$/m);
    expect(text).toMatch(/^qe_packets_qualevent_events_sent_total 4$/m);
    expect(text).toMatch(/^qe_packets_qualevent_outbox_events 0$/m);
    expect(text).toMatch(/^qe_packets_qualevent_events_dropped_total 0$/m);
  });

  it('retries, never parks, when the server refuses the token (401) or the URL (404)', async () => {
    const rx = await receiver();
    rx.answer = (_, n) => (n === 0 ? { status: 401, body: 'bad token' } : n === 1 ? { status: 404 } : { status: 200 });
    const src = new HandSource(['a']);
    const { r } = await reporter(rx.url, src);
    await until('the delivery', () => r.figures().sent === 1, 15_000);
    expect(rx.requests.map((q) => q.status)).toEqual([401, 404, 200]);
    expect(r.figures().parked).toBe(0);
    expect(logs.join('\n')).toMatch(/HTTP 401: bad token \(check qualevent\.url and the token in qualevent\.token_file\)/);
  }, 20_000);

  it('raises qualevent_unreachable after a minute without delivery', () => {
    const at = Date.now();
    const base = { at, version: 't', startedAt: 0, interfaces: [], store: { mode: 'circular' as const, paths: [], capacityBytes: 1, usedBytes: 0, freeBytes: 1, full: false, filesDeleted: 0, bytesDeleted: 0 } };
    const q = { url: 'https://x', applianceId: 'a', outboxEvents: 7, outboxBytes: 1, outboxLimitBytes: 2, sent: 0, dropped: 0, parked: 0, parkedPath: '/p', lastError: 'ECONNREFUSED' };
    const t = { dropsWarning: 0.001, dropsCritical: 0.05, windowMs: 60_000, retentionTargetMs: 0, storeFullWarning: 0.9 };
    expect(evaluateHealth({ ...base, qualevent: { ...q, failingSince: at - 59_000 } }, t).reasons).toEqual([]);
    const h = evaluateHealth({ ...base, qualevent: { ...q, failingSince: at - 61_000 } }, t);
    expect(h.reasons).toEqual([{ level: 'warning', code: 'qualevent_unreachable', message: expect.stringMatching(/nothing delivered for 1m.*ECONNREFUSED.*7 events wait/) }]);
  });

  it('kill -9 with events in the outbox (and a torn last record), then restart: they are delivered', async () => {
    const rx = await receiver();
    const dir = await tempDir('qe-qualevent-kill-');
    const port = rx.port;
    await rx.close();
    const script = join(root, 'test/lib/qualevent-child.mjs');
    const first = execa(process.execPath, [script, dir, rx.url, certs.caFile, '5'], { reject: false, all: true });
    let out = '';
    first.all!.on('data', (d: Buffer) => (out += d.toString()));
    await until('the outbox to hold them', () => /stored 12/.test(out));
    first.kill('SIGKILL');
    expect((await first).signal).toBe('SIGKILL');
    // A record torn by a crash mid-write.
    const torn = frame({ t: 'R', why: 'sent', ids: ['x'] }).subarray(0, 20);
    await appendFile(join(dir, JOURNAL_FILE), torn);
    expect(rx.port).toBe(port);
    await rx.open();
    const second = execa(process.execPath, [script, dir, rx.url, certs.caFile, '0'], { reject: false, all: true });
    let out2 = '';
    second.all!.on('data', (d: Buffer) => (out2 += d.toString()));
    try {
      await until('the ten changes', () => changes(rx).length === 10);
    } catch (e) {
      throw new Error(`${(e as Error).message}; first run:\n${out}\nsecond run:\n${out2}\nreceiver: ${JSON.stringify(rx.requests)}`);
    } finally {
      second.kill('SIGTERM');
      await second;
    }
    expect(out2).toMatch(/cut 20 bytes/);
    for (const id of ['k1', 'k2']) expect(changes(rx, id).map((e) => data(e).sequence)).toEqual([1, 2, 3, 4, 5]);
    const ids = rx.events().map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    // The first run's snapshots, the changes, then the second run's snapshot (numbered after them).
    expect(rx.events().filter((e) => data(e).kind === 'snapshot').map((e) => [e.subject, data(e).sequence])).toEqual([
      ['k1', 0],
      ['k2', 0],
      ['k1', 5],
      ['k2', 5],
    ]);
  }, 40_000);

  it('receiver down long enough to fill the outbox: snapshots are dropped and counted, every change still arrives', async () => {
    const rx = await receiver();
    await rx.close();
    const src = new HandSource(['a', 'b', 'c']);
    const size = frame({ t: 'E', kind: 'snapshot', event: stateEvent('lab-01', src.states.get('a')!, 0, 'snapshot') }).length;
    // Room for about twelve events: the snapshots of a few seconds overflow it.
    const { r } = await reporter(rx.url, src, { snapshotMs: 1000, outbox: size * 12 });
    for (const id of ['a', 'b', 'c']) src.set(id, 'critical');
    for (const id of ['a', 'b', 'c']) src.set(id, 'ok');
    await until('drops', () => r.figures().dropped >= 6, 15_000);
    const f = r.figures();
    expect(f.outboxBytes).toBeLessThanOrEqual(size * 12);
    const figures = { at: Date.now(), version: 't', startedAt: 0, interfaces: [], store: { mode: 'circular', paths: [], capacityBytes: 1, usedBytes: 0, freeBytes: 1, full: false, filesDeleted: 0, bytesDeleted: 0 }, qualevent: f } satisfies Figures;
    const text = await createMetrics(() => ({ state: 'ok', reasons: [], figures })).render();
    expect(text).toMatch(new RegExp(`^qe_packets_qualevent_events_dropped_total ${f.dropped}$`, 'm'));
    await rx.open();
    await until('the six changes', () => changes(rx).length === 6, 20_000);
    for (const id of ['a', 'b', 'c']) expect(changes(rx, id).map((e) => [data(e).sequence, data(e).state])).toEqual([[1, 'critical'], [2, 'ok']]);
  }, 40_000);

  it('keeps the parked file bounded: past a tenth of outbox_size it moves to parked.jsonl.1', async () => {
    const dir = await tempDir('qe-qualevent-park-');
    const src = new HandSource(['a']);
    const o = await Outbox.open(dir, 1024 * 1024, log);
    const one = async (i: number) => {
      const event = stateEvent('t', src.states.get('a')!, i, 'change');
      await o.add([{ kind: 'change', event }]);
      await o.park(o.pending(1, 1 << 20), 400, 'x'.repeat(400));
    };
    for (let i = 1; i <= 200; i++) await one(i);
    const size = async (f: string) => (await readFile(join(dir, f))).length;
    expect(await size(PARKED_FILE)).toBeLessThanOrEqual(1024 * 1024 / 10);
    expect(await size(`${PARKED_FILE}.1`)).toBeGreaterThan(1024 * 1024 / 10 - 2000);
    // The newest refusal is in the current file, whole lines only.
    const last = (await readFile(join(dir, PARKED_FILE), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { event: { data: { sequence: number } } });
    expect(last.at(-1)!.event.data.sequence).toBe(200);
    expect(o.count).toBe(0);
    await o.close();
  });

  it('a full outbox drops the oldest snapshots before any change, and counts every drop', async () => {
    const dir = await tempDir('qe-qualevent-full-');
    const src = new HandSource(['a', 'b']);
    const ev = (id: string, kind: 'change' | 'snapshot', seq: number) => ({ kind, event: stateEvent('t', src.states.get(id)!, seq, kind) });
    const size = frame({ t: 'E', ...ev('a', 'snapshot', 0) }).length;
    const o = await Outbox.open(dir, size * 10 + 10, log);
    await o.add([ev('a', 'snapshot', 0), ev('b', 'snapshot', 0), ev('a', 'change', 1), ev('b', 'snapshot', 0), ev('a', 'change', 2)]);
    await o.add([ev('a', 'snapshot', 2), ev('b', 'snapshot', 0), ev('a', 'change', 3), ev('a', 'change', 4), ev('a', 'change', 5)]);
    expect(o.count).toBe(10);
    expect(o.dropped).toBe(0);
    await o.add([ev('a', 'change', 6), ev('a', 'change', 7)]);
    // Two snapshots went, the two oldest, and no change.
    const kinds = () => o.pending(100, 1 << 30).map((e) => `${e.kind[0]}${e.sequence}`);
    expect(kinds()).toEqual(['c1', 's0', 'c2', 's2', 's0', 'c3', 'c4', 'c5', 'c6', 'c7']);
    expect(o.dropped).toBe(2);
    await o.add([ev('a', 'change', 8), ev('a', 'change', 9), ev('a', 'change', 10), ev('a', 'change', 11)]);
    expect(kinds()).toEqual(['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', 'c10', 'c11'].slice(1));
    expect(o.dropped).toBe(6);
    expect(o.bytes).toBeLessThanOrEqual(size * 10 + 10);
    await o.close();
    // The drops are in the journal: reopened, the same events are there.
    const again = await Outbox.open(dir, size * 10 + 10, log);
    expect(again.pending(100, 1 << 30).map((e) => e.sequence)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(again.lastSequence('a')).toBe(11);
    await again.close();
  });
});

describe('outbox journal', () => {
  it('reads whole records and stops at a short, corrupt or oversized one', () => {
    const a = frame({ t: 'R', why: 'sent', ids: ['1'] });
    const b = frame({ t: 'R', why: 'parked', ids: ['2'] });
    expect(readJournal(Buffer.concat([a, b])).records).toHaveLength(2);
    const short = readJournal(Buffer.concat([a, b.subarray(0, b.length - 1)]));
    expect([short.records.length, short.goodBytes, short.torn]).toEqual([1, a.length, expect.stringMatching(/with \d+ written/)]);
    const flipped = Buffer.concat([a, b]);
    flipped[flipped.length - 3]! ^= 0x20;
    expect(readJournal(flipped)).toMatchObject({ goodBytes: a.length, torn: expect.stringMatching(/CRC/) });
    const huge = Buffer.concat([a, Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0])]);
    // The outbox frames events from their JSON text: the same bytes as the record framed whole.
    const event = stateEvent('t', new HandSource(['x']).current()[0]!, 3, 'change');
    expect(eventFrame('change', JSON.stringify(event)).equals(frame({ t: 'E', kind: 'change', event }))).toBe(true);
    expect(readJournal(huge)).toMatchObject({ goodBytes: a.length, torn: expect.stringMatching(/length/) });
  });

  it('keeps change numbers across compaction, when every event has left', async () => {
    const dir = await tempDir('qe-qualevent-seq-');
    const src = new HandSource(['a']);
    const o = await Outbox.open(dir, 1 << 20, log);
    const n = o.nextSequence('a');
    const e = stateEvent('t', src.states.get('a')!, n, 'change');
    await o.add([{ kind: 'change', event: e }]);
    await o.remove([e.id], 'sent');
    await o.close();
    const again = await Outbox.open(dir, 1 << 20, log);
    expect(again.count).toBe(0);
    expect(again.nextSequence('a')).toBe(2);
    await again.close();
    // And the file holds the header alone (compacted at open).
    expect(readJournal(await readFile(join(dir, JOURNAL_FILE))).records.map((r) => r.record.t)).toEqual(['H']);
    // A newer format is refused with what to do, and left as it is.
    const newer = frame({ t: 'H', v: 2, seq: {} });
    await writeFile(join(dir, JOURNAL_FILE), newer);
    await expect(Outbox.open(dir, 1 << 20, log)).rejects.toThrow(/written by a newer Qe-Packets \(format 2, this one reads 1\); update, or move the directory away/);
    expect((await readFile(join(dir, JOURNAL_FILE))).equals(newer)).toBe(true);
  });

  it('backoff doubles up to its cap, with jitter in the upper half', () => {
    expect(backoffMs(1, () => 0)).toBe(500);
    expect(backoffMs(1, () => 0.999)).toBeCloseTo(1000, -1);
    expect(backoffMs(4, () => 0)).toBe(4000);
    expect(backoffMs(30, () => 0.999)).toBeLessThanOrEqual(60_000);
    expect(backoffMs(30, () => 0)).toBe(30_000);
  });
});
