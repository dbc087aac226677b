// provision storage, the plan: sizing of the 10/20/40 TB profiles on the inventories of realistic
// appliances, refusals, idempotence seen from the inventory, fstab and config editing, and the
// command's bad-input messages. Pure functions and the real CLI with --inventory: no root needed.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../daemon/src/config/load.js';
import { setStorage } from '../daemon/src/provision/config-writer.js';
import { updateFstab } from '../daemon/src/provision/fstab.js';
import type { BlockDevice, Inventory } from '../daemon/src/provision/inventory.js';
import { parseInventory } from '../daemon/src/provision/inventory.js';
import { ProvisionError, parseFileSize, parseMode, parseProfile, parseRaid, parseRate } from '../daemon/src/provision/options.js';
import { HEADROOM_SHARE, planStorage, xfsUsableBytes, type PlanOptions, type StoragePlan } from '../daemon/src/provision/plan.js';
import { cli, tempDir } from './lib/cli.js';

const TB = 1e12;
const GiB = 2 ** 30;
// Disks are sold in SI sizes a little above the round figure: these are real drive capacities.
const HDD4 = 4_000_787_030_016;
const HDD6 = 6_001_175_126_016;
const HDD8 = 8_001_563_222_016;

function disk(name: string, size: number, extra: Partial<BlockDevice> = {}): BlockDevice {
  return { name, path: `/dev/${name}`, sizeBytes: size, type: 'disk', fstype: null, label: null, uuid: null, pttype: null, mountpoints: [], model: 'HDD', rotational: true, readOnly: false, removable: false, children: [], ...extra };
}
const systemDisk = () =>
  disk('nvme0n1', 512e9, { pttype: 'gpt', children: [disk('nvme0n1p1', 511e9, { type: 'part', fstype: 'ext4', mountpoints: ['/'] })] });
const letters = 'bcdefghijklmnopq';
function box(sizes: number[]): Inventory {
  return { source: 'test', devices: [systemDisk(), ...sizes.map((s, i) => disk(`sd${letters[i]}`, s))] };
}
function opts(profile: string, extra: Partial<PlanOptions> = {}): PlanOptions {
  return {
    profile: parseProfile(profile),
    disks: 'auto',
    raid: undefined,
    fileSize: parseFileSize('1GiB'),
    mode: 'circular',
    rate: parseRate('10Gbps'),
    force: false,
    mountBase: '/srv/qe-packets',
    ...extra,
  };
}
function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ProvisionError);
    return (e as ProvisionError).message;
  }
  throw new Error('expected a refusal');
}
/** Invariants every plan keeps: the promise is the profile, and the headroom is really left free. */
function checkInvariants(p: StoragePlan) {
  expect(p.capacityBytes).toBeLessThanOrEqual(p.maxCapacityBytes);
  expect(p.usableBytes - p.capacityBytes).toBeGreaterThanOrEqual(p.headroomBytes);
  for (const f of p.filesystems) expect(f.headroomBytes).toBeGreaterThanOrEqual(Math.max(f.usableBytes * HEADROOM_SHARE, 2 * p.fileSizeBytes) - 1);
  expect(p.fileCount).toBe(Math.floor(p.capacityBytes / p.fileSizeBytes));
  expect(p.paths).toEqual(p.filesystems.map((f) => f.mountPoint));
}

describe('profiles and options', () => {
  it('profiles are SI terabytes of capture volume; custom takes any size; bad values name the flag, the value and the fix', () => {
    expect(parseProfile('10TB').capacityBytes).toBe(10 * TB);
    expect(parseProfile('20tb').capacityBytes).toBe(20 * TB);
    expect(parseProfile('40TB').capacityBytes).toBe(40 * TB);
    expect(parseProfile('custom:15TiB')).toMatchObject({ capacityBytes: 15 * 2 ** 40, capacityText: '15TiB' });
    expect(() => parseProfile('15TB')).toThrow('--profile 15TB: not a profile; use 10TB, 20TB, 40TB or custom:SIZE');
    expect(() => parseProfile('custom:lots')).toThrow(/--profile custom:lots: lots is not a size/);
    expect(() => parseRaid('5')).toThrow('--raid 5: not a supported layout; use none (one filesystem per disk), 0, 10 or 6');
    expect(parseRaid('raid10')).toBe('10');
    expect(() => parseFileSize('1 parsec')).toThrow(/--file-size 1 parsec: not a size/);
    expect(() => parseMode('ring')).toThrow(/--mode ring: not a mode; use circular/);
    expect(parseRate('2.5Gbps').bitsPerSecond).toBe(2.5e9);
    expect(() => parseRate('10GB')).toThrow(/--rate 10GB: not a rate/);
  });
  it('XFS estimate stays below what mkfs.xfs 6.1 (reflink=0) really leaves, measured on loop devices', () => {
    // statfs after mkfs.xfs -m reflink=0: 1 GiB → 237261 blocks of 4 KiB free, 64 GiB → 16735881, 1 TiB → 268028887.
    expect(xfsUsableBytes(GiB)).toBeLessThanOrEqual(237261 * 4096);
    expect(xfsUsableBytes(64 * GiB)).toBeLessThanOrEqual(16735881 * 4096);
    expect(xfsUsableBytes(1024 * GiB)).toBeLessThanOrEqual(268028887 * 4096);
    // … and within about 1% of it on real disk sizes.
    expect(xfsUsableBytes(1024 * GiB) / (268028887 * 4096)).toBeGreaterThan(0.985);
  });
});

describe('sizing on realistic appliances', () => {
  it('4 x 4 TB: 10TB fits with one filesystem per disk (default) or RAID 0; RAID 10 and 6 (8 TB) and 20TB do not', () => {
    const inv = box([HDD4, HDD4, HDD4, HDD4]);
    const p = planStorage(inv, opts('10TB'));
    checkInvariants(p);
    expect(p.raid).toBe('none');
    expect(p.layout.kind).toBe('filesystem-per-disk');
    expect(p.disks.map((d) => d.path)).toEqual(['/dev/sdb', '/dev/sdc', '/dev/sdd', '/dev/sde']);
    expect(p.excluded).toEqual([{ path: '/dev/nvme0n1', reason: 'is mounted (/)' }]);
    expect(p.filesystems.map((f) => [f.label, f.device, f.mountPoint])).toEqual([
      ['qe-store-0', '/dev/sdb', '/srv/qe-packets/store0'],
      ['qe-store-1', '/dev/sdc', '/srv/qe-packets/store1'],
      ['qe-store-2', '/dev/sdd', '/srv/qe-packets/store2'],
      ['qe-store-3', '/dev/sde', '/srv/qe-packets/store3'],
    ]);
    expect(p.filesystems[0]!.mkfs).toEqual(['mkfs.xfs', '-q', '-L', 'qe-store-0', '-m', 'reflink=0', '/dev/sdb']);
    expect(p.capacity).toBe('10TB');
    expect(p.capacityBytes).toBe(10 * TB);
    expect(p.fileSize).toBe('1GiB');
    expect(p.fileCount).toBe(9313);
    expect(p.retentionSeconds).toBe(8000); // 10 TB × 8 bits / 10 Gbit/s
    expect(p.usableBytes).toBeGreaterThan(15.7 * TB);
    expect(p.usableBytes).toBeLessThan(16 * TB);

    expect(planStorage(inv, opts('10TB', { raid: '0' })).layout).toMatchObject({ kind: 'md-raid', dataDisks: 4, chunkBytes: 512 * 1024 });
    expect(refusal(() => planStorage(inv, opts('10TB', { raid: '10' })))).toMatch(/--profile 10TB: needs 10TB .* with --raid 10 give 7\.9\d?TB/);
    expect(refusal(() => planStorage(inv, opts('10TB', { raid: '6' })))).toMatch(/with --raid 6 give 7\.9\d?TB/);
    expect(refusal(() => planStorage(inv, opts('20TB')))).toMatch(/--profile 20TB: needs 20TB .*fix: add or use larger disks, or choose a smaller profile \(at most custom:150\d\dGB here\)/);
  });

  it('8 x 8 TB: 20TB and 40TB fit per disk; 40TB fits RAID 6 (6 data disks, su=512k,sw=6) but not RAID 10 (32 TB)', () => {
    const inv = box(Array<number>(8).fill(HDD8));
    for (const profile of ['20TB', '40TB']) checkInvariants(planStorage(inv, opts(profile)));
    const r6 = planStorage(inv, opts('40TB', { raid: '6' }));
    checkInvariants(r6);
    expect(r6.layout).toMatchObject({ kind: 'md-raid', raid: '6', dataDisks: 6, device: '/dev/md/qe-store' });
    expect(r6.layout.mdadm).toEqual([
      'mdadm', '--create', '/dev/md/qe-store', '--run', '--metadata=1.2', '--name=qe-store', '--level=6', '--raid-devices=8', '--chunk=512',
      '/dev/sdb', '/dev/sdc', '/dev/sdd', '/dev/sde', '/dev/sdf', '/dev/sdg', '/dev/sdh', '/dev/sdi',
    ]);
    expect(r6.filesystems).toHaveLength(1);
    expect(r6.filesystems[0]!.mkfs).toEqual(['mkfs.xfs', '-q', '-L', 'qe-store-0', '-m', 'reflink=0', '-d', 'su=512k,sw=6', '/dev/md/qe-store']);
    expect(r6.paths).toEqual(['/srv/qe-packets/store0']);
    expect(r6.rawBytes).toBeGreaterThan(47.9 * TB);
    expect(r6.raidReason).toMatch(/survives two lost disks/);
    const r10 = planStorage(inv, opts('20TB', { raid: '10' }));
    expect(r10.layout.mdadm).toContain('--layout=n2');
    expect(r10.filesystems[0]!.mkfs).toContain('su=512k,sw=4');
    expect(refusal(() => planStorage(inv, opts('40TB', { raid: '10' })))).toMatch(/--profile 40TB: needs 40TB .*--raid 10 give 31(\.\d)?TB/);
  });

  it('12 x 6 TB: 40TB fits per disk and in RAID 6 (60 TB), not in RAID 10 (36 TB)', () => {
    const inv = box(Array<number>(12).fill(HDD6));
    const none = planStorage(inv, opts('40TB'));
    checkInvariants(none);
    expect(none.filesystems).toHaveLength(12);
    expect(none.retentionSeconds).toBe(32000);
    expect(planStorage(inv, opts('40TB', { raid: '6' })).layout.dataDisks).toBe(10);
    expect(refusal(() => planStorage(inv, opts('40TB', { raid: '10' })))).toMatch(/--raid 10 give 35(\.\d)?TB/);
  });

  it('one 40 TB array (a hardware RAID volume): 20TB fits; 40TB does not, once XFS and the headroom take their share', () => {
    const inv: Inventory = { source: 'test', devices: [systemDisk(), disk('sdb', 40 * TB, { model: 'PERC H740P' })] };
    const p = planStorage(inv, opts('20TB'));
    checkInvariants(p);
    expect(p.filesystems).toHaveLength(1);
    expect(p.notes.join(' ')).toMatch(/would take up to 37(\.\d)?TB/);
    const why = refusal(() => planStorage(inv, opts('40TB')));
    expect(why).toMatch(/--profile 40TB: needs 40TB .*1 disk \(40TB \(36\.4TiB\) raw\) with --raid none give 39(\.\d)?TB \(36(\.\d)?TiB\) of filesystem, 37(\.\d)?TB .*after 5% headroom/);
    expect(why).toMatch(/at most custom:37\d\d\dGB here/);
    checkInvariants(planStorage(inv, opts('custom:37TB')));
  });

  it('mixed sizes (2 x 4 TB + 2 x 8 TB): per disk uses all 24 TB; RAID 0 uses 4 x 4 TB and says what it wastes', () => {
    const inv = box([HDD4, HDD8, HDD4, HDD8]);
    const p = planStorage(inv, opts('20TB'));
    checkInvariants(p);
    expect(p.filesystems.map((f) => f.rawBytes)).toEqual([HDD4, HDD8, HDD4, HDD8]);
    expect(p.notes.join(' ')).toMatch(/mixed disk sizes: each filesystem is its own size/);
    const r0 = planStorage(inv, opts('10TB', { raid: '0' }));
    expect(r0.notes.join(' ')).toMatch(/md uses 4TB .* of each disk; 8TB .* of the larger disks stays unused/);
    expect(refusal(() => planStorage(inv, opts('20TB', { raid: '0' })))).toMatch(/--raid 0 give 15(\.\d)?TB/);
  });

  it('a file size and rate change the file count and retention, not the capacity', () => {
    const p = planStorage(box([HDD8, HDD8]), opts('10TB', { fileSize: parseFileSize('4GiB'), rate: parseRate('40Gbps'), mode: 'linear' }));
    expect(p).toMatchObject({ capacity: '10TB', fileSize: '4GiB', fileCount: 2328, retentionSeconds: 2000, mode: 'linear' });
  });
});

describe('refusals and choices of disks', () => {
  it('--disks auto skips the system disk, loops, empty devices and disks carrying data, and says why', () => {
    const inv: Inventory = {
      source: 'test',
      devices: [
        systemDisk(),
        disk('sdb', HDD8),
        disk('sdc', HDD8, { pttype: 'gpt' }),
        disk('sdd', HDD8, { fstype: 'ext4', label: 'backup' }),
        disk('loop0', 10 * GiB, { type: 'loop' }),
        disk('zram0', 0),
        disk('sde', HDD8),
      ],
    };
    const p = planStorage(inv, opts('10TB'));
    expect(p.disks.map((d) => d.path)).toEqual(['/dev/sdb', '/dev/sde']);
    expect(Object.fromEntries(p.excluded.map((e) => [e.path, e.reason]))).toEqual({
      '/dev/nvme0n1': 'is mounted (/)',
      '/dev/sdc': 'carries a gpt partition table (name it with --disks and --force to erase it)',
      '/dev/sdd': 'carries a signature (ext4, label backup) (name it with --disks and --force to erase it)',
      '/dev/loop0': 'a loop device (name it with --disks to use it)',
      '/dev/zram0': 'has no capacity',
    });
  });

  it('named disks: mounted or in use is refused even with --force; a signature only without --force; all reasons at once', () => {
    const inv: Inventory = {
      source: 'test',
      devices: [
        systemDisk(),
        disk('sdb', HDD8, { fstype: 'xfs', mountpoints: ['/data'] }),
        disk('sdc', HDD8, { fstype: 'LVM2_member', children: [disk('vg-lv', HDD8, { type: 'lvm' })] }),
        disk('sdd', HDD8, { pttype: 'dos' }),
        disk('sde', HDD8),
      ],
    };
    const why = refusal(() => planStorage(inv, opts('10TB', { disks: ['/dev/sdb', '/dev/sdc', '/dev/sdd', '/dev/sde'] })));
    expect(why).toContain('--disks /dev/sdb: is mounted (/data); fix: unmount it');
    expect(why).toContain('--disks /dev/sdc: is in use by /dev/vg-lv (lvm)');
    expect(why).toContain('--disks /dev/sdd: carries a dos partition table; fix: choose another disk, or pass --force to erase it (wipefs -a)');
    const forced = refusal(() => planStorage(inv, opts('10TB', { disks: ['/dev/sdb', '/dev/sdd'], force: true })));
    expect(forced).toContain('/dev/sdb: is mounted');
    expect(forced).not.toContain('/dev/sdd');
    const p = planStorage(inv, opts('10TB', { disks: ['/dev/sdd', '/dev/sde'], force: true }));
    expect(p.disks.map((d) => [d.path, d.state])).toEqual([['/dev/sdd', 'wipe'], ['/dev/sde', 'blank']]);
    expect(p.filesystems[0]!.mkfs).toContain('-f');
    expect(refusal(() => planStorage(inv, opts('10TB', { disks: ['/dev/nvme0n1p1'] })))).toMatch(/--disks \/dev\/nvme0n1p1: is a partition of \/dev\/nvme0n1; fix: name whole disks/);
    expect(refusal(() => planStorage(inv, opts('10TB', { disks: ['/dev/sdz'] })))).toMatch(/--disks \/dev\/sdz: no such device in test; fix: use one of/);
  });

  it('too small: XFS needs 300 MiB; RAID levels need their number of disks', () => {
    const tiny = box([200 * 2 ** 20, 200 * 2 ** 20]);
    expect(refusal(() => planStorage(tiny, opts('custom:100MB', { fileSize: parseFileSize('1MiB') })))).toMatch(/--disks \/dev\/sdb: 210MB \(200MiB\) is too small for an XFS filesystem \(at least 300MiB\)/);
    const three = box([HDD8, HDD8, HDD8]);
    expect(refusal(() => planStorage(three, opts('10TB', { raid: '10' })))).toMatch(/--raid 10: needs an even number of disks, at least 4, 3 given; fix: add disks, or use --raid 0 or none/);
    expect(refusal(() => planStorage(three, opts('10TB', { raid: '6' })))).toMatch(/--raid 6: needs at least 4 disks, 3 given/);
    expect(refusal(() => planStorage(box([HDD8]), opts('custom:1GiB', { fileSize: parseFileSize('1GiB') })))).toMatch(/--file-size 1GiB: the capacity 1GiB holds fewer than two files/);
  });

  it('a provisioned box plans nothing new: its filesystems are recognised by label, the layout is kept, indices stay', () => {
    const ours = (name: string, i: number, uuid: string) =>
      disk(name, HDD8, { fstype: 'xfs', label: `qe-store-${i}`, uuid, mountpoints: [`/srv/qe-packets/store${i}`] });
    const inv: Inventory = { source: 'test', devices: [systemDisk(), ours('sdb', 1, 'u-1'), ours('sdc', 0, 'u-0')] };
    const p = planStorage(inv, opts('10TB'));
    expect(p.provisioned).toBe(true);
    expect(p.disks.every((d) => d.state === 'ours')).toBe(true);
    expect(p.filesystems.map((f) => [f.label, f.device, f.uuid, f.mkfs])).toEqual([
      ['qe-store-0', '/dev/sdc', 'u-0', []],
      ['qe-store-1', '/dev/sdb', 'u-1', []],
    ]);
    expect(p.fstab[0]).toBe('UUID=u-0 /srv/qe-packets/store0 xfs noatime,inode64,largeio,allocsize=64m,logbsize=256k,nofail,x-systemd.device-timeout=30s 0 0');
    // A new disk added later gets the next free index; the existing ones are untouched.
    const grown = planStorage({ ...inv, devices: [...inv.devices, disk('sdd', HDD8)] }, opts('20TB'));
    expect(grown.filesystems.map((f) => [f.label, f.exists])).toEqual([['qe-store-0', true], ['qe-store-1', true], ['qe-store-2', false]]);
    // Asking for another layout on them is refused without --force; mounted, even with it.
    expect(refusal(() => planStorage(inv, opts('10TB', { raid: '0' })))).toMatch(/is a qe-packets filesystem \(qe-store-1\), mounted; fix: keep --raid none/);
    // Mounted somewhere else than this plan's mount point.
    expect(refusal(() => planStorage(inv, opts('10TB', { mountBase: '/capture' })))).toMatch(/qe-packets filesystem qe-store-1 is mounted at \/srv\/qe-packets\/store1, not \/capture\/store1/);

    const md = disk('md127', 3 * HDD8, { type: 'raid6', fstype: 'xfs', label: 'qe-store-0', uuid: 'md-u', mountpoints: ['/srv/qe-packets/store0'] });
    const members: Inventory = { source: 'test', devices: ['sdb', 'sdc', 'sdd', 'sde', 'sdf'].map((n) => disk(n, HDD8, { fstype: 'linux_raid_member', children: [md] })) };
    const pm = planStorage(members, opts('20TB'));
    expect(pm).toMatchObject({ raid: '6', provisioned: true, layout: { existing: true, mdadm: null, device: '/dev/md127' } });
    expect(pm.raidReason).toMatch(/kept from the existing qe-packets array/);
  });
});

describe('fstab and config writing', () => {
  it('fstab: entries by UUID added once, a changed one replaced in place, everything else kept', () => {
    const old = '# /etc/fstab\nUUID=root / ext4 errors=remount-ro 0 1\n\nUUID=old /srv/qe-packets/store0 xfs defaults 0 0\n';
    const entries = [
      { uuid: 'a', mountPoint: '/srv/qe-packets/store0', line: 'UUID=a /srv/qe-packets/store0 xfs noatime,nofail 0 0' },
      { uuid: 'b', mountPoint: '/srv/qe-packets/store1', line: 'UUID=b /srv/qe-packets/store1 xfs noatime,nofail 0 0' },
    ];
    const once = updateFstab(old, entries);
    expect(once.text).toBe('# /etc/fstab\nUUID=root / ext4 errors=remount-ro 0 1\n\nUUID=a /srv/qe-packets/store0 xfs noatime,nofail 0 0\nUUID=b /srv/qe-packets/store1 xfs noatime,nofail 0 0\n');
    expect(once.changed).toHaveLength(2);
    const twice = updateFstab(once.text, entries);
    expect(twice).toEqual({ text: once.text, changed: [] });
  });

  it('config: the storage section is set through the YAML document, comments and other keys kept, validated by the schema', () => {
    const old = [
      '# appliance 7, rack B',
      'capture:',
      '  interfaces: [eth1, eth2]   # the tap',
      '  filter: "not port 22"',
      'storage:',
      '  paths: [/var/lib/qe-packets/store]',
      '  capacity: 90%',
      '  flush_interval: 2s   # keep',
      '',
    ].join('\n');
    const s = { paths: ['/srv/qe-packets/store0', '/srv/qe-packets/store1'], capacity: '10TB', file_size: '1GiB', mode: 'circular' as const };
    const out = setStorage(old, 'c.yaml', s);
    expect(out).toContain('# appliance 7, rack B');
    expect(out).toContain('interfaces: [ eth1, eth2 ] # the tap');
    expect(out).toContain('flush_interval: 2s # keep');
    const c = parseConfigText(out, 'c.yaml');
    expect(c.storage).toMatchObject({ paths: s.paths, capacity: { bytes: 10e12 }, fileSizeBytes: GiB, mode: 'circular', flushIntervalMs: 2000 });
    expect(c.capture.interfaces.map((i) => i.name)).toEqual(['eth1', 'eth2']);
    expect(setStorage(out, 'c.yaml', s)).toBe(out);
    const fresh = setStorage('', 'new.yaml', s);
    expect(parseConfigText(fresh, 'new.yaml').storage.paths).toEqual(s.paths);
    // A result the daemon would refuse is never written.
    expect(() => setStorage('storage:\n  fsync: maybe\n', 'bad.yaml', s)).toThrow(/storage.fsync/);
  });
});

describe('the command, from an inventory file', () => {
  it('plans for a box before it arrives: text and --json with the documented keys; --inventory with --yes is refused', async () => {
    const dir = await tempDir();
    const inv = join(dir, 'box.json');
    await writeFile(
      inv,
      JSON.stringify({
        blockdevices: [
          { name: 'sda', size: 480103981056, type: 'disk', pttype: 'gpt', children: [{ name: 'sda1', size: 480102932480, type: 'part', mountpoints: ['/'] }] },
          ...['sdb', 'sdc', 'sdd', 'sde'].map((name) => ({ name, size: HDD4, type: 'disk', model: 'HGST HUS726T4TAL' })),
        ],
      }),
    );
    const text = await cli(['provision', 'storage', '--profile', '10TB', '--inventory', inv]);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toMatch(/capacity: {2}10TB/);
    expect(text.stdout).toMatch(/file_size: 1GiB {3}\(9313 files\)/);
    expect(text.stdout).toMatch(/retention: {2}about 2\.2 h at 10Gbps/);
    expect(text.stdout).toContain('Nothing changed. Run again with --yes');

    const json = await cli(['provision', 'storage', '--profile', '10TB', '--inventory', inv, '--json', '--rate', '1Gbps']);
    expect(json.exitCode).toBe(0);
    const plan = JSON.parse(json.stdout);
    for (const key of ['disks', 'layout', 'usableBytes', 'capacity', 'fileSize', 'fileCount']) expect(plan).toHaveProperty(key);
    expect(plan).toMatchObject({ capacity: '10TB', capacityBytes: 10e12, fileSize: '1GiB', fileCount: 9313, retentionSeconds: 80000, raid: 'none' });
    expect(plan.disks.map((d: { path: string }) => d.path)).toEqual(['/dev/sdb', '/dev/sdc', '/dev/sdd', '/dev/sde']);

    const bad = await cli(['provision', 'storage', '--profile', '15TB', '--inventory', inv]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('--profile 15TB: not a profile; use 10TB, 20TB, 40TB or custom:SIZE');
    const yes = await cli(['provision', 'storage', '--profile', '10TB', '--inventory', inv, '--yes']);
    expect(yes.exitCode).toBe(1);
    expect(yes.stderr).toMatch(/--inventory .* with --yes: a plan from an inventory is for another box/);
    const big = await cli(['provision', 'storage', '--profile', '20TB', '--inventory', inv]);
    expect(big.exitCode).toBe(1);
    expect(big.stderr).toMatch(/refused, nothing changed:\n {2}--profile 20TB: needs 20TB/);
    const missing = await cli(['provision', 'storage', '--profile', '10TB', '--inventory', join(dir, 'nope.json')]);
    expect(missing.stderr).toMatch(/--inventory .*nope\.json: cannot be read \(ENOENT\)/);
  });

  it('reads lsblk JSON as util-linux prints it, strings and old MOUNTPOINT column included', () => {
    const inv = parseInventory('{"blockdevices":[{"name":"sdb","size":"4000787030016","type":"disk","rota":"1","mountpoint":null}]}', 'old-lsblk');
    expect(inv.devices[0]).toMatchObject({ path: '/dev/sdb', sizeBytes: HDD4, rotational: true, mountpoints: [] });
    expect(() => parseInventory('{"blockdevices":[{"name":"sdb"}]}', 'x.json')).toThrow(/x\.json: blockdevices\.0\.size: .*lsblk --json --bytes/);
  });
});

describe('profile max (first boot on disks it does not know)', () => {
  it('takes all the disks hold after headroom, in whole GB, and says so in storage.capacity', () => {
    const p = planStorage(box([HDD4, HDD4]), opts('max'));
    checkInvariants(p);
    expect(p.capacityBytes % 1e9).toBe(0);
    expect(p.maxCapacityBytes - p.capacityBytes).toBeLessThan(1e9);
    expect(p.capacity).toBe(`${p.capacityBytes / 1e9}GB`);
    expect(parseConfigText(`storage: {capacity: ${p.capacity}}`, 't').storage.capacity).toEqual({ bytes: p.capacityBytes });
  });

  it('is refused with no disk to use', () => {
    expect(refusal(() => planStorage(box([]), opts('max')))).toMatch(/--profile max: no disk to provision/);
  });
});
