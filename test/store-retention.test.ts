// Retention against a store folder holding what it should not, and a store that cannot be read:
// the real StoreRetention, ledger and measurement on real directories (no capture needed).
import { EventEmitter } from 'node:events';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../daemon/src/config/load.js';
import { evaluateHealth } from '../daemon/src/health/evaluate.js';
import { buildPcap } from '../daemon/src/pcap/format.js';
import { formatFileName } from '../daemon/src/store/filename.js';
import { StoreRetention } from '../daemon/src/store/retention.js';
import { BASE_NS, MS, tempDir } from './lib/fixture.js';
import { cli, root, sleep, writeConfig } from './lib/cli.js';

const MiB = 2 ** 20;
const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));
function dir(): string {
  const t = tempDir('retention-unit');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** `n` closed 1 MiB files, oldest first. */
function fill(store: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const path = join(store, formatFileName(BASE_NS + BigInt(i + 1) * MS, 'eth0'));
    writeFileSync(path, Buffer.alloc(MiB, 1));
    return path;
  });
}

async function retentionFor(base: string, store: string, extra: { rescan_interval?: string } = {}) {
  const config = await loadConfigFile(await writeConfig(base, { paths: [store], capacity: '8MiB', file_size: '1MiB', mode: 'circular', ...extra }));
  const r = new StoreRetention(config, 8 * MiB);
  const logs: string[] = [];
  r.on('log', (level, text) => logs.push(`${level}: ${text}`));
  return { r, logs, config };
}

describe('circular retention and names it cannot delete', () => {
  it('a directory named like the oldest capture is skipped and reported once; the oldest real files are deleted', async () => {
    const base = dir();
    const store = join(base, 'store');
    mkdirSync(store);
    const oddity = join(store, formatFileName(BASE_NS, 'eth0'));
    mkdirSync(oddity);
    const files = fill(store, 8);
    const { r, logs } = await retentionFor(base, store);
    await r.prepare();
    // The first grant needs 4 MiB of the 8 MiB capacity: the four oldest files make it.
    expect(await r.argsFor('eth0')).toEqual(['--quota', String(4 * MiB)]);
    expect(files.map(existsSync)).toEqual([false, false, false, false, true, true, true, true]);
    expect(existsSync(oddity)).toBe(true);
    await r.prepare(); // measured again: not reported again
    expect(logs).toEqual([`warn: ${oddity}: a directory, not a regular file: not counted, never deleted by retention`]);
  });

  it('a file that cannot be deleted when its turn comes is skipped; deletion goes on with the next', async () => {
    const base = dir();
    const store = join(base, 'store');
    mkdirSync(store);
    const files = fill(store, 8);
    const { r, logs } = await retentionFor(base, store);
    await r.prepare();
    // Measured as a file, a directory by the time it is deleted: unlink fails with EISDIR.
    rmSync(files[0]!);
    mkdirSync(files[0]!);
    await r.argsFor('eth0');
    expect(files.map(existsSync)).toEqual([true, false, false, false, false, true, true, true]);
    expect(logs).toEqual([`error: retention cannot delete ${files[0]} (EISDIR): skipped, older files go first; remove it by hand`]);
    expect(r.state().filesDeleted).toBe(4);
  });
});

describe('a store that cannot be read is never an empty store', () => {
  it('measuring with file descriptors exhausted (a real EMFILE) fails, naming the path and the errno', async () => {
    const store = dir();
    fill(store, 2);
    const usage = join(root, 'build/daemon/src/store/usage.js');
    // Every descriptor under a low limit taken first, as 1,100 half-open connections did.
    const script = `
      const { openSync } = await import('node:fs');
      const { measureStore } = await import(${JSON.stringify(usage)});
      try { for (;;) openSync('/dev/null', 'r'); } catch (e) { if (e.code !== 'EMFILE') throw e; }
      try { console.log(JSON.stringify(await measureStore([${JSON.stringify(store)}]), (k, v) => typeof v === 'bigint' ? String(v) : v)); }
      catch (e) { console.log('error: ' + e.message); }`;
    const res = await execa('sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" --input-type=module -e "$0"`, script], { reject: false, timeout: 20_000 });
    expect(res.stderr).toBe('');
    expect(res.stdout).toBe(`error: store directory ${store} cannot be read (EMFILE: too many open files); its files cannot be counted, so no room is granted from it until it can`);
  });

  it('an import refuses to start, and writes nothing, when the store cannot be listed by the user running it', async () => {
    const base = dir();
    chmodSync(base, 0o755);
    const store = join(base, 'store');
    mkdirSync(store);
    const input = join(base, 'in.pcap');
    writeFileSync(input, buildPcap([{ tsNs: BASE_NS, data: Buffer.alloc(60, 7) }]));
    const config = await writeConfig(base, { paths: [store], capacity: '8MiB', file_size: '1MiB', mode: 'linear', metrics_listen: false });
    // The user may write and enter the store but not list it: the store is full, and cannot be counted.
    fill(store, 8);
    chownSync(store, 65534, 65534);
    chmodSync(store, 0o300);
    const res = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, join(root, 'build/daemon/src/cli.js'), 'capture', '--config', config, '--read', input], {
      reject: false,
      all: true,
      timeout: 30_000,
    });
    expect(res.all).toContain(`error: store directory ${store} cannot be read (EACCES: permission denied)`);
    expect(res.exitCode).toBe(1);
    expect(readdirSync(store)).toHaveLength(8);
  });

  it('while running, a store directory that goes away turns health critical naming it, keeps the last figures, and recovers', async () => {
    const base = dir();
    const store = join(base, 'store');
    mkdirSync(store);
    fill(store, 3);
    const { r, logs, config } = await retentionFor(base, store, { rescan_interval: '500ms' });
    await r.prepare();
    const source = Object.assign(new EventEmitter(), { command: () => {} });
    r.attach(source as never);
    const used = r.state().usedBytes;
    renameSync(store, `${store}.away`);
    await sleep(1500);
    const s = r.state();
    expect(s.usedBytes).toBe(used);
    expect(s.unreadable).toMatch(new RegExp(`^store directory ${store} cannot be read \\(ENOENT: no such file or directory\\)`));
    const health = evaluateHealth(
      { at: Date.now(), version: '', startedAt: 0, interfaces: [], store: { mode: s.mode, paths: [store], capacityBytes: s.capacityBytes, usedBytes: s.usedBytes, freeBytes: 0, full: s.full, filesDeleted: 0, bytesDeleted: 0, unreadable: s.unreadable! } },
      config.health,
    );
    expect(health).toEqual({ state: 'critical', reasons: [{ level: 'critical', code: 'store_unreadable', message: s.unreadable }] });
    expect(logs.filter((l) => l.startsWith('error:'))).toHaveLength(1); // said once, not at every rescan
    renameSync(`${store}.away`, store);
    await sleep(1000);
    expect(r.state().unreadable).toBeUndefined();
    expect(logs.at(-1)).toBe(`info: store directory ${store} can be read again`);
    await r.stop();
  });
});

describe('paths a helper reports', () => {
  it('are queued for deletion only when they are capture files inside a store path; others are refused by name', async () => {
    const base = dir();
    const store = join(base, 'store');
    mkdirSync(store);
    const files = fill(store, 6);
    const outside = join(base, formatFileName(BASE_NS, 'eth0'));
    writeFileSync(outside, 'not the store');
    const sneaky = `${store}/../${formatFileName(BASE_NS, 'eth1')}`;
    writeFileSync(sneaky, 'not the store either');
    // Never a system file here: on code without the check this test deletes its victims.
    const precious = join(store, 'precious.txt');
    writeFileSync(precious, 'nor is this a capture');
    const { r, logs } = await retentionFor(base, store);
    await r.prepare();
    // A helper (it parses hostile input) reporting files it did not write in the store.
    const source = Object.assign(new EventEmitter(), { command: () => {} });
    r.attach(source as never);
    await r.argsFor('eth0');
    const closed = (path: string) => source.emit('file_closed', { type: 'file_closed', iface: 'eth0', path, first_ns: BASE_NS - MS, last_ns: BASE_NS, packets: 1, bytes: MiB });
    closed(outside);
    closed(sneaky);
    closed(precious);
    source.emit('message', { type: 'file_opened', iface: 'eth0', path: precious, first_ns: BASE_NS });
    // Room for a new grant: the oldest files go, and only those in the store.
    await r.argsFor('eth1');
    expect(existsSync(outside) && existsSync(precious) && existsSync(join(base, formatFileName(BASE_NS, 'eth1')))).toBe(true);
    expect(files.filter(existsSync).length).toBeLessThan(6);
    expect(logs).toEqual([
      `error: eth0: the helper reported ${JSON.stringify(outside)}, which is not directly inside storage.paths (${store}): refused, never deleted by retention`,
      `error: eth0: the helper reported ${JSON.stringify(sneaky)}, which is not an absolute, normalised path: refused, never deleted by retention`,
      `error: eth0: the helper reported ${JSON.stringify(precious)}, which is not named like a closed capture file (<time>_<iface>.pcap): refused, never deleted by retention`,
      `error: eth0: the helper reported ${JSON.stringify(precious)}, which is not named like a part capture file (<time>_<iface>.pcap.part): refused, never deleted by retention`,
    ]);
    await r.stop();
  });
});
