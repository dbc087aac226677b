// The finished appliance, booted as users deploy it, from the outputs of `npm run appliance`:
//  - the qcow2 on KVM-like hardware (q35, UEFI, virtio), settings by SMBIOS systemd credentials;
//  - the OVA's own VMDK as VMware attaches it (SeaBIOS, pvscsi, vmxnet3), settings by the OVF
//    environment ISO;
//  - the raw image flashed with bmaptool (SeaBIOS), admin key in a file on its ESP.
// CI (CI=true) boots the first two; `npm run test:image` elsewhere boots all three (README, Tests).
// Each boot gets a management NIC (SSH and metrics forwarded), a capture NIC fed with test frames,
// and an empty store disk; each must come up capturing, with the given host name and key.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { imageDir } from '../src/build-base.js';
import { repoRoot } from '../src/cache.js';
import { PART } from '../src/disk.js';
import { outputNames } from '../src/appliance.js';
import { adminKey, deployAndObserve, deployOnKvm, fullMatrix, ovfEnvIso } from './appliance-lib.js';
import { expectCapturingAppliance } from './expect-appliance.js';
import { packageVersion } from '../../daemon/src/util/version.js';

const version = packageVersion();
const dist = join(repoRoot(), 'dist');
const out = outputNames(dist, version);

describe('appliance outputs', () => {
  it('are all in dist/, SHA256SUMS verifies them, and the SBOM lists the image packages and npm dependencies', async () => {
    for (const f of Object.values(out)) expect(existsSync(f), `${f}: build it with npm run appliance`).toBe(true);
    const sums = await execa('sha256sum', ['--check', '--strict', 'SHA256SUMS'], { cwd: dist, reject: false, all: true });
    expect(sums.exitCode, sums.all).toBe(0);
    expect(sums.all!.split('\n').filter((l) => l.endsWith(': OK'))).toHaveLength(6);
    const sbom = JSON.parse(await readFile(out.sbom, 'utf8')) as { bomFormat: string; specVersion: string; components: { name: string; version: string; purl: string }[] };
    expect([sbom.bomFormat, sbom.specVersion]).toEqual(['CycloneDX', '1.5']);
    const names = new Map(sbom.components.map((c) => [c.name, c]));
    for (const deb of ['linux-image-amd64', 'systemd', 'openssh-server', 'open-vm-tools', 'qemu-guest-agent', 'qe-packets', 'libpcap0.8']) expect(names.get(deb)?.purl, deb).toMatch(/^pkg:deb\/debian\//);
    expect(names.get('qe-packets')!.version).toBe(version);
    for (const mod of ['prom-client', 'yaml', 'cap']) expect(names.get(mod)?.purl, mod).toMatch(/^pkg:npm\//);
    // Under 600 MB each (the target; figures in the README).
    for (const f of [out.ova, out.imgZst]) expect((await execa('stat', ['-c', '%s', f])).stdout.trim() as unknown as number / 1e6).toBeLessThan(600);
  });
});

describe('appliance boots', () => {
  const machineIds: string[] = [];
  const hostKeys: string[] = [];
  let key: { file: string; pub: string };
  /** Deployments of one image share no identity. */
  const expectDistinctIdentities = () => {
    expect(new Set(machineIds).size).toBe(machineIds.length);
    expect(new Set(hostKeys).size).toBe(hostKeys.length);
  };
  beforeAll(async () => {
    const dir = join(imageDir(), 'appliance-test');
    // Only this file's folders: v2v.test.ts keeps its import beside them.
    for (const d of ['kvm', 'vmware', 'flashed']) {
      await rm(join(dir, d), { recursive: true, force: true });
      await mkdir(join(dir, d), { recursive: true });
    }
    key = await adminKey(dir);
  });

  it('qcow2 on KVM (q35, UEFI, virtio): settings by SMBIOS credentials, root grown to a 10 GiB disk, capturing', async () => {
    const v = await deployOnKvm({ name: 'kvm', qcow2: out.qcow2, key, hostname: 'qe-kvm-test' });
    expectCapturingAppliance(v, 'qe-kvm-test');
    expect(v.rootBytes).toBeGreaterThan(9 * 2 ** 30);
    expect(v.drivers.split('\n').sort()).toEqual(['disk virtio-pci', 'nic virtio_net', 'nic virtio_net']);
    machineIds.push(v.machineId);
    hostKeys.push(v.hostKey);
    expectDistinctIdentities();
  });

  it("the OVA's VMDK as VMware attaches it (SeaBIOS, pvscsi, vmxnet3): settings by the OVF environment ISO, capturing", async () => {
    const work = join(imageDir(), 'appliance-test', 'vmware');
    const listing = (await execa('tar', ['-tf', out.ova])).stdout.split('\n');
    const vmdk = listing.find((f) => f.endsWith('-disk1.vmdk'))!;
    await execa('tar', ['-xf', out.ova, '-C', work, vmdk]);
    const iso = await ovfEnvIso(work, { hostname: 'qe-vmware-test', admin_ssh_key: key.pub, capture_interface: 'auto', storage_profile: 'auto' });
    const v = await deployAndObserve({
      name: 'vmware',
      disk: join(work, vmdk),
      format: 'vmdk',
      firmware: 'bios',
      keyFile: key.file,
      model: 'vmxnet3',
      diskArgs: (store) => [
        '-device', 'pvscsi,id=pvscsi0',
        '-drive', `file=${join(work, vmdk)},format=vmdk,if=none,id=system`, '-device', 'scsi-hd,drive=system,bus=pvscsi0.0,scsi-id=0,bootindex=0',
        '-drive', `file=${store},format=qcow2,if=none,id=store`, '-device', 'scsi-hd,drive=store,bus=pvscsi0.0,scsi-id=1',
      ],
      extraArgs: ['-drive', `file=${iso},media=cdrom,readonly=on`],
    });
    expectCapturingAppliance(v, 'qe-vmware-test');
    // The VMware drivers from the initramfs carried the boot: the root disk is behind pvscsi, the NICs are vmxnet3.
    expect(v.drivers.split('\n').sort()).toEqual(['disk vmw_pvscsi', 'nic vmxnet3', 'nic vmxnet3']);
    machineIds.push(v.machineId);
    hostKeys.push(v.hostKey);
    expectDistinctIdentities();
  });

  it.runIf(fullMatrix)('the raw image flashed with bmaptool is identical to the built one and boots by SeaBIOS: admin key from its ESP, capturing', async () => {
    const work = join(imageDir(), 'appliance-test', 'flashed');
    const flashed = join(work, 'disk.raw');
    await execa('bmaptool', ['copy', '--bmap', out.bmap, out.imgZst, flashed]);
    const built = join(imageDir(), 'packer', 'out', `qe-packets-${version}.raw`);
    const sha = async (f: string) => (await execa('sha256sum', [f])).stdout.split(' ')[0];
    expect(await sha(flashed)).toBe(await sha(built));
    // As a user would before the first boot: the key as a file on the ESP (FAT, any OS writes it).
    const start = Number((await execa('partx', ['-g', '-o', 'START', '-n', String(PART.esp), flashed])).stdout.trim());
    const esp = `${flashed}@@${start * 512}`;
    await writeFile(join(work, 'admin_ssh_key'), `${key.pub}\n`);
    await execa('mmd', ['-i', esp, '::/qe-packets']);
    await execa('mcopy', ['-i', esp, join(work, 'admin_ssh_key'), '::/qe-packets/admin_ssh_key']);
    const v = await deployAndObserve({ name: 'flashed', disk: flashed, format: 'raw', firmware: 'bios', keyFile: key.file, model: 'virtio-net-pci' });
    expectCapturingAppliance(v, 'qe-packets');
    machineIds.push(v.machineId);
    hostKeys.push(v.hostKey);
    expectDistinctIdentities();
  });
});
