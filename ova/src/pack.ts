// Builds the OVA: a tar whose first member is the descriptor, then the manifest, then the disks
// (the order VMware reads them in, streaming). GNU tar format, so members over 8 GiB fit.
import { stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { execa } from 'execa';
import { ovfDescriptor, type DescriptorInput } from './descriptor.js';
import { manifest } from './manifest.js';

export interface OvaInput extends Omit<DescriptorInput, 'systemDisk'> {
  /** A streamOptimized VMDK of the system disk. */
  systemVmdk: string;
  systemDiskCapacityBytes: number;
  /** Where the .ova goes; the .ovf and .mf are written beside it. */
  output: string;
}

/** Refuses a disk that is not a streamOptimized VMDK: ESXi would reject it only at import. */
export async function checkStreamOptimized(vmdk: string): Promise<void> {
  const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', vmdk])).stdout) as { format: string; 'format-specific'?: { data?: { 'create-type'?: string } } };
  const type = info['format-specific']?.data?.['create-type'];
  if (info.format !== 'vmdk' || type !== 'streamOptimized')
    throw new Error(`${vmdk}: a ${info.format}${type ? ` (${type})` : ''} disk, not a streamOptimized VMDK; convert it with qemu-img convert -O vmdk -o subformat=streamOptimized`);
}

export async function buildOva(o: OvaInput): Promise<{ ova: string; ovf: string; mf: string }> {
  await checkStreamOptimized(o.systemVmdk);
  const dir = dirname(o.output);
  const base = basename(o.output).replace(/\.ova$/, '');
  const ovf = join(dir, `${base}.ovf`);
  const mf = join(dir, `${base}.mf`);
  const disk = basename(o.systemVmdk);
  if (dirname(o.systemVmdk) !== dir) throw new Error(`the VMDK must sit beside the output: ${o.systemVmdk} is not in ${dir}`);
  await writeFile(ovf, ovfDescriptor({ ...o, systemDisk: { file: disk, fileBytes: (await stat(o.systemVmdk)).size, capacityBytes: o.systemDiskCapacityBytes } }));
  await writeFile(mf, await manifest([ovf, o.systemVmdk]));
  // Fixed owner and time: the same inputs give the same archive.
  await execa('tar', ['--format=gnu', '--owner=0', '--group=0', '--numeric-owner', '--mode=0644', '--mtime=@0', '-cf', o.output, '-C', dir, basename(ovf), basename(mf), disk]);
  return { ova: o.output, ovf, mf };
}
