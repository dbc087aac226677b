// Stage 1 of the appliance pipeline: the base raw disk (Debian 12, both boot paths, Node.js).
// Stage 2 (Packer + Ansible, provisioning the appliance into a copy of this disk) and stage 3
// (the OVA / qcow2 / img.zst outputs) take the path this returns.
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, rmdir, writeFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { findMirrors, DISK_SIZE_MIB, PACKAGES } from './config.js';
import { baseInputs, hashInputs, repoRoot } from './cache.js';
import { Cleanup, killRunning, log, sh, timed } from './log.js';
import { createDiskFile, attachAndFormat, mount } from './disk.js';
import { debootstrapCached, mountChrootFs, writeAptSources, aptInstall, enterBuildMode, leaveBuildMode, chroot } from './debootstrap.js';
import { installNode } from './node.js';
import { NODE, nodeTarball } from '../../package/src/node-runtime.js';
import { preseedGrub, writeGrubDefaults, installGrub } from './bootloader.js';
import { writeFstab, writeIdentity, addInitramfsModules, configureNetwork, addBootReport, secure, clean } from './rootfs.js';

export interface BaseImage {
  path: string;
  hash: string;
  cached: boolean;
}

export function imageDir(): string {
  return join(repoRoot(), 'build/image');
}

const REQUIRED_TOOLS = ['debootstrap', 'sgdisk', 'losetup', 'mkfs.vfat', 'mkfs.ext4', 'blkid', 'mcopy', 'mdir', 'chroot', 'mount', 'fstrim', 'npm', 'tar'];

async function checkHost(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error('building the base image needs root (loop devices, mounts, chroot): run it as root, e.g. sudo npm run image:base');
  }
  const missing: string[] = [];
  for (const t of REQUIRED_TOOLS) {
    if (!(await sh`command -v ${t}`.then(() => true, () => false))) missing.push(t);
  }
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')}; run scripts/install-deps (it installs the image build's apt packages)`);
}

export async function buildBase(opts: { rebuild?: boolean } = {}): Promise<BaseImage> {
  await checkHost();
  const mirrors = findMirrors();
  const inputs = baseInputs(mirrors);
  const hash = hashInputs(inputs);
  const dir = imageDir();
  const path = join(dir, `base-${hash}.raw`);
  await mkdir(dir, { recursive: true });
  if (existsSync(path) && !opts.rebuild) {
    log(`base image up to date: ${path}`);
    return { path, hash, cached: true };
  }
  log(`building base image ${hash} from ${mirrors.debian} (security: ${mirrors.security})`);
  const t0 = Date.now();
  const nodeTgz = await timed('fetch Node.js', () => nodeTarball());

  const tmp = `${path}.partial`;
  const mnt = join(dir, `mnt-${hash}`);
  const cleanup = new Cleanup();
  // `on`, not `once`: execa's exit hook re-raises a signal nobody else listens to, which would
  // kill the process before the unmounts ran.
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: stopping, unmounting and detaching`);
    killRunning();
    void cleanup
      .runAll()
      .then(() => rm(tmp, { force: true }))
      .then(() => rmdir(mnt))
      .catch(() => undefined)
      .then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await createDiskFile(tmp, DISK_SIZE_MIB);
    const disk = await attachAndFormat(tmp, cleanup);
    await mount(disk.rootPart, mnt, cleanup);
    await timed('debootstrap', () => debootstrapCached(mnt, mirrors, join(dir, 'cache')));
    // The ESP is not mounted here: it is filled with mtools (bootloader.ts); the directory is its
    // mount point in the appliance.
    await mkdir(join(mnt, 'boot/efi'), { recursive: true });
    await mountChrootFs(mnt, cleanup);
    await enterBuildMode(mnt);
    await writeAptSources(mnt, mirrors);
    await writeFstab(mnt, disk);
    await writeIdentity(mnt);
    await timed('apt-get update', () => chroot(mnt, ['apt-get', 'update', '-q']));
    // debootstrap takes the release suite only: updates and security fixes come from here.
    await timed('apt-get dist-upgrade', () =>
      chroot(mnt, ['apt-get', 'dist-upgrade', '-y', '-q', '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold']),
    );
    // initramfs-tools first, so its module list carries the VMware drivers before the kernel's
    // postinst builds the initramfs.
    await aptInstall(mnt, ['initramfs-tools']);
    await addInitramfsModules(mnt);
    await preseedGrub(mnt);
    await writeGrubDefaults(mnt);
    await timed(`apt-get install (${PACKAGES.length} packages)`, () => aptInstall(mnt, PACKAGES));
    await timed('Node.js', async () => {
      await installNode(mnt, nodeTgz);
      const v = await chroot(mnt, ['/usr/local/bin/node', '--version']);
      if (v !== `v${NODE.version}`) throw new Error(`node in the image reports ${v}, expected v${NODE.version}`);
    });
    await verifyInitramfs(mnt);
    await configureNetwork(mnt);
    await addBootReport(mnt);
    await secure(mnt);
    await timed('grub (i386-pc and x86_64-efi)', () => installGrub(mnt, disk, cleanup));
    await leaveBuildMode(mnt);
    await clean(mnt);
    await writeFile(join(mnt, 'etc/qe-packets-base'), `${JSON.stringify({ hash, built: new Date().toISOString(), ...inputs }, null, 1)}\n`);
    // Hands the free blocks back to the sparse file: smaller copies and compressed outputs.
    await sh`fstrim ${mnt}`;
    await cleanup.runAll();
    await rename(tmp, path);
  } catch (e) {
    await cleanup.runAll();
    await rm(tmp, { force: true });
    throw e;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    // rmdir, never a recursive delete: were an unmount to have failed, a recursive delete would go
    // through the bind-mounted /dev of the build host.
    await rmdir(mnt).catch(() => undefined);
  }
  await pruneOldBases(path);
  const used = (await stat(path)).blocks * 512;
  log(`base image ${path} built in ${((Date.now() - t0) / 1000).toFixed(0)} s (${(used / 2 ** 20).toFixed(0)} MiB allocated of ${DISK_SIZE_MIB} MiB)`);
  return { path, hash, cached: false };
}

/** The drivers VMware's virtual hardware needs must be in the initramfs, or the root disk behind a
 * PVSCSI controller is never found. */
async function verifyInitramfs(root: string): Promise<void> {
  const list = await chroot(root, ['sh', '-c', 'lsinitramfs /boot/initrd.img-*']);
  for (const m of ['vmw_pvscsi.ko', 'vmxnet3.ko']) {
    if (!list.split('\n').some((l) => l.endsWith(`/${m}`) || l.endsWith(`/${m}.xz`) || l.endsWith(`/${m}.zst`))) {
      throw new Error(`${m} is not in the image's initramfs: check INITRAMFS_MODULES in image/src/config.ts`);
    }
  }
}

/** Keeps only the newest base: each is 1-2 GB allocated. */
async function pruneOldBases(keep: string): Promise<void> {
  const dir = imageDir();
  for (const f of await readdir(dir)) {
    if (/^base-[0-9a-f]{16}\.raw$/.test(f) && join(dir, f) !== keep) {
      await rm(join(dir, f), { force: true });
      log(`removed old base ${f}`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rebuild = process.argv.includes('--rebuild') || process.env.QE_IMAGE_REBUILD === '1';
  buildBase({ rebuild }).then(
    (b) => process.stdout.write(`${b.path}\n`),
    (e: Error) => {
      process.stderr.write(`image:base failed: ${e.message}\n`);
      process.exit(1);
    },
  );
}
