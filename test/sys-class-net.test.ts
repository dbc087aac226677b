// /sys/class/net is read by one module, which takes its root as a parameter. The fixture tree
// test/fixtures/sys-class-net holds two physical NICs (a device/ folder) whose ifindex order
// differs from their name order, one down without a speed file (the kernel fails that read), lo,
// and a veth (no device).
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { linkAttr, linkInfo, linkNames, linkNumber, physicalLinks, rxPackets } from '../daemon/src/util/sys-class-net.js';
import { packageVersion } from '../daemon/src/util/version.js';
import { cli, root } from './lib/cli.js';

const fixture = join(root, 'test', 'fixtures', 'sys-class-net');

/** Source lines outside `owner` that match `pattern` (daemon, bench, image and package code). */
async function elsewhere(pattern: string, owner: string): Promise<string[]> {
  const r = await execa('grep', ['-rnE', pattern, 'daemon/src', 'bench', 'image/src', 'package/src', '--include=*.ts'], { cwd: root, reject: false });
  return r.stdout.split('\n').filter((l) => l && !l.startsWith(`${owner}:`));
}

describe('sys-class-net.ts reads links from the root it is given', () => {
  it('lists every link, sorted', async () => {
    expect(await linkNames(fixture)).toEqual(['eno1', 'enp3s0', 'lo', 'veth0']);
    expect(await linkNames(join(fixture, 'nope'))).toEqual([]);
  });
  it('orders physical NICs by ifindex and leaves out lo and virtual links', async () => {
    expect(await physicalLinks(fixture)).toEqual(['enp3s0', 'eno1']);
  });
  it('reads state, speed and address; a down link has no speed', async () => {
    expect(await linkInfo('enp3s0', fixture)).toEqual({ state: 'up', speedMbps: 10000, mac: 'aa:bb:cc:00:00:02' });
    expect(await linkInfo('eno1', fixture)).toEqual({ state: 'down', mac: 'aa:bb:cc:00:00:04' });
    expect(await linkInfo('gone0', fixture)).toEqual({ state: 'unknown' });
  });
  it('reads counters and numbers', async () => {
    expect(rxPackets('enp3s0', fixture)).toBe(123456);
    expect(rxPackets('gone0', fixture)).toBeUndefined();
    expect(await linkNumber('eno1', 'ifindex', fixture)).toBe(4);
    expect(await linkNumber('eno1', 'address', fixture)).toBeUndefined();
  });
  it('does not leave its root for a name that is not a link name', async () => {
    expect(await linkAttr('..', 'sys-class-net/lo/ifindex', fixture)).toBeUndefined();
    expect(await linkAttr('lo/../enp3s0', 'ifindex', fixture)).toBeUndefined();
  });
  it('reads the real /sys/class/net by default', async () => {
    expect(await linkNames()).toContain('lo');
    expect(await linkNumber('lo', 'ifindex')).toBe(1);
    expect(rxPackets('lo')).toEqual(expect.any(Number));
  });
  it('is the only module that names /sys/class/net', async () => {
    expect(await elsewhere("['\"`]/sys/class/net", 'daemon/src/util/sys-class-net.ts')).toEqual([]);
  });
});

describe('the package version is read in one place', () => {
  it('version.ts reads package.json, and qe-packets --version says the same', async () => {
    const { version } = JSON.parse(await (await import('node:fs/promises')).readFile(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(packageVersion()).toBe(version);
    expect((await cli(['--version'])).stdout).toBe(version);
  });
  it('no other module reads the version from package.json', async () => {
    expect(await elsewhere(String.raw`'package\.json'.*\.version|\{ version \} = JSON\.parse`, 'daemon/src/util/version.ts')).toEqual([]);
  });
});
