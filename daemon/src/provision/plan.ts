// The storage plan: a pure function of (inventory, options). Which disks, which layout, which
// filesystems where, how much they hold, what storage.capacity becomes, how long that lasts.
// No I/O here, so every sizing decision is testable without root or disks.
import { formatSize, formatSizeBoth as both } from '../config/units.js';
import type { BlockDevice, Inventory } from './inventory.js';
import { ProvisionError, type Profile, type RaidLevel } from './options.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

// XFS overhead, measured with mkfs.xfs 6.1 (-m reflink=0) on sparse loop devices of 1 GiB,
// 64 GiB and 1 TiB: the log is raw/2048 clamped to 64 MiB..2 GiB (it is not counted in the
// filesystem's size), and allocation-group headers, free-space and inode btrees take 0.10-0.15%
// more on 64 GiB and up (3% on 1 GiB). The estimate reserves the log, 1% and 32 MiB, which is
// below what mkfs really leaves at every size measured; `apply` measures the real filesystems.
export const XFS_MIN_BYTES = 300 * MiB;
export function xfsLogBytes(rawBytes: number): number {
  return Math.min(2 * GiB, Math.max(64 * MiB, Math.floor(rawBytes / 2048)));
}
export function xfsUsableBytes(rawBytes: number): number {
  return Math.max(0, Math.floor(rawBytes - xfsLogBytes(rawBytes) - rawBytes * 0.01 - 32 * MiB));
}

// Room kept free on every filesystem beyond the capacity, so circular retention never runs a
// filesystem to ENOSPC: 5% of it, and at least two files (the daemon deletes the oldest when a
// filesystem has less than two files of room; XFS also slows down when nearly full).
export const HEADROOM_SHARE = 0.05;
export function headroomBytes(usable: number, fileSizeBytes: number): number {
  return Math.max(Math.ceil(usable * HEADROOM_SHARE), 2 * fileSizeBytes);
}

// md: version 1.2 superblock with the data offset mdadm picks for large members (128 MiB);
// 512 KiB chunks (mdadm's default): a 1 GiB capture file is 2048 full chunks.
export const MD_DATA_OFFSET = 128 * MiB;
export const MD_CHUNK = 512 * 1024;
export const MD_NAME = 'qe-store';
export const MD_DEVICE = `/dev/md/${MD_NAME}`;
export const LABEL_PREFIX = 'qe-store-';

// Mount options for large sequential files written by few writers:
//  noatime        reading files (extraction, tshark) writes no metadata
//  inode64        inodes anywhere on the disk (the default since Linux 3.7; explicit for old kernels)
//  largeio        st_blksize reports the stripe width (or allocsize), so readers use large I/O
//  allocsize=64m  buffered appends (partial blocks at each flush, imports) preallocate 64 MiB:
//                 files stay in few extents while several interfaces write side by side
//  logbsize=256k  larger log buffers: fewer log writes for file creates, renames and deletes
export const MOUNT_OPTIONS = 'noatime,inode64,largeio,allocsize=64m,logbsize=256k';
//  nofail and a short device timeout: a dead capture disk does not stop the box from booting
export const FSTAB_OPTIONS = `${MOUNT_OPTIONS},nofail,x-systemd.device-timeout=30s`;

export interface PlanOptions {
  profile: Profile;
  disks: 'auto' | string[];
  /** Undefined: keep an existing qe-packets layout, else the profile's default. */
  raid?: RaidLevel | undefined;
  fileSize: { text: string; bytes: number };
  mode: 'circular' | 'linear';
  rate: { text: string; bitsPerSecond: number };
  force: boolean;
  mountBase: string;
}

export interface PlannedDisk {
  path: string;
  sizeBytes: number;
  model: string | null;
  /** blank; ours (already a qe-packets filesystem or array member); wipe (signatures erased, --force) */
  state: 'blank' | 'ours' | 'wipe';
  note?: string;
}

export interface PlannedFilesystem {
  label: string;
  /** The disk, or the md array. */
  device: string;
  members: string[];
  rawBytes: number;
  usableBytes: number;
  headroomBytes: number;
  mountPoint: string;
  /** Already made by an earlier run (mkfs is skipped). */
  exists: boolean;
  uuid: string | null;
  mkfs: string[];
}

export interface Layout {
  raid: RaidLevel;
  kind: 'filesystem-per-disk' | 'md-raid';
  description: string;
  chunkBytes: number | null;
  /** Disks whose capacity holds data (not mirror or parity): XFS stripe width. */
  dataDisks: number;
  device: string | null;
  mdadm: string[] | null;
  existing: boolean;
}

export interface StoragePlan {
  profile: string;
  raid: RaidLevel;
  raidReason: string;
  disks: PlannedDisk[];
  excluded: { path: string; reason: string }[];
  layout: Layout;
  filesystems: PlannedFilesystem[];
  filesystem: { type: 'xfs'; mountOptions: string; fstabOptions: string };
  rawBytes: number;
  usableBytes: number;
  headroomBytes: number;
  /** The most storage.capacity these filesystems take with the headroom kept. */
  maxCapacityBytes: number;
  capacity: string;
  capacityBytes: number;
  fileSize: string;
  fileSizeBytes: number;
  fileCount: number;
  mode: 'circular' | 'linear';
  paths: string[];
  rate: string;
  rateBitsPerSecond: number;
  retentionSeconds: number;
  fstab: string[];
  /** Every filesystem already exists: apply only checks mounts, fstab and config. */
  provisioned: boolean;
  notes: string[];
}

const RAID_REASONS: Record<RaidLevel, string> = {
  none: 'one XFS per disk (your choice): no RAID write penalty, a lost disk loses only its own files',
  '0': 'RAID 0 (your choice): one filesystem striped over every disk, full capacity, but one lost disk loses every capture',
  '10': 'RAID 10 (your choice): striped mirrors, survives one lost disk per pair, half the raw capacity',
  '6': 'RAID 6 (your choice): survives two lost disks; two disks of parity, partial-stripe writes cost a read-modify-write, and rebuilds at these sizes take a day',
};
const MIN_DISKS: Record<Exclude<RaidLevel, 'none'>, number> = { '0': 2, '10': 4, '6': 4 };

function mountsOf(d: BlockDevice): string[] {
  return [...d.mountpoints, ...d.children.flatMap(mountsOf)];
}

type DiskKind =
  | { kind: 'blank' }
  | { kind: 'ours-disk'; index: number }
  | { kind: 'ours-member'; md: BlockDevice }
  | { kind: 'signature'; what: string }
  | { kind: 'busy'; why: string };

function classify(d: BlockDevice): DiskKind {
  const label = d.label ? new RegExp(`^${LABEL_PREFIX}(\\d+)$`).exec(d.label) : null;
  if (d.fstype === 'xfs' && label && d.children.length === 0) return { kind: 'ours-disk', index: Number(label[1]) };
  const md = d.children.find((c) => c.type.startsWith('raid') && c.label === `${LABEL_PREFIX}0` && c.fstype === 'xfs');
  if (d.fstype === 'linux_raid_member' && md && d.children.length === 1) return { kind: 'ours-member', md };
  const mounts = mountsOf(d);
  if (mounts.length) return { kind: 'busy', why: `is mounted (${mounts.join(', ')})` };
  const holders = d.children.filter((c) => c.type !== 'part');
  if (holders.length) return { kind: 'busy', why: `is in use by ${holders.map((h) => `${h.path} (${h.type})`).join(', ')}` };
  if (d.fstype === 'swap') return { kind: 'signature', what: 'a swap signature' };
  const what = [
    d.pttype ? `a ${d.pttype} partition table` : '',
    d.children.length ? `partitions (${d.children.map((c) => c.name).join(', ')})` : '',
    d.fstype ? `a signature (${d.fstype}${d.label ? `, label ${d.label}` : ''})` : '',
  ].filter(Boolean);
  if (what.length) return { kind: 'signature', what: what.join(' and ') };
  return { kind: 'blank' };
}


function findDevice(inv: Inventory, path: string): { device?: BlockDevice; parent?: BlockDevice } {
  const walk = (list: BlockDevice[], parent?: BlockDevice): { device?: BlockDevice; parent?: BlockDevice } => {
    for (const d of list) {
      if (d.path === path || `/dev/${d.name}` === path) return { device: d, ...(parent ? { parent } : {}) };
      const inner = walk(d.children, d);
      if (inner.device) return inner;
    }
    return {};
  };
  return walk(inv.devices);
}

interface Chosen {
  d: BlockDevice;
  k: DiskKind;
}

/** What a plan found wrong (each a problem with its fix) and worth saying; thrown together at the end. */
interface Findings {
  problems: string[];
  notes: string[];
}

/** --disks auto: every whole, writable, fixed disk that is blank or ours; the rest excluded with the reason. */
function chooseAutoDisks(inv: Inventory, f: Findings): { chosen: Chosen[]; excluded: StoragePlan['excluded'] } {
  const excluded: StoragePlan['excluded'] = [];
  const chosen: Chosen[] = [];
  for (const d of inv.devices) {
    const k = classify(d);
    const skip =
      d.type !== 'disk' ? `a ${d.type} device (name it with --disks to use it)`
      : d.sizeBytes === 0 ? 'has no capacity'
      : d.readOnly ? 'is read-only'
      : d.removable ? 'is removable'
      : k.kind === 'busy' ? k.why
      : k.kind === 'signature' ? `carries ${k.what} (name it with --disks and --force to erase it)`
      : undefined;
    if (skip) excluded.push({ path: d.path, reason: skip });
    else chosen.push({ d, k });
  }
  if (!chosen.length)
    f.problems.push(`--disks auto: no free disk in ${inv.source}${excluded.length ? ` (${excluded.map((e) => `${e.path} ${e.reason}`).join('; ')})` : ''}; fix: add disks, or name them with --disks`);
  return { chosen, excluded };
}

/** --disks named: each must be a whole, writable, unused disk (one with a signature only with --force). */
function chooseNamedDisks(inv: Inventory, names: string[], force: boolean, f: Findings): Chosen[] {
  const chosen: Chosen[] = [];
  for (const p of names) {
    const { device, parent } = findDevice(inv, p);
    if (!device) {
      f.problems.push(`--disks ${p}: no such device in ${inv.source}; fix: use one of ${inv.devices.filter((d) => d.sizeBytes > 0).map((d) => d.path).join(', ') || '(none found)'}`);
      continue;
    }
    if (parent) {
      f.problems.push(`--disks ${p}: is ${device.type === 'part' ? 'a partition' : `a ${device.type} device`} of ${parent.path}; fix: name whole disks (the store takes the whole disk)`);
      continue;
    }
    if (device.readOnly) {
      f.problems.push(`--disks ${p}: is read-only; fix: choose another disk`);
      continue;
    }
    const k = classify(device);
    if (k.kind === 'busy') f.problems.push(`--disks ${p}: ${k.why}; fix: unmount it and stop what uses it, or choose another disk (--force does not override this)`);
    else if (k.kind === 'signature' && !force)
      f.problems.push(`--disks ${p}: carries ${k.what}; fix: choose another disk, or pass --force to erase it (wipefs -a): everything on it is lost`);
    chosen.push({ d: device, k });
  }
  return chosen;
}

/** The layout: as asked, else what an earlier run made, else the profile's default. */
function chooseRaid(opts: PlanOptions, chosen: Chosen[], oursMembers: Chosen[]): { raid: RaidLevel; raidReason: string } {
  if (opts.raid) return { raid: opts.raid, raidReason: opts.raid === opts.profile.defaultRaid ? opts.profile.raidReason : RAID_REASONS[opts.raid] };
  if (oursMembers.length && oursMembers.length === chosen.length) {
    const md = (oursMembers[0]!.k as { md: BlockDevice }).md;
    const raid = md.type.replace(/^raid/, '') as RaidLevel;
    return { raid, raidReason: `RAID ${raid}: kept from the existing qe-packets array ${md.path}` };
  }
  return { raid: opts.profile.defaultRaid, raidReason: opts.profile.raidReason };
}

/**
 * Disks made by an earlier run in another layout count as signatures: changing the layout erases
 * the captures on them. Our own filesystems may be mounted only where this plan mounts them.
 */
function checkEarlierLayout(chosen: Chosen[], oursMembers: Chosen[], raid: RaidLevel, opts: PlanOptions, f: Findings): void {
  const wantMember = raid !== 'none';
  for (const c of chosen) {
    const mismatch =
      (c.k.kind === 'ours-disk' && wantMember) ||
      (c.k.kind === 'ours-member' && (!wantMember || c.k.md.type !== `raid${raid}` || oursMembers.length !== chosen.length));
    if (!mismatch) continue;
    const what = c.k.kind === 'ours-disk' ? `a qe-packets filesystem (${c.d.label})` : `a member of the qe-packets array ${(c.k as { md: BlockDevice }).md.path}`;
    if (c.k.kind === 'ours-member' && mountsOf(c.d).length) {
      f.problems.push(`--disks ${c.d.path}: is ${what}, mounted; fix: keep --raid ${(c.k as { md: BlockDevice }).md.type.replace(/^raid/, '')} and the same disks, or unmount and stop the array first`);
      continue;
    }
    if (c.k.kind === 'ours-disk' && mountsOf(c.d).length) {
      f.problems.push(`--disks ${c.d.path}: is ${what}, mounted; fix: keep --raid none, or unmount it first to re-provision`);
      continue;
    }
    if (!opts.force) f.problems.push(`--disks ${c.d.path}: is ${what} but --raid ${raid} asks for another layout; fix: keep the existing layout, or pass --force to erase its captures and rebuild`);
    c.k = { kind: 'signature', what };
  }
  if (raid === 'none') {
    for (const c of chosen) {
      if (c.k.kind !== 'ours-disk') continue;
      const expected = `${opts.mountBase}/store${c.k.index}`;
      const wrong = c.d.mountpoints.filter((m) => m !== expected);
      if (wrong.length) f.problems.push(`--disks ${c.d.path}: qe-packets filesystem ${c.d.label} is mounted at ${wrong.join(', ')}, not ${expected}; fix: unmount it, or pass the --mount-base it was provisioned with`);
    }
  }
}

function plannedDisks(chosen: Chosen[]): PlannedDisk[] {
  return chosen
    .map(({ d, k }) => ({
      path: d.path,
      sizeBytes: d.sizeBytes,
      model: d.model,
      state: k.kind === 'ours-disk' || k.kind === 'ours-member' ? ('ours' as const) : k.kind === 'blank' ? ('blank' as const) : ('wipe' as const),
      ...(k.kind === 'signature' ? { note: `carries ${k.what}` } : {}),
    }))
    .sort((a, b) => a.path.localeCompare(b.path, 'en', { numeric: true }));
}

const mkfsBase = (label: string, force: boolean) => ['mkfs.xfs', '-q', '-L', label, '-m', 'reflink=0', ...(force ? ['-f'] : [])];

/** --raid none: one XFS per disk, keeping the index (and so the mount point) of each one already made. */
function perDiskLayout(chosen: Chosen[], opts: PlanOptions, f: Findings): { filesystems: PlannedFilesystem[]; layout: Layout } {
  const filesystems: PlannedFilesystem[] = [];
  const used = new Set(chosen.flatMap((c) => (c.k.kind === 'ours-disk' ? [c.k.index] : [])));
  let next = 0;
  const indexFor = (c: { k: DiskKind }) => {
    if (c.k.kind === 'ours-disk') return c.k.index;
    while (used.has(next)) next++;
    used.add(next);
    return next;
  };
  const byPath = [...chosen].sort((a, b) => a.d.path.localeCompare(b.d.path, 'en', { numeric: true }));
  for (const c of [...byPath.filter((x) => x.k.kind === 'ours-disk'), ...byPath.filter((x) => x.k.kind !== 'ours-disk')]) {
    const index = indexFor(c);
    const label = `${LABEL_PREFIX}${index}`;
    const exists = c.k.kind === 'ours-disk';
    const usable = xfsUsableBytes(c.d.sizeBytes);
    filesystems.push({
      label,
      device: c.d.path,
      members: [c.d.path],
      rawBytes: c.d.sizeBytes,
      usableBytes: usable,
      headroomBytes: headroomBytes(usable, opts.fileSize.bytes),
      mountPoint: `${opts.mountBase}/store${index}`,
      exists,
      uuid: exists ? c.d.uuid : null,
      mkfs: exists ? [] : [...mkfsBase(label, opts.force), c.d.path],
    });
  }
  filesystems.sort((a, b) => a.mountPoint.localeCompare(b.mountPoint, 'en', { numeric: true }));
  const layout: Layout = {
    raid: 'none',
    kind: 'filesystem-per-disk',
    description: `no RAID: ${filesystems.length} XFS filesystem${filesystems.length === 1 ? '' : 's'}, one per disk, all in storage.paths`,
    chunkBytes: null,
    dataDisks: filesystems.length,
    device: null,
    mdadm: null,
    existing: filesystems.length > 0 && filesystems.every((x) => x.exists),
  };
  if (new Set(chosen.map((c) => c.d.sizeBytes)).size > 1)
    f.notes.push('mixed disk sizes: each filesystem is its own size; the daemon puts each new file where there is most room, so larger disks hold more');
  return { filesystems, layout };
}

/** RAID 0, 10 or 6: one md array (or the one an earlier run made) with one XFS aligned to its stripes. */
function mdLayout(chosen: Chosen[], oursMembers: Chosen[], raid: Exclude<RaidLevel, 'none'>, opts: PlanOptions, f: Findings): { filesystems: PlannedFilesystem[]; layout: Layout } {
  const n = chosen.length;
  const min = MIN_DISKS[raid];
  if (n && (n < min || (raid === '10' && n % 2)))
    f.problems.push(`--raid ${raid}: needs ${raid === '10' ? 'an even number of disks, at least 4' : `at least ${min} disks`}, ${n} given; fix: add disks, or use --raid ${n >= 2 ? '0 or none' : 'none'}`);
  const existingMd = oursMembers.length === n && n > 0 ? (oursMembers[0]!.k as { md: BlockDevice }).md : undefined;
  const minSize = n ? Math.min(...chosen.map((c) => c.d.sizeBytes)) : 0;
  const member = Math.max(0, Math.floor((minSize - MD_DATA_OFFSET) / MD_CHUNK) * MD_CHUNK);
  const dataDisks = raid === '0' ? n : raid === '10' ? Math.floor(n / 2) : Math.max(0, n - 2);
  const arrayBytes = existingMd ? existingMd.sizeBytes : member * dataDisks;
  const label = `${LABEL_PREFIX}0`;
  const members = chosen.map((c) => c.d.path).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const mdadm = [
    'mdadm', '--create', MD_DEVICE, '--run', '--metadata=1.2', `--name=${MD_NAME}`, `--level=${raid}`,
    `--raid-devices=${n}`, `--chunk=${MD_CHUNK / 1024}`, ...(raid === '10' ? ['--layout=n2'] : []), ...members,
  ];
  const usable = xfsUsableBytes(arrayBytes);
  const filesystems: PlannedFilesystem[] = [
    {
      label,
      device: existingMd ? existingMd.path : MD_DEVICE,
      members,
      rawBytes: arrayBytes,
      usableBytes: usable,
      headroomBytes: headroomBytes(usable, opts.fileSize.bytes),
      mountPoint: `${opts.mountBase}/store0`,
      exists: !!existingMd,
      uuid: existingMd?.uuid ?? null,
      mkfs: existingMd ? [] : [...mkfsBase(label, opts.force), '-d', `su=${MD_CHUNK / 1024}k,sw=${dataDisks}`, MD_DEVICE],
    },
  ];
  if (existingMd) {
    const wrong = existingMd.mountpoints.filter((m) => m !== `${opts.mountBase}/store0`);
    if (wrong.length) f.problems.push(`--disks: the qe-packets array ${existingMd.path} is mounted at ${wrong.join(', ')}, not ${opts.mountBase}/store0; fix: unmount it, or pass the --mount-base it was provisioned with`);
  }
  const layout: Layout = {
    raid,
    kind: 'md-raid',
    description: `md RAID ${raid} over ${n} disks (${MD_CHUNK / 1024} KiB chunks, ${dataDisks} data disks), one XFS with su=${MD_CHUNK / 1024}k,sw=${dataDisks}`,
    chunkBytes: MD_CHUNK,
    dataDisks,
    device: existingMd ? existingMd.path : MD_DEVICE,
    mdadm: existingMd ? null : mdadm,
    existing: !!existingMd,
  };
  const wasted = chosen.reduce((sum, c) => sum + (c.d.sizeBytes - minSize), 0);
  if (wasted > 0) f.notes.push(`mixed disk sizes: md uses ${both(minSize)} of each disk; ${both(wasted)} of the larger disks stays unused (--raid none would use it)`);
  if (raid === '6' || raid === '10') f.notes.push(`the array resyncs in the background after creation; capture can start at once but runs slower until the resync ends (cat /proc/mdstat)`);
  return { filesystems, layout };
}

interface Sizing {
  rawBytes: number;
  usableBytes: number;
  headroomBytes: number;
  maxCapacityBytes: number;
  capacityBytes: number;
  capacityText: string;
  /** --profile max: the capacity is all the filesystems hold. */
  fill: boolean;
}

/** The capacity the profile asks for, checked against what the filesystems hold after headroom. */
function sizeCapacity(filesystems: PlannedFilesystem[], disks: PlannedDisk[], raid: RaidLevel, opts: PlanOptions, f: Findings): Sizing {
  const fileSizeBytes = opts.fileSize.bytes;
  for (const fs of filesystems)
    if (!fs.exists && fs.rawBytes < XFS_MIN_BYTES && fs.rawBytes > 0)
      f.problems.push(`--disks ${fs.members.join(',')}: ${both(fs.rawBytes)} is too small for an XFS filesystem (at least ${formatSize(XFS_MIN_BYTES)}); fix: use larger disks`);

  const rawBytes = filesystems.reduce((sum, fs) => sum + fs.rawBytes, 0);
  const usableBytes = filesystems.reduce((sum, fs) => sum + fs.usableBytes, 0);
  const headroom = filesystems.reduce((sum, fs) => sum + fs.headroomBytes, 0);
  const maxCapacityBytes = Math.max(0, filesystems.reduce((sum, fs) => sum + Math.max(0, fs.usableBytes - fs.headroomBytes), 0));
  // `max`: all the disks hold after headroom, in whole GB (what a first boot on unknown disks wants).
  const fill = opts.profile.name === 'max';
  const capacityBytes = fill ? Math.floor(maxCapacityBytes / 1e9) * 1e9 : opts.profile.capacityBytes;
  const capacityText = fill ? `${capacityBytes / 1e9}GB` : opts.profile.capacityText;
  if (fill && !filesystems.length) f.problems.push('--profile max: no disk to provision; fix: name disks with --disks, or add one');
  if (filesystems.length && capacityBytes > maxCapacityBytes) {
    const alternatives = [
      raid !== 'none' ? 'use --raid none or 0' : '',
      'add or use larger disks',
      maxCapacityBytes >= 2 * fileSizeBytes ? `choose a smaller profile (at most custom:${Math.floor(maxCapacityBytes / 1e9)}GB here)` : '',
    ].filter(Boolean);
    f.problems.push(
      `--profile ${opts.profile.name}: needs ${both(capacityBytes)} of capture volume, but ${disks.length} disk${disks.length === 1 ? '' : 's'} (${both(disks.reduce((t, d) => t + d.sizeBytes, 0))} raw) ` +
        `with --raid ${raid} give ${both(usableBytes)} of filesystem, ${both(maxCapacityBytes)} after ${Math.round(HEADROOM_SHARE * 100)}% headroom; fix: ${alternatives.join(', or ')}`,
    );
  }
  if (capacityBytes < 2 * fileSizeBytes)
    f.problems.push(`--file-size ${opts.fileSize.text}: the capacity ${capacityText} holds fewer than two files; fix: lower --file-size or raise --profile`);
  return { rawBytes, usableBytes, headroomBytes: headroom, maxCapacityBytes, capacityBytes, capacityText, fill };
}

export function planStorage(inv: Inventory, opts: PlanOptions): StoragePlan {
  const f: Findings = { problems: [], notes: [] };
  const { chosen, excluded } = opts.disks === 'auto' ? chooseAutoDisks(inv, f) : { chosen: chooseNamedDisks(inv, opts.disks, opts.force, f), excluded: [] };
  const oursMembers = chosen.filter((c) => c.k.kind === 'ours-member');
  const { raid, raidReason } = chooseRaid(opts, chosen, oursMembers);
  checkEarlierLayout(chosen, oursMembers, raid, opts, f);
  const disks = plannedDisks(chosen);
  const { filesystems, layout } = raid === 'none' ? perDiskLayout(chosen, opts, f) : mdLayout(chosen, oursMembers, raid, opts, f);
  const size = sizeCapacity(filesystems, disks, raid, opts, f);
  if (f.problems.length) throw new ProvisionError(f.problems);

  if (!size.fill && size.maxCapacityBytes > size.capacityBytes * 1.1)
    f.notes.push(`the filesystems would take up to ${both(size.maxCapacityBytes)} (--profile custom:${Math.floor(size.maxCapacityBytes / 1e9)}GB); the profile promises ${opts.profile.capacityText}, the rest stays free`);

  return {
    profile: opts.profile.name,
    raid,
    raidReason,
    disks,
    excluded,
    layout,
    filesystems,
    filesystem: { type: 'xfs', mountOptions: MOUNT_OPTIONS, fstabOptions: FSTAB_OPTIONS },
    rawBytes: size.rawBytes,
    usableBytes: size.usableBytes,
    headroomBytes: size.headroomBytes,
    maxCapacityBytes: size.maxCapacityBytes,
    capacity: size.capacityText,
    capacityBytes: size.capacityBytes,
    fileSize: opts.fileSize.text,
    fileSizeBytes: opts.fileSize.bytes,
    fileCount: Math.floor(size.capacityBytes / opts.fileSize.bytes),
    mode: opts.mode,
    paths: filesystems.map((fs) => fs.mountPoint),
    rate: opts.rate.text,
    rateBitsPerSecond: opts.rate.bitsPerSecond,
    retentionSeconds: Math.floor((size.capacityBytes * 8) / opts.rate.bitsPerSecond),
    fstab: filesystems.map((fs) => fstabLine(fs.uuid ?? '<uuid made by mkfs>', fs.mountPoint)),
    provisioned: filesystems.length > 0 && filesystems.every((fs) => fs.exists),
    notes: f.notes,
  };
}

export function fstabLine(uuid: string, mountPoint: string): string {
  return `UUID=${uuid} ${mountPoint} xfs ${FSTAB_OPTIONS} 0 0`;
}
