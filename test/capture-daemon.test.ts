// The daemon object driven start → reload → stop with fake helpers: what a reload sends to the
// helpers that stay, which it stops and starts, and that a configuration it cannot use changes
// nothing. The real processes are in capture-live, systemd and health; this is the logic alone.
import { rmSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../daemon/src/config/load.js';
import { CaptureDaemon } from '../daemon/src/daemon/daemon.js';
import type { Notifier } from '../daemon/src/systemd/notify.js';
import { type ConfigInput, sleep, tempDir, writeConfig } from './lib/cli.js';
import { FakeHelper } from './lib/fake-helper.js';
import { BASE_NS, MS, traffic, writeCaptureFile } from './lib/fixture.js';
import { checkIndex } from '../daemon/src/store/index-check.js';
import { cachePath, loadCache } from '../daemon/src/store/catalog-cache.js';
import { scanCatalog } from '../daemon/src/store/catalog.js';
import { fetchStatus } from '../daemon/src/control/client.js';
import { formatStatus } from '../daemon/src/commands/status.js';

const MiB = 2 ** 20;

const daemons: CaptureDaemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop().catch(() => {});
});

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++, await sleep(10)) if (cond()) return;
  throw new Error(`timed out waiting for ${what}`);
}

async function setup(first: Partial<ConfigInput>) {
  const dir = await tempDir();
  const store = join(dir, 'store');
  await mkdir(store);
  const base: ConfigInput = { paths: [store], capacity: '256MiB', file_size: '8MiB', metrics_listen: false };
  const write = (c: Partial<ConfigInput>) => writeConfig(dir, { ...base, ...c });
  const path = await write(first);
  const helpers: FakeHelper[] = [];
  const ready: number[] = [];
  const notifier: Notifier = { active: false, ready: () => ready.push(Date.now()), stopping() {}, watchdog() {}, watchdogIntervalMs: () => 0, status() {} };
  const daemon = new CaptureDaemon(await loadConfigFile(path), path, false, {
    launchHelper: (args) => {
      const h = FakeHelper.launch(args);
      helpers.push(h);
      return h;
    },
    // The interfaces are fakes: this machine has none of them. One name stands for a missing one.
    checkEnvironment: async (c) => {
      const missing = c.capture.interfaces.find((i) => i.name === 'missing0');
      if (missing) throw new Error(`capture.interfaces: ${missing.name} does not exist on this machine`);
    },
    notifier,
  });
  daemons.push(daemon);
  const running = (name: string) => helpers.filter((h) => h.iface === name && !h.stopped);
  return { daemon, helpers, ready, write, running, store, dir };
}

describe('the capture daemon, start → reload → stop, with fake helpers', () => {
  it('starts one helper per interface with the configured settings and its quota, and is ready once all capture', async () => {
    const { daemon, helpers, ready } = await setup({ interfaces: ['eth0', 'eth1'], filter: 'udp' });
    await daemon.start();
    await until('both helpers', () => helpers.length === 2 && ready.length === 1);
    expect(helpers.map((h) => h.iface).sort()).toEqual(['eth0', 'eth1']);
    for (const h of helpers) {
      expect(h.arg('--filter')).toBe('udp');
      expect(h.arg('--file-size')).toBe(String(8 * MiB));
      expect(Number(h.arg('--quota'))).toBeGreaterThan(0);
    }
  });

  it('a reload sends the new filter and file size to the helpers that stay, stops the removed interface and starts the added one', async () => {
    const { daemon, helpers, write, running } = await setup({ interfaces: ['eth0', 'eth1'], filter: 'udp' });
    await daemon.start();
    await until('both helpers', () => helpers.length === 2);
    const [eth0] = running('eth0');
    const [eth1] = running('eth1');
    await write({ interfaces: ['eth0', 'eth2'], filter: 'tcp port 80', file_size: '16MiB' });
    expect(await daemon.reload()).toEqual({ applied: true, restartNeeded: [] });
    expect(eth0!.lines).toEqual([`set file_size ${16 * MiB}`, 'set file_duration_ms 0', 'set flush_ms 1000', 'set filter tcp port 80']);
    expect(eth0!.stopped).toBe(false);
    expect(eth1!.stopped).toBe(true);
    await until('eth2 started', () => running('eth2').length === 1);
    expect(running('eth2')[0]!.arg('--filter')).toBe('tcp port 80');
    expect(running('eth2')[0]!.arg('--file-size')).toBe(String(16 * MiB));
    expect(daemon.config.capture.filter).toBe('tcp port 80');
    expect(daemon.supervisor.interfaces().map((i) => i.name).sort()).toEqual(['eth0', 'eth2']);
  });

  it('says which changes wait for a restart (snaplen, buffer), and applies the rest', async () => {
    const { daemon, helpers, write } = await setup({ interfaces: ['eth0'] });
    await daemon.start();
    await until('the helper', () => helpers.length === 1);
    await write({ interfaces: ['eth0'], snaplen: 128, buffer: '64MiB', filter: 'icmp' });
    expect(await daemon.reload()).toEqual({ applied: true, restartNeeded: ['capture.snaplen', 'capture.buffer (eth0)'] });
    expect(helpers[0]!.lines.at(-1)).toBe('set filter icmp');
  });

  it('passes index.fields to each helper, and a reload that changes them restarts the helpers with the new fields', async () => {
    const { daemon, helpers, write, running } = await setup({ interfaces: ['eth0'] });
    await daemon.start();
    await until('the helper', () => helpers.length === 1);
    expect(helpers[0]!.arg('--index-fields')).toBe('ip,port,proto,vlan');
    expect(helpers[0]!.arg('--index-block-size')).toBe('16384');
    await write({ interfaces: ['eth0'], index_fields: ['mac', 'ip'] });
    expect(await daemon.reload()).toEqual({ applied: true, restartNeeded: [] });
    expect(helpers[0]!.stopped).toBe(true);
    await until('eth0 restarted', () => running('eth0').length === 1);
    expect(running('eth0')[0]!.arg('--index-fields')).toBe('mac,ip');
    // Turned off: an empty list, so the helper's own default never decides.
    await write({ interfaces: ['eth0'], index_fields: [] });
    await daemon.reload();
    await until('eth0 restarted again', () => helpers.length === 3 && running('eth0').length === 1);
    expect(running('eth0')[0]!.arg('--index-fields')).toBe('');
    expect(running('eth0')[0]!.arg('--index-block-size')).toBeUndefined();
    // Unchanged fields: no restart.
    await write({ interfaces: ['eth0'], index_fields: [], filter: 'udp' });
    await daemon.reload();
    await sleep(50);
    expect(helpers.length).toBe(3);
  });

  it('passes --flows while flows.enabled (the default); turning it off restarts the helpers without it', async () => {
    const { daemon, helpers, write, running } = await setup({ interfaces: ['eth0'] });
    await daemon.start();
    await until('the helper', () => helpers.length === 1);
    expect(helpers[0]!.args).toContain('--flows');
    await write({ interfaces: ['eth0'], flows: false });
    expect(await daemon.reload()).toEqual({ applied: true, restartNeeded: [] });
    expect(helpers[0]!.stopped).toBe(true);
    await until('eth0 restarted', () => running('eth0').length === 1);
    expect(running('eth0')[0]!.args).not.toContain('--flows');
  });

  for (const [what, bad, error] of [
    ['does not load (a bad value)', { interfaces: ['eth0'], file_size: 'banana' }, /file_size/],
    ['names an interface this machine lacks', { interfaces: ['eth0', 'missing0'], filter: 'tcp' }, /missing0 does not exist/],
  ] as const) {
    it(`a configuration that ${what} is refused whole: nothing is sent, stopped or started`, async () => {
      const { daemon, helpers, write } = await setup({ interfaces: ['eth0', 'eth1'], filter: 'udp' });
      await daemon.start();
      await until('both helpers', () => helpers.length === 2);
      await write(bad);
      const outcome = await daemon.reload();
      expect(outcome.applied).toBe(false);
      expect(outcome.applied === false && outcome.error).toMatch(error);
      await sleep(50);
      expect(helpers.map((h) => [h.iface, h.lines, h.stopped]).sort()).toEqual([
        ['eth0', [], false],
        ['eth1', [], false],
      ]);
      expect(daemon.config.capture.filter).toBe('udp');
      // The next good configuration is applied as usual.
      await write({ interfaces: ['eth0', 'eth1'], filter: 'udp port 53' });
      expect((await daemon.reload()).applied).toBe(true);
      expect(helpers.every((h) => h.lines.at(-1) === 'set filter udp port 53')).toBe(true);
    });
  }

  it('once capture has started, indexes the closed files that need it in the background (real qe-index), shown in status; a reload changing index.fields rebuilds them', async () => {
    const { daemon, helpers, write, store, dir } = await setup({ interfaces: ['eth0'] });
    const files = [0, 1, 2].map((i) => writeCaptureFile(store, 'eth9', traffic(BASE_NS + BigInt(i) * 60_000n * MS, 50, i + 1)).path);
    const want = { fields: ['ip', 'port', 'proto', 'vlan'] as const, blockSizeBytes: 16384 };
    expect(files.map((f) => checkIndex(f, want).state)).toEqual(['missing', 'missing', 'missing']);
    await daemon.start();
    await until('the helper', () => helpers.length === 1);
    await until('the files indexed', () => files.every((f) => checkIndex(f, want).state === 'current'));
    const report = await fetchStatus(join(dir, 'control.sock'));
    expect(report.figures.index).toMatchObject({ fields: ['ip', 'port', 'proto', 'vlan'], indexedFiles: 3, failedFiles: 0 });
    await until('the run ended', () => daemon.indexFigures().running === false);
    expect(formatStatus(await fetchStatus(join(dir, 'control.sock')))).toMatch(/^  index {6}ip, port, proto, vlan; every closed file indexed$/m);
    await write({ interfaces: ['eth0'], index_fields: ['mac'] });
    await daemon.reload();
    const mac = { fields: ['mac'] as const, blockSizeBytes: 16384 };
    await until('the files re-indexed with the new fields', () => files.every((f) => checkIndex(f, mac).state === 'current'));
  });

  it('puts each file a helper closes into the catalog cache from its file_closed, so a query reads none back', async () => {
    // No index and no flow tables: the background indexer, which scans the store, stays out.
    const { daemon, helpers, store } = await setup({ interfaces: ['eth0'], index_fields: [], flows: false });
    // A file from before the start: the daemon's own scan at start caches it, and then is done.
    writeCaptureFile(store, 'eth0', traffic(BASE_NS - 60_000n * MS, 40, 6));
    await daemon.start();
    await until('the helper', () => helpers.length === 1);
    await until('the scan at start', () => loadCache(store).size === 1);
    const packets = traffic(BASE_NS, 40, 7);
    const f = writeCaptureFile(store, 'eth0', packets);
    const times = packets.map((p) => p.tsNs);
    const min = times.reduce((a, b) => (a < b ? a : b));
    const max = times.reduce((a, b) => (a > b ? a : b));
    helpers[0]!.emit('message', {
      type: 'file_closed', iface: 'eth0', path: f.path, first_ns: times[0]!, last_ns: times.at(-1)!, packets: packets.length,
      bytes: statSync(f.path).size, min_ns: min, max_ns: max, sorted: times.every((t, i) => i === 0 || t >= times[i - 1]!),
    });
    await daemons.pop()!.stop(); // flushes what the feed holds
    const fed = await scanCatalog([store]);
    expect(fed.stats).toMatchObject({ files: 2, cached: 2, readWhole: 0 });
    rmSync(cachePath(store));
    const walked = await scanCatalog([store]);
    expect(walked.stats.readWhole).toBe(2);
    expect(fed.entries).toEqual(walked.entries);
  });

  it('stop stops every helper and sums up what each interface did', async () => {
    const { daemon, helpers } = await setup({ interfaces: ['eth0', 'eth1'] });
    await daemon.start();
    await until('both helpers', () => helpers.length === 2);
    helpers[0]!.emit('message', {
      type: 'stats', iface: helpers[0]!.iface, received: 10, written: 9, written_bytes: 900, filtered: 1, kernel_drops: 0, if_drops: 0, writer_drops: 0,
      write_errors: 0, store_full_drops: 0, cpu_us: 5, appended_bytes: 900, index_bytes: 0, open_file_bytes: 924, buffered_bytes: 0, store_full: false,
    });
    const summary = await daemons.pop()!.stop();
    expect(helpers.every((h) => h.stopped)).toBe(true);
    expect(Object.keys(summary.interfaces).sort()).toEqual(['eth0', 'eth1']);
    expect(summary.interfaces[helpers[0]!.iface]).toMatchObject({ received: 10, written: 9 });
  });
});
