// Qualevent inside the capture daemon (fake helpers, a hand-driven element source, a real HTTPS
// receiver): started from the config, its figures in `status` and the metrics, restarted by a
// reload that changes it, and capture untouched by a server that refuses everything.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatStatus } from '../daemon/src/commands/status.js';
import { loadConfigFile } from '../daemon/src/config/load.js';
import { fetchStatus } from '../daemon/src/control/client.js';
import { CaptureDaemon } from '../daemon/src/daemon/daemon.js';
import type { Notifier } from '../daemon/src/systemd/notify.js';
import { sleep, tempDir, writeConfig } from './lib/cli.js';
import { HandSource } from './lib/element-source.js';
import { FakeHelper } from './lib/fake-helper.js';
import { freePort } from './lib/prometheus.js';
import { Receiver, makeCertificates } from './lib/qualevent-receiver.js';

let certs: Awaited<ReturnType<typeof makeCertificates>>;
const cleanup: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  certs = await makeCertificates(await tempDir('qe-qualevent-ca-'));
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await sleep(20)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

const notifier: Notifier = { active: false, ready() {}, stopping() {}, watchdog() {}, watchdogIntervalMs: () => 0, status() {} };

describe('qualevent in the daemon', () => {
  it('reports element states from start, shows them in status and metrics, follows a reload, stops cleanly', async () => {
    const rx = new Receiver(certs);
    await rx.open();
    cleanup.push(() => rx.close());
    const dir = await tempDir();
    process.env.QE_PACKETS_STATE_DIR = join(dir, 'state');
    const store = join(dir, 'store');
    await mkdir(store);
    await writeFile(join(dir, 'token'), 'daemon-token\n');
    const metricsPort = await freePort();
    const qualevent = (url: string, id: string) => `qualevent:\n  url: ${url}\n  token_file: ${join(dir, 'token')}\n  ca_file: ${certs.caFile}\n  appliance_id: ${id}\n`;
    const path = await writeConfig(dir, { paths: [store], interfaces: ['eth0'], capacity: '256MiB', file_size: '8MiB', metrics_listen: `127.0.0.1:${metricsPort}`, api_listen: false, extra: qualevent(rx.url, 'box-1') });
    const source = new HandSource(['web', 'db']);
    const daemon = new CaptureDaemon(await loadConfigFile(path), path, false, {
      launchHelper: FakeHelper.launch,
      checkEnvironment: async () => {},
      notifier,
      elementSource: source,
    });
    await daemon.start();
    cleanup.push(() => daemon.stop());

    await until('the start snapshot', () => rx.events().length === 2);
    source.set('web', 'critical');
    await until('the change', () => rx.events().length === 3);
    const change = rx.events()[2]!;
    expect(change).toMatchObject({ source: 'qe-packets/box-1', subject: 'web', data: { state: 'critical', sequence: 1, kind: 'change' } });
    expect(rx.batches[0]!.headers.authorization).toBe('Bearer daemon-token');

    // The receiver has the events a moment before the reporter hears its answer.
    let report = await fetchStatus(daemon.config.control.socket, 2000);
    for (let i = 0; i < 100 && report.figures.qualevent?.sent !== 3; i++, await sleep(20)) report = await fetchStatus(daemon.config.control.socket, 2000);
    expect(report.figures.qualevent).toMatchObject({ url: rx.url, applianceId: 'box-1', sent: 3, outboxEvents: 0, dropped: 0, parked: 0 });
    expect(formatStatus(report)).toMatch(/qualevent  https:\/\/127\.0\.0\.1:\d+\/api\/events: 3 events sent, 0 waiting/);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^qe_packets_qualevent_events_sent_total 3$/m);
    expect(metrics).toMatch(/^qe_packets_qualevent_outbox_events 0$/m);

    // A reload to another server (and id): the outbox and the change numbers carry over.
    const rx2 = new Receiver(certs);
    await rx2.open();
    cleanup.push(() => rx2.close());
    await writeConfig(dir, { paths: [store], interfaces: ['eth0'], capacity: '256MiB', file_size: '8MiB', metrics_listen: `127.0.0.1:${metricsPort}`, api_listen: false, extra: qualevent(rx2.url, 'box-2') });
    expect(await daemon.reload()).toMatchObject({ applied: true });
    await until('the new snapshot', () => rx2.events().length === 2);
    source.set('web', 'ok');
    await until('the change at the new server', () => rx2.events().length === 3);
    expect(rx2.events()[2]).toMatchObject({ source: 'qe-packets/box-2', data: { state: 'ok', previous: 'critical', sequence: 2 } });
    expect(rx.events()).toHaveLength(3);

    // Reports off: no more events anywhere, and the token is in no log or status.
    await writeConfig(dir, { paths: [store], interfaces: ['eth0'], capacity: '256MiB', file_size: '8MiB', metrics_listen: `127.0.0.1:${metricsPort}`, api_listen: false });
    expect(await daemon.reload()).toMatchObject({ applied: true });
    source.set('web', 'warning');
    await sleep(300);
    expect(rx2.events()).toHaveLength(3);
    const after = await fetchStatus(daemon.config.control.socket, 2000);
    expect(after.figures.qualevent).toBeUndefined();
    expect(JSON.stringify(report)).not.toContain('daemon-token');
    expect(await readFile(join(dir, 'state', 'qualevent', 'journal'), 'utf8')).not.toContain('daemon-token');
  }, 40_000);

  it('an outbox that cannot open leaves capture running and is reported in status', async () => {
    const dir = await tempDir();
    // The outbox directory is a file here: it cannot be made.
    await mkdir(join(dir, 'state'));
    await writeFile(join(dir, 'state', 'qualevent'), 'not a directory');
    process.env.QE_PACKETS_STATE_DIR = join(dir, 'state');
    const store = join(dir, 'store');
    await mkdir(store);
    const path = await writeConfig(dir, { paths: [store], interfaces: ['eth0'], metrics_listen: false, api_listen: false, extra: 'qualevent:\n  url: https://127.0.0.1:9/e\n' });
    const daemon = new CaptureDaemon(await loadConfigFile(path), path, false, {
      launchHelper: FakeHelper.launch,
      checkEnvironment: async () => {},
      notifier,
      elementSource: new HandSource(['web']),
    });
    await daemon.start();
    cleanup.push(() => daemon.stop());
    const report = await fetchStatus(daemon.config.control.socket, 2000);
    expect(report.figures.qualevent).toMatchObject({ url: 'https://127.0.0.1:9/e', failingSince: expect.any(Number), lastError: expect.stringMatching(/EEXIST|ENOTDIR/) });
    expect(formatStatus(report)).toMatch(/qualevent  https:\/\/127\.0\.0\.1:9\/e: 0 events sent/);
  });
});
