// The OVA imported into KVM with the standard importer, as oVirt/RHV and OpenStack users import
// VMware OVAs: `virt-v2v -i ova` (Debian 12's virt-v2v 2.2) opens, inspects and converts the guest;
// the converted system disk then boots as the appliance (UEFI, virtio), with the converted store
// disk present and empty, so first boot makes it the capture store.
import { createWriteStream, readdirSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { chooseAccel, type Accel } from '../src/accel.js';
import { outputNames } from '../src/appliance.js';
import { imageDir } from '../src/build-base.js';
import { repoRoot } from '../src/cache.js';
import { adminKey, deployAndObserve } from './appliance-lib.js';
import { expectCapturingAppliance } from './expect-appliance.js';
import { packageVersion } from '../../daemon/src/util/version.js';

const version = packageVersion();
const out = outputNames(join(repoRoot(), 'dist'), version);
/** Generous: 9 to 16 minutes under TCG here, 25 on a loaded machine (README, Tests). */
const V2V_TIMEOUT_MS = 35 * 60_000;

/** KVM or TCG for libguestfs's appliance, probed as libguestfs's direct backend runs it: SeaBIOS on
 * pc, the host's kernel by -kernel, and -cpu host under KVM. */
function libguestfsAccel(): Promise<Accel> {
  const kernel = readdirSync('/boot').find((f) => /^vmlinuz-/.test(f));
  if (!kernel) throw new Error('no kernel in /boot: libguestfs builds its appliance from the host kernel; apt-get install linux-image-amd64 (scripts/install-deps)');
  return chooseAccel('libguestfs (SeaBIOS, -kernel)', (a) => [
    '-machine', `pc,accel=${a}`, ...(a === 'kvm' ? ['-cpu', 'host'] : []), '-m', '512', '-nic', 'none',
    '-kernel', join('/boot', kernel), '-append', 'console=ttyS0',
  ]);
}

describe('virt-v2v -i ova', () => {
  const work = join(imageDir(), 'appliance-test', 'v2v');
  const name = 'qe-v2v';
  beforeAll(async () => {
    await rm(work, { recursive: true, force: true });
    await mkdir(join(work, 'out'), { recursive: true });
  });

  it('imports the OVA: the system disk converted for virtio and UEFI, the store disk present and empty', async () => {
    // virt-v2v 2.2 converts first and copies last, with nbdcopy: without it, it fails after the
    // whole conversion with only "nbdcopy command failed".
    for (const tool of ['virt-v2v', 'nbdkit', 'nbdcopy'])
      expect((await execa('sh', ['-c', `command -v ${tool}`], { reject: false })).exitCode, `${tool} is missing: scripts/install-deps installs virt-v2v, nbdkit and libnbd-bin`).toBe(0);
    const accel = await libguestfsAccel();
    const logFile = join(work, 'virt-v2v.log');
    const logStream = createWriteStream(logFile);
    const t0 = Date.now();
    const v2v = execa('virt-v2v', ['-i', 'ova', out.ova, '-o', 'local', '-os', join(work, 'out'), '-of', 'qcow2', '-on', name], {
      env: { LIBGUESTFS_BACKEND: 'direct', ...(accel === 'tcg' ? { LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' } : {}) },
      all: true,
      reject: false,
      buffer: false,
      timeout: V2V_TIMEOUT_MS,
    });
    v2v.all?.pipe(logStream);
    const r = await v2v;
    await new Promise((ok) => logStream.end(ok));
    const log = await readFile(logFile, 'utf8');
    console.log(`virt-v2v -i ova under ${accel}: ${((Date.now() - t0) / 1000).toFixed(0)} s (log ${logFile})`);
    expect(r.exitCode, `virt-v2v failed (${logFile}):\n${log.split('\n').slice(-30).join('\n')}`).toBe(0);
    // What it found in the guest.
    // (virt-v2v 2.2 names a Debian guest by its /etc/debian_version: "Converting 12.x to run on KVM".)
    expect(log).toMatch(/Converting 12\.\d+ to run on KVM/);

    const xml = await readFile(join(work, 'out', `${name}.xml`), 'utf8');
    // UEFI firmware and virtio disks in the domain it wrote for libvirt.
    expect(xml).toMatch(/<loader[^>]*type=['"]pflash['"]|firmware=['"]efi['"]/);
    expect([...xml.matchAll(/<target dev=['"](vd[a-z])['"] bus=['"]virtio['"]/g)].map((m) => m[1])).toEqual(['vda', 'vdb']);

    const info = async (f: string) => JSON.parse((await execa('qemu-img', ['info', '--output=json', f])).stdout) as { 'virtual-size': number; format: string };
    const sda = join(work, 'out', `${name}-sda`);
    const sdb = join(work, 'out', `${name}-sdb`);
    expect((await info(sda)).format).toBe('qcow2');
    expect((await info(sdb))['virtual-size']).toBe(64 * 2 ** 30);
    // Empty: no cluster holds anything but zeros.
    const map = JSON.parse((await execa('qemu-img', ['map', '--output=json', sdb])).stdout) as { data: boolean; zero: boolean }[];
    expect(map.filter((e) => e.data && !e.zero)).toEqual([]);
  });

  it('the converted disk boots as the appliance (q35, UEFI, virtio), makes the empty store disk its store, and captures', async () => {
    const key = await adminKey(work);
    const sda = join(work, 'out', `${name}-sda`);
    const sdb = join(work, 'out', `${name}-sdb`);
    const credential = (k: string, v: string) => ['-smbios', `type=11,value=io.systemd.credential:qe.${k}=${v}`];
    const v = await deployAndObserve({
      name: 'v2v',
      disk: sda,
      format: 'qcow2',
      firmware: 'uefi',
      keyFile: key.file,
      model: 'virtio-net-pci',
      // The two disks virt-v2v wrote, in its order (the boot uses -snapshot: they stay as converted).
      diskArgs: () => ['-drive', `file=${sda},format=qcow2,if=virtio`, '-drive', `file=${sdb},format=qcow2,if=virtio`],
      extraArgs: [...credential('admin_ssh_key', key.pub), ...credential('hostname', 'qe-v2v-test')],
    });
    expectCapturingAppliance(v, 'qe-v2v-test');
    // The store is the imported 64 GiB disk, not a disk of the test's.
    expect(v.status!.figures.store.capacityBytes).toBeGreaterThan(60e9);
    expect(v.drivers.split('\n').sort()).toEqual(['disk virtio-pci', 'nic virtio_net', 'nic virtio_net']);
  });
});
