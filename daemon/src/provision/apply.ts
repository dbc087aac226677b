// Carries out a storage plan: checks every disk again on the device itself before anything
// changes, then wipes (--force), builds the md array, makes the filesystems, mounts them, writes
// fstab entries by UUID and the storage section of the config. Every step looks first and acts
// only when needed, so running it on a provisioned box changes nothing.
import { constants } from 'node:fs';
import { appendFile, mkdir, open, readdir, readFile, stat, statfs } from 'node:fs/promises';
import { execa } from 'execa';
import { setStorage, writeStorageConfig } from './config-writer.js';
import { writeFstab } from './fstab.js';
import { ProvisionError } from './options.js';
import { MOUNT_OPTIONS, fstabLine, type PlannedFilesystem, type StoragePlan } from './plan.js';

export interface ApplyOptions {
  configPath: string;
  fstabPath: string;
  mdadmConfPath: string;
  force: boolean;
  log?: (line: string) => void;
}

export interface AppliedFilesystem {
  label: string;
  device: string;
  uuid: string;
  mountPoint: string;
  sizeBytes: number;
  availBytes: number;
}

export interface ApplyResult {
  /** What was done, one line each; empty when the box was already as planned. */
  changes: string[];
  filesystems: AppliedFilesystem[];
  warnings: string[];
}

async function run(argv: string[], log: (l: string) => void): Promise<string> {
  log(`$ ${argv.join(' ')}`);
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.exitCode}): ${(r.all ?? '').trim()}`);
  return r.stdout;
}

/** Every signature wipefs finds on the device (blkid -p reports only the first). */
export async function signaturesOn(path: string): Promise<string[]> {
  const r = await execa('wipefs', ['--json', path], { reject: false });
  if (r.exitCode !== 0) throw new Error(`wipefs --json ${path} failed: ${r.stderr.trim()}`);
  if (!r.stdout.trim()) return [];
  const j = JSON.parse(r.stdout) as { signatures?: { type?: string; offset?: string }[] };
  return (j.signatures ?? []).map((s) => `${s.type ?? '?'} at ${s.offset ?? '?'}`);
}

/** EBUSY when the kernel holds the device: mounted, an array member, a device-mapper target. */
async function busy(path: string): Promise<string | undefined> {
  try {
    const fh = await open(path, constants.O_RDONLY | constants.O_EXCL);
    await fh.close();
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EBUSY' ? 'is in use (the kernel holds it: mounted, in an array or used by device-mapper)' : `cannot be opened (${code})`;
  }
}

interface MountInfo {
  dev: string;
  mountPoint: string;
}
async function mounts(): Promise<MountInfo[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' '))
    .map((f) => ({ dev: f[2]!, mountPoint: f[4]!.replace(/\\040/g, ' ') }));
}
async function devNumber(path: string): Promise<string> {
  const rdev = (await stat(path)).rdev;
  return `${Math.floor(rdev / 256) & 0xfff}:${(rdev & 0xff) | ((Math.floor(rdev / 4096) & 0xfff00))}`;
}

async function probeUuid(device: string): Promise<string> {
  const r = await execa('blkid', ['-p', '-s', 'UUID', '-o', 'value', device], { reject: false });
  const uuid = r.stdout.trim();
  if (!uuid) throw new Error(`${device}: no filesystem UUID found after mkfs (blkid -p)`);
  return uuid;
}

function storageSettings(plan: StoragePlan) {
  return { paths: plan.paths, capacity: plan.capacity, file_size: plan.fileSize, mode: plan.mode };
}

async function preflight(plan: StoragePlan, opts: ApplyOptions): Promise<void> {
  // The config must take the new storage section before any disk is touched (throws ConfigError).
  setStorage(await readFile(opts.configPath, 'utf8').catch(() => ''), opts.configPath, storageSettings(plan));
  const problems: string[] = [];
  if (plan.layout.mdadm) {
    if (!(await stat('/proc/mdstat').then(() => true, () => false)))
      problems.push(`--raid ${plan.raid}: this kernel has no md driver (no /proc/mdstat); fix: load it (modprobe raid${plan.raid === '10' ? '10' : plan.raid === '6' ? '456' : '0'}), or use --raid none`);
    if (await stat(plan.layout.device!).then(() => true, () => false))
      problems.push(`--raid ${plan.raid}: ${plan.layout.device} exists already but is not on these disks; fix: stop it (mdadm --stop ${plan.layout.device}) or name its member disks with --disks`);
  }
  for (const d of plan.disks) {
    if (d.state === 'ours') continue;
    const b = await busy(d.path);
    if (b) {
      problems.push(`--disks ${d.path}: ${b}; fix: unmount it and stop what uses it, or choose another disk`);
      continue;
    }
    const sigs = await signaturesOn(d.path);
    if (sigs.length && !opts.force) problems.push(`--disks ${d.path}: carries signatures (${sigs.join(', ')}); fix: choose another disk, or pass --force to erase them`);
  }
  const mounted = await mounts();
  for (const f of plan.filesystems) {
    const there = mounted.filter((m) => m.mountPoint === f.mountPoint);
    if (f.exists && there.length) {
      const dev = await devNumber(f.device).catch(() => '');
      if (there.some((m) => m.dev !== dev)) problems.push(`${f.mountPoint}: something else is mounted there; fix: unmount it, or choose another --mount-base`);
      continue;
    }
    if (there.length) {
      problems.push(`${f.mountPoint}: something is already mounted there; fix: unmount it, or choose another --mount-base`);
      continue;
    }
    const entries = await readdir(f.mountPoint).catch(() => []);
    if (entries.length) problems.push(`${f.mountPoint}: exists and is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ' …' : ''}): the mount would hide those files; fix: move them away, or choose another --mount-base`);
  }
  if (problems.length) throw new ProvisionError(problems);
}

export async function applyPlan(plan: StoragePlan, opts: ApplyOptions): Promise<ApplyResult> {
  const log = opts.log ?? (() => {});
  const changes: string[] = [];
  const warnings: string[] = [];
  await preflight(plan, opts);

  for (const d of plan.disks.filter((x) => x.state === 'wipe')) {
    await run(['wipefs', '-a', d.path], log);
    changes.push(`wiped ${d.path}`);
  }

  const fsDevice = new Map<PlannedFilesystem, string>(plan.filesystems.map((f) => [f, f.device]));
  if (plan.layout.mdadm) {
    await run(plan.layout.mdadm, log);
    changes.push(`created md RAID ${plan.raid} ${plan.layout.device} over ${plan.disks.map((d) => d.path).join(', ')}`);
    const brief = (await run(['mdadm', '--detail', '--brief', plan.layout.device!], log)).trim();
    const uuid = /UUID=(\S+)/.exec(brief)?.[1];
    const conf = await readFile(opts.mdadmConfPath, 'utf8').catch(() => '');
    if (uuid && !conf.includes(uuid)) {
      await mkdir(opts.mdadmConfPath.replace(/\/[^/]*$/, '') || '/', { recursive: true });
      await appendFile(opts.mdadmConfPath, `${conf && !conf.endsWith('\n') ? '\n' : ''}${brief}\n`);
      changes.push(`added the array to ${opts.mdadmConfPath}`);
    }
  }

  for (const f of plan.filesystems) {
    if (f.exists) continue;
    await run(f.mkfs, log);
    changes.push(`made XFS ${f.label} on ${f.device}`);
  }

  const applied: AppliedFilesystem[] = [];
  for (const f of plan.filesystems) {
    const device = fsDevice.get(f)!;
    const uuid = await probeUuid(device);
    await mkdir(f.mountPoint, { recursive: true });
    const dev = await devNumber(device);
    const here = (await mounts()).some((m) => m.mountPoint === f.mountPoint && m.dev === dev);
    if (!here) {
      // The empty mount point is made immutable: should the disk ever fail to mount (nofail lets
      // the box boot without it), nothing can write captures into the root filesystem instead.
      const guard = await execa('chattr', ['+i', f.mountPoint], { reject: false });
      if (guard.exitCode !== 0) warnings.push(`${f.mountPoint}: could not make the empty mount point immutable (${guard.stderr.trim()}); without its disk, writes would land on the filesystem below`);
      await run(['mount', '-t', 'xfs', '-o', MOUNT_OPTIONS, device, f.mountPoint], log);
      changes.push(`mounted ${f.label} (UUID=${uuid}) at ${f.mountPoint}`);
    }
    // The service runs as qe-packets (see the unit): the store must be its own, as the package's is.
    const service = await execa('id', ['-u', 'qe-packets'], { reject: false });
    if (service.exitCode === 0) {
      const uid = Number(service.stdout.trim());
      const gid = Number((await execa('id', ['-g', 'qe-packets'])).stdout.trim());
      const st = await stat(f.mountPoint);
      if (st.uid !== uid || st.gid !== gid || (st.mode & 0o777) !== 0o750) {
        await execa('chown', [`${uid}:${gid}`, f.mountPoint]);
        await execa('chmod', ['0750', f.mountPoint]);
        changes.push(`${f.mountPoint}: owned by qe-packets (mode 0750)`);
      }
    }
    const s = await statfs(f.mountPoint);
    applied.push({ label: f.label, device, uuid, mountPoint: f.mountPoint, sizeBytes: s.blocks * s.bsize, availBytes: s.bavail * s.bsize });
  }

  const fstabChanges = await writeFstab(
    opts.fstabPath,
    applied.map((a) => ({ uuid: a.uuid, mountPoint: a.mountPoint, line: fstabLine(a.uuid, a.mountPoint) })),
  );
  changes.push(...fstabChanges.map((c) => `${opts.fstabPath}: ${c}`));

  if (await writeStorageConfig(opts.configPath, storageSettings(plan)))
    changes.push(`${opts.configPath}: storage set to ${plan.paths.length} path(s), capacity ${plan.capacity}, file_size ${plan.fileSize}, mode ${plan.mode}`);

  // The estimate against the real filesystems: the capacity must leave the headroom free.
  const room = applied.reduce((s, a, i) => s + Math.max(0, a.availBytes - plan.filesystems[i]!.headroomBytes), 0);
  const used = applied.reduce((s, a) => s + (a.sizeBytes - a.availBytes), 0);
  if (plan.capacityBytes > room + used)
    warnings.push(`the filesystems hold less than estimated: storage.capacity ${plan.capacity} leaves less than the planned headroom; lower it to ${Math.floor((room + used) / 1e9)}GB`);
  return { changes, filesystems: applied, warnings };
}
