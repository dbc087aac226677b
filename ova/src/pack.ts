// Builds the OVA: a tar whose first member is the descriptor, then the manifest, then the disks in
// the descriptor's References order (the order VMware reads them in, streaming). GNU tar format,
// so members over 8 GiB fit.
import { rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { execa } from 'execa';
import { ovfDescriptor, type DescriptorInput } from './descriptor.js';
import { manifest } from './manifest.js';

export interface OvaInput extends Omit<DescriptorInput, 'systemDisk' | 'storeDisk'> {
  /** A streamOptimized VMDK of the system disk. */
  systemVmdk: string;
  systemDiskCapacityBytes: number;
  /** The capacity of the empty capture store disk. */
  storeDiskBytes: number;
  /** Where the .ova goes; the .ovf, .mf and the store disk's VMDK are written beside it. */
  output: string;
}

/** Refuses a disk that is not a streamOptimized VMDK: ESXi would reject it only at import. */
export async function checkStreamOptimized(vmdk: string): Promise<void> {
  const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', vmdk])).stdout) as { format: string; 'format-specific'?: { data?: { 'create-type'?: string } } };
  const type = info['format-specific']?.data?.['create-type'];
  if (info.format !== 'vmdk' || type !== 'streamOptimized')
    throw new Error(`${vmdk}: a ${info.format}${type ? ` (${type})` : ''} disk, not a streamOptimized VMDK; convert it with qemu-img convert -O vmdk -o subformat=streamOptimized`);
}

/**
 * An empty streamOptimized VMDK of `bytes` capacity: no grain holds data, so the file is qemu-img's
 * header, grain directory and footer (8 MiB for 64 GiB, mostly its reserved space). Made by
 * converting an empty sparse raw file, as the system disk is made, so both come from one writer.
 */
export async function emptyStreamOptimizedVmdk(out: string, bytes: number): Promise<void> {
  const raw = `${out}.empty.raw`;
  try {
    await execa('truncate', ['-s', String(bytes), raw]);
    await execa('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized,adapter_type=lsilogic', raw, out]);
  } finally {
    await rm(raw, { force: true });
  }
}

export async function buildOva(o: OvaInput): Promise<{ ova: string; ovf: string; mf: string; storeVmdk: string }> {
  await checkStreamOptimized(o.systemVmdk);
  const dir = dirname(o.output);
  const base = basename(o.output).replace(/\.ova$/, '');
  const ovf = join(dir, `${base}.ovf`);
  const mf = join(dir, `${base}.mf`);
  const disk = basename(o.systemVmdk);
  if (dirname(o.systemVmdk) !== dir) throw new Error(`the VMDK must sit beside the output: ${o.systemVmdk} is not in ${dir}`);
  const storeVmdk = join(dir, `${base}-store.vmdk`);
  await emptyStreamOptimizedVmdk(storeVmdk, o.storeDiskBytes);
  const size = async (f: string) => (await stat(f)).size;
  await writeFile(
    ovf,
    ovfDescriptor({
      ...o,
      systemDisk: { file: disk, fileBytes: await size(o.systemVmdk), capacityBytes: o.systemDiskCapacityBytes },
      storeDisk: { file: basename(storeVmdk), fileBytes: await size(storeVmdk), capacityBytes: o.storeDiskBytes },
    }),
  );
  await writeFile(mf, await manifest([ovf, o.systemVmdk, storeVmdk]));
  // Fixed owner and time: the same inputs give the same archive. The store disk's reserved space is
  // a hole on disk but plain zeros in the tar: VMware reads no sparse tar members.
  await execa('tar', ['--format=gnu', '--owner=0', '--group=0', '--numeric-owner', '--mode=0644', '--mtime=@0', '-cf', o.output, '-C', dir, basename(ovf), basename(mf), disk, basename(storeVmdk)]);
  return { ova: o.output, ovf, mf, storeVmdk };
}
