// The GPT raw disk. Layout as in Debian's own cloud images, so tools that know those images (growpart,
// cloud hosts) find the same shape: partition 14 is the BIOS boot partition grub's i386-pc core
// is embedded in, 15 the EFI system partition, 1 the root filesystem (ext4), last so it can grow.
import { open, readFile } from 'node:fs/promises';
import { sh, Cleanup, log } from './log.js';

export interface Disk {
  loop: string; // /dev/loopN
  bootPart: string;
  espPart: string;
  rootPart: string;
  rootUuid: string;
  espUuid: string;
}

export const PART = { root: 1, biosBoot: 14, esp: 15 } as const;

/** Creates a sparse file of `sizeMiB` and partitions it. */
export async function createDiskFile(path: string, sizeMiB: number): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(sizeMiB * 1024 * 1024);
  await fh.close();
  const { root, biosBoot: bios, esp } = PART;
  // 3 MiB BIOS boot from 1 MiB, 124 MiB ESP, then root: the sizes Debian's cloud images use.
  await sh`sgdisk --clear \
    --new=${bios}:2048:+3M --typecode=${bios}:EF02 --change-name=${bios}:bios \
    --new=${esp}:0:+124M --typecode=${esp}:EF00 --change-name=${esp}:esp \
    --new=${root}:0:0 --typecode=${root}:8304 --change-name=${root}:root \
    ${path}`;
}

/** Attaches the file with partition scanning and formats the ESP and root. Registers detaching
 * with `cleanup`. */
export async function attachAndFormat(path: string, cleanup: Cleanup): Promise<Disk> {
  const loop = await sh`losetup --find --show --partscan ${path}`.catch((e: Error) => {
    throw new Error(`${e.message}\nlosetup could not attach ${path}: the build needs root and loop devices (modprobe loop; in a container, --privileged)`);
  });
  cleanup.push(`losetup -d ${loop}`, async () => {
    await sh`losetup -d ${loop}`;
  });
  const p = (n: number) => `${loop}p${n}`;
  await ensurePartitionNodes(loop, [PART.root, PART.biosBoot, PART.esp]);
  await sh`mkfs.vfat -F 32 -n EFI ${p(PART.esp)}`;
  // mke2fs of Debian 12, so every feature it turns on is one the image's own grub and kernel read.
  await sh`mkfs.ext4 -q -F -L root ${p(PART.root)}`;
  const uuid = (dev: string) => sh`blkid -s UUID -o value ${dev}`;
  const disk: Disk = {
    loop,
    bootPart: p(PART.biosBoot),
    espPart: p(PART.esp),
    rootPart: p(PART.root),
    rootUuid: await uuid(p(PART.root)),
    espUuid: await uuid(p(PART.esp)),
  };
  log(`disk ${path} on ${loop}: root UUID ${disk.rootUuid}, ESP UUID ${disk.espUuid}`);
  return disk;
}

const exists = (path: string) => sh`test -e ${path}`.then(() => true, () => false);

/**
 * The partition device nodes of a loop device. The kernel's scan on attach (--partscan) is not
 * always done, or not yet, when losetup returns, and without udev (containers, some build VMs)
 * nobody creates nodes for partitions added later: ask the kernel again with partx, then make any
 * node still missing from the numbers sysfs reports.
 */
export async function ensurePartitionNodes(loop: string, parts: readonly number[]): Promise<void> {
  const name = loop.replace('/dev/', '');
  const dev = (n: number) => `${loop}p${n}`;
  const allThere = async () => (await Promise.all(parts.map((n) => exists(dev(n))))).every(Boolean);
  for (let i = 0; i < 20 && !(await allThere()); i++) await new Promise((r) => setTimeout(r, 100));
  if (await allThere()) return;
  for (const n of parts) {
    if (!(await exists(`/sys/class/block/${name}p${n}`))) await sh`partx --add --nr=${n} ${loop}`.catch(() => undefined);
  }
  await sh`udevadm settle`.catch(() => undefined);
  for (const n of parts) {
    if (await exists(dev(n))) continue;
    const numbers = await readFile(`/sys/class/block/${name}p${n}/dev`, 'utf8').catch(() => '');
    const [major, minor] = numbers.trim().split(':');
    if (!major || !minor) throw new Error(`partition ${n} of ${loop} is not known to the kernel after partx: is the disk image partitioned (sgdisk -p)?`);
    await sh`mknod ${dev(n)} b ${major} ${minor}`;
  }
}

export async function mount(dev: string, dir: string, cleanup: Cleanup, opts: string[] = []): Promise<void> {
  await sh`mkdir -p ${dir}`;
  await sh`mount ${opts} ${dev} ${dir}`;
  cleanup.push(`umount ${dir}`, async () => {
    await sh`umount ${dir}`.catch(async () => {
      // A process left in the chroot (gpg-agent, a dbus launched by a postinst) keeps it busy: lazy.
      await sh`umount -l ${dir}`;
    });
  });
}
