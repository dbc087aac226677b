// Where the OVF environment comes from on a booted appliance: VMware Tools' guestinfo (vApp
// options with the "VMware Tools" transport), or a CD-ROM labelled "OVF ENV" holding ovf-env.xml
// (the ISO transport; also what a KVM user can attach by hand).
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export interface OvfEnvText {
  source: string;
  xml: string;
}

async function fromGuestinfo(): Promise<OvfEnvText | undefined> {
  if (!existsSync('/usr/bin/vmtoolsd')) return undefined;
  // Only on VMware's virtual hardware: elsewhere vmtoolsd can only fail, slowly.
  const vendor = await readFile('/sys/class/dmi/id/sys_vendor', 'utf8').catch(() => '');
  if (!/vmware/i.test(vendor)) return undefined;
  const r = await execa('vmtoolsd', ['--cmd', 'info-get guestinfo.ovfEnv'], { reject: false, timeout: 10_000 });
  return r.exitCode === 0 && r.stdout.includes('Environment') ? { source: 'guestinfo.ovfEnv', xml: r.stdout } : undefined;
}

async function fromIso(): Promise<OvfEnvText | undefined> {
  const r = await execa('blkid', ['-t', 'LABEL=OVF ENV', '-o', 'device'], { reject: false });
  const dev = r.stdout.split('\n').find(Boolean);
  if (!dev) return undefined;
  const dir = await mkdtemp(join(tmpdir(), 'qe-ovfenv-'));
  try {
    await execa('mount', ['-o', 'ro', dev, dir]);
    try {
      return { source: `${dev}:ovf-env.xml`, xml: await readFile(join(dir, 'ovf-env.xml'), 'utf8') };
    } finally {
      await execa('umount', [dir], { reject: false });
    }
  } catch {
    return undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function findOvfEnvironment(file?: string): Promise<OvfEnvText | undefined> {
  if (file) return { source: file, xml: await readFile(file, 'utf8') };
  return (await fromGuestinfo()) ?? (await fromIso());
}
