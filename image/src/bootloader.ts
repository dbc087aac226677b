// GRUB for both firmware types on one disk, as Debian's cloud images do: i386-pc core embedded in
// the BIOS boot partition, and x86_64-efi at the removable-media path \EFI\BOOT\BOOTX64.EFI,
// which every UEFI firmware boots without an NVRAM entry (a VM or a flashed disk has none).
import { existsSync } from 'node:fs';
import { mkdir, writeFile, readdir, rm, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { chroot } from './debootstrap.js';
import { sh, type Cleanup } from './log.js';
import type { Disk } from './disk.js';

/** Serial first in the list for grub, last on the kernel line: the kernel's last console= becomes
 * /dev/console (boot messages, emergency shell), and a serial log is what a headless hypervisor
 * and the boot test see; tty0 still shows everything on a VGA console. */
export const KERNEL_CMDLINE = 'console=tty0 console=ttyS0,115200n8';

/** Answers the grub packages' debconf questions before they are installed. */
export async function preseedGrub(root: string): Promise<void> {
  await chroot(root, ['debconf-set-selections'], [
    // Upgrades of grub-efi-amd64 inside the appliance keep refreshing the removable path.
    'grub-efi-amd64 grub2/force_efi_extra_removable boolean true',
    // No NVRAM writes: the image boots through the removable path on any machine.
    'grub-efi-amd64 grub2/update_nvram boolean false',
    '',
  ].join('\n'));
}

export async function writeGrubDefaults(root: string): Promise<void> {
  await mkdir(join(root, 'etc/default/grub.d'), { recursive: true });
  await writeFile(
    join(root, 'etc/default/grub.d/50-qe-packets.cfg'),
    `# Qe-Packets appliance: serial and VGA consoles, short menu (a headless VM has nobody to choose).
GRUB_TIMEOUT=1
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="${KERNEL_CMDLINE}"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"
GRUB_DISABLE_OS_PROBER=true
`,
  );
}

/** The UEFI image is built with grub-mkimage instead of grub-install: grub-install insists on a
 * mounted FAT ESP, and the build host's kernel may not have vfat (this one does not). The result is
 * what `grub-install --removable --no-uefi-secure-boot` makes: a core image whose embedded config
 * finds the root filesystem by UUID and loads modules and grub.cfg from its /boot/grub. */
const EFI_CORE_MODULES = ['part_gpt', 'part_msdos', 'ext2', 'fat', 'search_fs_uuid', 'normal', 'configfile', 'linux', 'gzio', 'all_video', 'serial', 'terminal'];

export async function installGrub(root: string, disk: Disk, cleanup: Cleanup): Promise<void> {
  await chroot(root, ['grub-install', '--target=i386-pc', '--modules=part_gpt ext2', disk.loop]);

  // Modules next to grub.cfg, as grub-install would copy them, so `insmod` from grub.cfg works.
  await chroot(root, ['sh', '-c', 'mkdir -p /boot/grub/x86_64-efi && cp /usr/lib/grub/x86_64-efi/*.mod /usr/lib/grub/x86_64-efi/*.lst /boot/grub/x86_64-efi/']);
  const staging = join(root, 'tmp/esp');
  await mkdir(join(staging, 'EFI/BOOT'), { recursive: true });
  await writeFile(join(root, 'tmp/grub-efi-load.cfg'), `search.fs_uuid ${disk.rootUuid} root\nset prefix=($root)/boot/grub\n`);
  await chroot(root, [
    'grub-mkimage', '--format=x86_64-efi', '--output=/tmp/esp/EFI/BOOT/BOOTX64.EFI',
    '--config=/tmp/grub-efi-load.cfg', '--prefix=/boot/grub', ...EFI_CORE_MODULES,
  ]);
  await copyToFat(disk.espPart, staging);
  await rm(staging, { recursive: true, force: true });
  await rm(join(root, 'tmp/grub-efi-load.cfg'), { force: true });

  // grub-mkconfig writes root=UUID=... only when /dev/disk/by-uuid/<uuid> exists, otherwise the
  // build's device path (/dev/loop0p1), which no booted instance has. Without udev on the build
  // host nobody makes that link: make it for the run (the chroot's /dev is the host's).
  await ensureByUuidLink(disk.rootUuid, disk.rootPart, cleanup);
  await chroot(root, ['update-grub']);
  const cfg = await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8');
  if (!cfg.includes(`root=UUID=${disk.rootUuid}`)) {
    throw new Error(`boot/grub/grub.cfg does not mount root by UUID ${disk.rootUuid}; its kernel lines:\n${cfg.split('\n').filter((l) => /^\s*linux\s/.test(l)).join('\n')}`);
  }
}

async function ensureByUuidLink(uuid: string, dev: string, cleanup: Cleanup): Promise<void> {
  const link = `/dev/disk/by-uuid/${uuid}`;
  if (existsSync(link)) return;
  await mkdir('/dev/disk/by-uuid', { recursive: true });
  await symlink(dev, link);
  cleanup.push(`rm ${link}`, () => rm(link, { force: true }));
}

/** Copies a directory tree into the root of an unmounted FAT filesystem with mtools. */
async function copyToFat(dev: string, dir: string): Promise<void> {
  const entries = await readdir(dir);
  // MTOOLS_SKIP_CHECK: the partition is not a floppy geometry mtools recognises.
  const mtools = sh.with({ env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
  await mtools`mcopy -s -o -i ${dev} ${entries.map((e) => join(dir, e))} ::/`;
  const listing = await mtools`mdir -b -/ -i ${dev} ::/`;
  if (!/BOOTX64\.EFI/i.test(listing)) throw new Error(`BOOTX64.EFI is not on the ESP ${dev} after mcopy:\n${listing}`);
}
