// The root filesystem grows to its disk: an image is built small (4 GiB) and deployed on whatever
// disk the user gives it, and a virtual disk enlarged later grows at the next boot.
import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { execa } from 'execa';

export interface GrowResult {
  device: string;
  grown: boolean;
  message: string;
}

/** The disk and partition number behind a partition's device, from sysfs (vda1 → vda, 1). */
export async function diskOfPartition(device: string, sysBlock = '/sys/class/block'): Promise<{ disk: string; partition: number }> {
  const name = basename(await realpath(device).catch(() => device));
  const partition = Number((await readFile(`${sysBlock}/${name}/partition`, 'utf8').catch(() => '')).trim());
  if (!partition) throw new Error(`${device} is not a partition (no ${sysBlock}/${name}/partition)`);
  return { disk: `/dev/${basename(dirname(await realpath(`${sysBlock}/${name}`)))}`, partition };
}

/** Grows the partition mounted at mountpoint (the root unless a test says otherwise) and its filesystem. */
export async function growRoot(mountpoint = '/'): Promise<GrowResult> {
  const [device, fstype] = (await execa('findmnt', ['--noheadings', '--output', 'SOURCE,FSTYPE', '--mountpoint', mountpoint])).stdout.trim().split(/\s+/) as [string, string];
  const { disk, partition } = await diskOfPartition(device);
  // growpart (cloud-guest-utils) moves the GPT's backup header to the new end and says NOCHANGE
  // (exit 1) when the partition already fills the disk.
  const part = await execa('growpart', [disk, String(partition)], { reject: false, all: true });
  if (part.exitCode !== 0) {
    if (/NOCHANGE/.test(part.all ?? '')) return { device, grown: false, message: `${device} already fills ${disk}` };
    throw new Error(`growpart ${disk} ${partition} failed: ${part.all}`);
  }
  if (fstype === 'xfs') await execa('xfs_growfs', [mountpoint]);
  else await execa('resize2fs', [device]);
  return { device, grown: true, message: `${device} grown to the end of ${disk}: ${part.stdout.trim()}` };
}
