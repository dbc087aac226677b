// Capture file names round-trip for every interface name Linux accepts: `~N` marks a collision, so
// an interface whose own name holds `~` (eth0~1) must not read back as another one's collision.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildPcap } from '../daemon/src/pcap/format.js';
import { scanCatalog } from '../daemon/src/store/catalog.js';
import { formatFileName, parseFileName } from '../daemon/src/store/filename.js';
import { cli, helperPath, readRecords, RunningCapture, sleep, tempDir, writeConfig } from './lib/cli.js';
import { testFrames } from './lib/frames.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';

const T = 1_764_000_000_123_456_789n;
// Valid Linux names (at most 15 bytes; no '/', ':' or white space) and import labels (':').
const names = ['eth0', 'eth0~1', 'eth0.100', 'br-lan_2', 'x~2~3', 'a%41', '%', '~', 'wlan-ü', 'if"*?[]', 'veth0@x', 'imp:ort+1', '_', '-'];

describe('capture file names', () => {
  it('round-trip every interface name, with and without a collision suffix, closed and part', () => {
    for (const iface of names)
      for (const collision of [undefined, 1, 12]) {
        const name = formatFileName(T, iface, collision);
        expect(parseFileName(name), name).toEqual({ firstNs: T, iface, ...(collision ? { collision } : {}), partial: false });
        expect(parseFileName(`${name}.part`), name).toEqual({ firstNs: T, iface, ...(collision ? { collision } : {}), partial: true });
      }
  });

  it('keep names of letters, digits and . _ @ : + - as they were, and spell the rest so no two differ only by it', () => {
    expect(formatFileName(T, 'eth0')).toBe('20251124T160000.123456789Z_eth0.pcap');
    expect(formatFileName(T, 'eth0', 1)).toBe('20251124T160000.123456789Z_eth0~1.pcap');
    expect(formatFileName(T, 'eth0~1')).toBe('20251124T160000.123456789Z_eth0%7E1.pcap');
    expect(formatFileName(T, 'wlan-ü')).toBe('20251124T160000.123456789Z_wlan-%C3%BC.pcap');
    // Names written before: a collision of eth0 still reads as one.
    expect(parseFileName('20251124T160000.123456789Z_eth0~1.pcap')).toMatchObject({ iface: 'eth0', collision: 1 });
    expect(new Set(names.map((n) => formatFileName(T, n))).size).toBe(names.length);
  });

  it('are written by qe-capture exactly as filename.ts formats them', async () => {
    const dir = await tempDir();
    const input = join(dir, 'in.pcap');
    await writeFile(input, buildPcap([{ tsNs: T, data: testFrames({ count: 1 })[0]! }], { nanos: true }));
    for (const iface of names) {
      const store = join(dir, `s${names.indexOf(iface)}`);
      await mkdir(store);
      for (let i = 0; i < 2; i++) await execa(helperPath, ['--read', input, '--iface', iface, '--dir', store, '--no-fsync']);
      expect((await readdir(store)).sort(), iface).toEqual([formatFileName(T, iface), formatFileName(T, iface, 1)].sort());
    }
    // A part file in the way makes the new one ~1; a closed ~1 in the way then makes it ~2 (not ~1~1).
    const store = join(dir, 'taken');
    await mkdir(store);
    await writeFile(join(store, `${formatFileName(T, 'eth0~1')}.part`), '');
    await writeFile(join(store, formatFileName(T, 'eth0~1', 1)), '');
    await execa(helperPath, ['--read', input, '--iface', 'eth0~1', '--dir', store, '--no-fsync']);
    expect((await readdir(store)).filter((f) => f.endsWith('.pcap')).map((f) => parseFileName(f))).toEqual([
      { firstNs: T, iface: 'eth0~1', collision: 1, partial: false },
      { firstNs: T, iface: 'eth0~1', collision: 2, partial: false },
    ]);
  });
});

describe('an interface named with ~', () => {
  let lab: Lab;
  let dir: string;
  let cap: RunningCapture | undefined;
  beforeEach(async () => {
    lab = new Lab();
    dir = await tempDir();
  });
  afterEach(async () => {
    if (cap?.proc.exitCode === null) await cap.stop('SIGKILL');
    await lab.cleanup();
  });

  it('is captured, catalogued and extracted under its own name (a veth named qew~1)', async () => {
    const link = await captureLink(lab, 'qew~1');
    const store = join(dir, 'store');
    await mkdir(store);
    const config = await writeConfig(dir, { interfaces: [link.capDev], paths: [store] });
    cap = new RunningCapture(config);
    await cap.waitFor(`${link.capDev}: capturing`);
    const frames = testFrames({ count: 30, seed: 4 });
    await sendFrames(link.ns, link.genDev, frames, dir);
    await sleep(300);
    expect((await cap.stop()).exitCode).toBe(0);

    const files = await readdir(store);
    expect(files.filter((f) => f.endsWith('.pcap')).map((f) => parseFileName(f))).toEqual([
      expect.objectContaining({ iface: 'qew~1', partial: false }),
    ]);
    expect(parseFileName(files.find((f) => f.endsWith('.pcap'))!)).not.toHaveProperty('collision');
    const catalog = await scanCatalog([store]);
    expect(catalog.entries.map((e) => e.iface)).toEqual(['qew~1']);
    const out = join(dir, 'out.pcap');
    const ex = await cli(['extract', '--config', config, '--from', '1h ago', '--iface', 'qew~1', '-w', out]);
    expect(ex.exitCode, ex.all).toBe(0);
    expect((await readRecords([out])).map((r) => r.data)).toEqual(frames);
  });
});
