// provision storage for real, at scaled-down sizes: sparse files on loop devices, the real lsblk,
// blkid, wipefs, mkfs.xfs and mount (and mdadm where the kernel has md), fstab and config written
// to a temporary folder (never the host's /etc), then the daemon capturing into the new
// filesystems, a re-run that changes nothing, and the refusals. Needs root, as CI runs.
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../daemon/src/config/load.js';
import { cli, RunningCapture, sleep, storeFiles, readRecords, tempDir } from './lib/cli.js';
import { testFrames } from './lib/frames.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';

const isRoot = process.getuid?.() === 0;
let dir: string;
let lab: Lab;
const loops: string[] = [];
const running: RunningCapture[] = [];

async function loop(name: string, size: string): Promise<string> {
  const img = join(dir, `${name}.img`);
  await execa('truncate', ['-s', size, img]);
  const dev = (await execa('losetup', ['-f', '--show', img])).stdout.trim();
  loops.push(dev);
  return dev;
}

/** Mount points under the test folder, deepest first. */
async function ourMounts(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m && m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

async function blkid(dev: string): Promise<Record<string, string>> {
  const r = await execa('blkid', ['-p', '-o', 'export', dev], { reject: false });
  return Object.fromEntries(r.stdout.split('\n').filter(Boolean).map((l) => l.split('=', 2) as [string, string]));
}

beforeAll(async () => {
  if (!isRoot) return;
  dir = await tempDir('qe-provision-');
  lab = new Lab();
});

afterAll(async () => {
  if (!isRoot) return;
  for (const r of running.splice(0)) if (r.proc.exitCode === null) await r.stop('SIGKILL');
  await lab.cleanup();
  for (const m of await ourMounts()) await execa('umount', [m], { reject: false }).then((r) => (r.exitCode ? execa('umount', ['-l', m], { reject: false }) : r));
  await execa('chattr', ['-R', '-i', dir], { reject: false }); // the mount points are made immutable
  if (existsSync('/dev/md/qe-store')) await execa('mdadm', ['--stop', '/dev/md/qe-store'], { reject: false });
  for (const l of loops.splice(0)) await execa('losetup', ['-d', l], { reject: false });
  await execa('rm', ['-rf', dir], { reject: false });
});

const provision = (args: string[]) =>
  cli(['provision', 'storage', '--fstab', join(dir, 'etc', 'fstab'), '--config', join(dir, 'etc', 'config.yaml'), '--mdadm-conf', join(dir, 'etc', 'mdadm.conf'), '--mount-base', join(dir, 'srv'), ...args], { timeout: 120_000 });

describe.skipIf(!isRoot)('provision storage on loop devices', () => {
  it('--raid none: plans, applies (XFS per disk, mounted, fstab by UUID, config), the daemon captures into it, a re-run changes nothing', async () => {
    const disks = [await loop('d0', '1G'), await loop('d1', '1G'), await loop('d2', '1G'), await loop('d3', '1G')];
    const link = await captureLink(lab, 'qepv0');
    const etc = join(dir, 'etc');
    await mkdir(etc, { recursive: true });
    const configPath = join(etc, 'config.yaml');
    await execa('sh', ['-c', `printf '# appliance under test\\ncapture:\\n  interfaces: [${link.capDev}]  # the tap\\n  buffer: 32MiB\\n' > ${configPath}`]);
    const args = ['--profile', 'custom:2GiB', '--file-size', '1MiB', '--disks', disks.join(','), '--rate', '1Gbps'];

    // The plan alone changes nothing.
    const plan = await provision([...args, '--json']);
    expect(plan.exitCode, plan.all).toBe(0);
    const p = JSON.parse(plan.stdout);
    expect(p).toMatchObject({ raid: 'none', capacity: '2GiB', capacityBytes: 2 ** 31, fileSize: '1MiB', fileCount: 2048, provisioned: false });
    expect(p.disks.map((d: { path: string; state: string }) => [d.path, d.state])).toEqual(disks.map((d) => [d, 'blank']));
    expect(p.layout.kind).toBe('filesystem-per-disk');
    for (const d of disks) expect(await blkid(d)).toEqual({});
    expect(existsSync(join(etc, 'fstab'))).toBe(false);

    const applied = await provision([...args, '--yes']);
    expect(applied.exitCode, applied.all).toBe(0);
    expect(applied.stdout).toContain('done:');
    const paths = disks.map((_, i) => join(dir, 'srv', `store${i}`));
    const fstab = await readFile(join(etc, 'fstab'), 'utf8');
    const mountinfo = await execa('findmnt', ['-J', '-t', 'xfs', '-o', 'TARGET,SOURCE,OPTIONS']);
    const mounted = (JSON.parse(mountinfo.stdout).filesystems as { target: string; source: string; options: string }[]).filter((m) => m.target.startsWith(dir));
    for (const [i, d] of disks.entries()) {
      const id = await blkid(d);
      expect(id).toMatchObject({ TYPE: 'xfs', LABEL: `qe-store-${i}` });
      expect(fstab).toContain(`UUID=${id.UUID} ${paths[i]} xfs noatime,inode64,largeio,allocsize=64m,logbsize=256k,nofail,x-systemd.device-timeout=30s 0 0\n`);
      const m = mounted.find((x) => x.target === paths[i]);
      expect(m?.source).toBe(d);
      for (const o of ['noatime', 'largeio', 'inode64', 'allocsize=65536k', 'logbsize=256k']) expect(m?.options.split(',')).toContain(o);
      const info = await execa('xfs_info', [paths[i]!]);
      expect(info.stdout).toMatch(/reflink=0/);
    }
    const configText = await readFile(configPath, 'utf8');
    expect(configText).toContain('# appliance under test');
    expect(configText).toContain('# the tap');
    const config = await loadConfigFile(configPath);
    expect(config.storage).toMatchObject({ paths, capacity: { bytes: 2 ** 31 }, fileSizeBytes: 2 ** 20, mode: 'circular' });
    expect(config.capture.interfaces.map((i) => i.name)).toEqual([link.capDev]);

    // The daemon captures into the new filesystems, with the config as written.
    const check = await cli(['check-config', configPath]);
    expect(check.exitCode, check.all).toBe(0);
    const cap = new RunningCapture(configPath, ['--summary', join(dir, 'summary.json')]);
    running.push(cap);
    await cap.waitFor(`${link.capDev}: capturing`);
    const frames = testFrames({ count: 5000, sizes: [1514] });
    await sendFrames(link.ns, link.genDev, frames, dir, { pps: 20000 });
    await sleep(500);
    expect((await cap.stop()).exitCode, cap.output).toBe(0);
    const files = await storeFiles(paths);
    expect(files.length).toBeGreaterThanOrEqual(4);
    const used = new Set(files.map((f) => f.slice(0, f.lastIndexOf('/'))));
    expect(used.size).toBeGreaterThanOrEqual(2); // new files go to the path with the most room
    expect((await readRecords(files)).length).toBe(frames.length);

    // A re-run finds everything in place and changes nothing.
    const before = await Promise.all([stat(join(etc, 'fstab')), stat(configPath)]);
    const fstabBefore = await readFile(join(etc, 'fstab'), 'utf8');
    const again = await provision([...args, '--yes']);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stdout).toContain('Every filesystem exists already (qe-store-0, qe-store-1, qe-store-2, qe-store-3)');
    expect(again.stdout).toContain('nothing to do');
    expect(again.stdout).not.toMatch(/\$ (mkfs|mount|wipefs)/);
    const after = await Promise.all([stat(join(etc, 'fstab')), stat(configPath)]);
    expect(after.map((s) => s.mtimeMs)).toEqual(before.map((s) => s.mtimeMs));
    expect(await readFile(join(etc, 'fstab'), 'utf8')).toBe(fstabBefore);
    expect(await readFile(configPath, 'utf8')).toBe(configText);
    expect((await storeFiles(paths)).length).toBe(files.length); // captures untouched
    // Without its disk, a mount point takes no files: it was made immutable before the mount.
    await execa('umount', [paths[3]!]);
    await expect(execa('touch', [join(paths[3]!, 'x')])).rejects.toThrow(/Operation not permitted/);
    const remount = await provision([...args, '--yes']);
    expect(remount.exitCode, remount.all).toBe(0);
    expect(remount.stdout).toMatch(/done:\n {2}mounted qe-store-3 .*\n {2}\/tmp/); // only the mount, nothing else
    expect(await readFile(configPath, 'utf8')).toBe(configText);
    // Named in another order, the same filesystems are found again by their labels.
    const plain = await provision(['--profile', 'custom:2GiB', '--file-size', '1MiB', '--disks', [...disks].reverse().join(','), '--json']);
    expect(JSON.parse(plain.stdout)).toMatchObject({ provisioned: true, paths });
  });

  it('refuses, changing nothing: a mounted disk, a signature without --force, too small a disk, too large a profile; --force erases', async () => {
    const etc = join(dir, 'etc2');
    const args = (disks: string[], extra: string[] = []) =>
      cli(['provision', 'storage', '--fstab', join(etc, 'fstab'), '--config', join(etc, 'config.yaml'), '--mount-base', join(dir, 'srv2'), '--profile', 'custom:100MiB', '--file-size', '1MiB', '--disks', disks.join(','), '--yes', ...extra]);

    const mountedDev = await loop('m0', '400M');
    await execa('mkfs.ext4', ['-q', mountedDev]);
    const mnt = join(dir, 'other-mount');
    await mkdir(mnt, { recursive: true });
    await execa('mount', [mountedDev, mnt]);
    const r1 = await args([mountedDev], ['--force']);
    expect(r1.exitCode).toBe(1);
    expect(r1.stderr).toContain(`refused, nothing changed:\n  --disks ${mountedDev}: is mounted (${mnt}); fix: unmount it`);

    const signed = await loop('s0', '400M');
    await execa('mkfs.ext4', ['-q', '-L', 'someone', signed]);
    const r2 = await args([signed]);
    expect(r2.exitCode).toBe(1);
    expect(r2.stderr).toContain(`--disks ${signed}: carries a signature (ext4, label someone); fix: choose another disk, or pass --force to erase it`);
    expect((await blkid(signed)).TYPE).toBe('ext4');

    const small = await loop('t0', '200M');
    const r3 = await args([small]);
    expect(r3.exitCode).toBe(1);
    expect(r3.stderr).toMatch(new RegExp(`--disks ${small}: 210MB \\(200MiB\\) is too small for an XFS filesystem`));

    const blank = await loop('b0', '400M');
    const r4 = await args([blank], ['--profile', 'custom:1GiB']);
    expect(r4.exitCode).toBe(1);
    expect(r4.stderr).toMatch(/--profile custom:1GiB: needs 1\.07GB/);
    expect(await blkid(blank)).toEqual({});
    expect(existsSync(etc)).toBe(false); // no fstab, no config, nothing made

    // A config the new storage section cannot go into is found before any disk is touched.
    const brokenDir = join(dir, 'etc-broken');
    await mkdir(brokenDir, { recursive: true });
    await execa('sh', ['-c', `printf 'storage:\n  fsync: maybe\n' > ${join(brokenDir, 'config.yaml')}`]);
    const r6 = await cli(['provision', 'storage', '--fstab', join(brokenDir, 'fstab'), '--config', join(brokenDir, 'config.yaml'), '--mount-base', join(dir, 'srv5'), '--profile', 'custom:100MiB', '--file-size', '1MiB', '--disks', blank, '--yes']);
    expect(r6.exitCode).toBe(2);
    expect(r6.stderr).toMatch(/refused, nothing changed: the config cannot take this storage section:\n.*storage\.fsync = "maybe"/);
    expect(await blkid(blank)).toEqual({});
    expect(existsSync(join(brokenDir, 'fstab'))).toBe(false);

    // --force erases the signature and provisions the disk.
    const r5 = await args([signed], ['--force']);
    expect(r5.exitCode, r5.all).toBe(0);
    expect(r5.stdout).toContain(`wiped ${signed}`);
    expect(await blkid(signed)).toMatchObject({ TYPE: 'xfs', LABEL: 'qe-store-0' });
    expect((await loadConfigFile(join(etc, 'config.yaml'))).storage.paths).toEqual([join(dir, 'srv2', 'store0')]);
  });

  it('the mkfs.xfs command lines of the RAID layouts are accepted by the real mkfs.xfs and align XFS to the array', async () => {
    const { planStorage } = await import('../daemon/src/provision/plan.js');
    const { parseFileSize, parseProfile, parseRate } = await import('../daemon/src/provision/options.js');
    const devices = ['sdb', 'sdc', 'sdd', 'sde', 'sdf', 'sdg', 'sdh', 'sdi'].map((name) => ({
      name, path: `/dev/${name}`, sizeBytes: 8e12, type: 'disk', fstype: null, label: null, uuid: null, pttype: null, mountpoints: [], model: null, rotational: true, readOnly: false, removable: false, children: [],
    }));
    const img = join(dir, 'geometry.img');
    await execa('truncate', ['-s', '20G', img]);
    for (const [raid, sunit, swidth] of [['0', 128, 1024], ['10', 128, 512], ['6', 128, 768]] as const) {
      const p = planStorage({ source: 'test', devices }, { profile: parseProfile('10TB'), disks: 'auto', raid, fileSize: parseFileSize('1GiB'), mode: 'circular', rate: parseRate('10Gbps'), force: false, mountBase: '/srv/qe-packets' });
      const argv = [...p.filesystems[0]!.mkfs.slice(1, -1), '-N', img]; // -N: print the geometry, write nothing
      const out = await execa('mkfs.xfs', argv);
      expect(out.stdout).toMatch(new RegExp(`sunit=${sunit} +swidth=${swidth} blks`));
      expect(out.stdout).toMatch(/reflink=0/);
    }
  });

  it.skipIf(existsSync('/proc/mdstat'))('without the md driver, a RAID layout is refused before anything changes', async () => {
    const disks = [await loop('n0', '400M'), await loop('n1', '400M')];
    const r = await cli(['provision', 'storage', '--fstab', join(dir, 'etc4', 'fstab'), '--config', join(dir, 'etc4', 'config.yaml'), '--mount-base', join(dir, 'srv4'),
      '--profile', 'custom:100MiB', '--file-size', '1MiB', '--disks', disks.join(','), '--raid', '0', '--yes']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('--raid 0: this kernel has no md driver (no /proc/mdstat); fix: load it (modprobe raid0), or use --raid none');
    for (const d of disks) expect(await blkid(d)).toEqual({});
    expect(existsSync(join(dir, 'etc4'))).toBe(false);
  });

  // md needs the kernel's md driver (/proc/mdstat); the machine these tests were written on has
  // neither md nor device-mapper, so this runs only where they exist.
  it.skipIf(!existsSync('/proc/mdstat'))('--raid 0 with mdadm: one striped array, XFS aligned to it (sunit/swidth), a re-run changes nothing', async () => {
    const disks = [await loop('r0', '1G'), await loop('r1', '1G')];
    const base = ['--profile', 'custom:1GiB', '--file-size', '1MiB', '--disks', disks.join(','), '--raid', '0', '--yes'];
    const etc = join(dir, 'etc3');
    const run = () =>
      cli(['provision', 'storage', '--fstab', join(etc, 'fstab'), '--config', join(etc, 'config.yaml'), '--mdadm-conf', join(etc, 'mdadm.conf'), '--mount-base', join(dir, 'srv3'), ...base], { timeout: 120_000 });
    const r = await run();
    expect(r.exitCode, r.all).toBe(0);
    expect(await readFile('/proc/mdstat', 'utf8')).toMatch(/raid0/);
    const info = await execa('xfs_info', [join(dir, 'srv3', 'store0')]);
    expect(info.stdout).toMatch(/sunit=128 +swidth=256 blks/); // 512 KiB chunk, 2 data disks, 4 KiB blocks
    expect(await readFile(join(etc, 'mdadm.conf'), 'utf8')).toMatch(/^ARRAY \/dev\/md\/qe-store/m);
    const again = await run();
    expect(again.stdout).toContain('nothing to do');
    await execa('umount', [join(dir, 'srv3', 'store0')]);
    await execa('mdadm', ['--stop', '/dev/md/qe-store']);
    for (const d of disks) await execa('wipefs', ['-a', d]);
  });
});
