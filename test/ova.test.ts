// The OVA as VMware expects it: the descriptor valid against the DMTF OVF schema (DMTF's .xsd files,
// unchanged, in test/fixtures/ovf-schema: a plain clone has everything the test reads), the descriptor first in a GNU tar, then the manifest in VMware's exact
// line form, then the streamOptimized VMDKs (every disk has one, as virt-v2v requires); the
// appliance's settings in a ProductSection.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { VIRTUAL_HARDWARE } from '../ova/src/descriptor.js';
import { buildOva, checkStreamOptimized } from '../ova/src/pack.js';
import { sha256File } from '../ova/src/manifest.js';
import { APPLIANCE_PROPERTIES } from '../daemon/src/appliance/properties.js';
import { root, tempDir } from './lib/cli.js';

const schema = join(root, 'test', 'fixtures', 'ovf-schema', 'dsp8023_1.1.1.xsd');

async function smallOva() {
  const dir = await tempDir('qe-ova-');
  // A real disk with content, converted as the image pipeline does.
  const raw = join(dir, 'system.raw');
  await execa('truncate', ['-s', '64M', raw]);
  await writeFile(join(dir, 'data'), Buffer.alloc(1 << 20, 7));
  await execa('dd', [`if=${join(dir, 'data')}`, `of=${raw}`, 'conv=notrunc', 'bs=1M', 'seek=3', 'status=none']);
  const vmdk = join(dir, 'qe-packets-9.9.9-disk1.vmdk');
  await execa('qemu-img', ['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
  const out = await buildOva({
    name: 'qe-packets',
    version: '9.9.9',
    systemVmdk: vmdk,
    systemDiskCapacityBytes: 64 * 2 ** 20,
    storeDiskBytes: 64 * 2 ** 30,
    cpus: 4,
    memoryMiB: 8192,
    output: join(dir, 'qe-packets-9.9.9.ova'),
  });
  return { dir, vmdk, ...out };
}

describe('OVA', () => {
  it('has a descriptor that validates against the DMTF OVF schema', async () => {
    expect(existsSync(schema), `${schema} (the OVF schema fixture) must be in the checkout`).toBe(true);
    const { ovf } = await smallOva();
    const res = await execa('xmllint', ['--noout', '--nonet', '--schema', schema, ovf], { reject: false, all: true });
    expect(res.all).toBe(`${ovf} validates`);
    expect(res.exitCode).toBe(0);
  });

  it('gives every disk a file in the OVA, the store disk an empty streamOptimized VMDK of its capacity (virt-v2v refuses a disk without one)', async () => {
    const { ova, ovf, dir } = await smallOva();
    const xml = await readFile(ovf, 'utf8');
    const files = new Map([...xml.matchAll(/<File ovf:id="([^"]+)" ovf:href="([^"]+)" ovf:size="(\d+)"\/>/g)].map((m) => [m[1]!, { href: m[2]!, size: Number(m[3]) }]));
    const disks = [...xml.matchAll(/<Disk [^>]*\/>/g)].map((m) => m[0]);
    expect(disks).toHaveLength(2);
    const members = (await execa('tar', ['-tvf', ova])).stdout.split('\n');
    for (const d of disks) {
      const ref = /ovf:fileRef="([^"]+)"/.exec(d)?.[1];
      expect(ref, `${d} has no ovf:fileRef`).toBeDefined();
      const file = files.get(ref!);
      expect(file, `${d}: no <File> with id ${ref}`).toBeDefined();
      // In the archive, with the size the References give.
      expect(members.some((l) => l.endsWith(` ${file!.href}`) && l.split(/\s+/)[2] === String(file!.size)), `${file!.href} of size ${file!.size} in ${members.join('; ')}`).toBe(true);
    }
    // The store disk: streamOptimized, 64 GiB, no data, and small.
    const store = join(dir, files.get('store-disk')!.href);
    await checkStreamOptimized(store);
    const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', store])).stdout) as { 'virtual-size': number };
    expect(info['virtual-size']).toBe(64 * 2 ** 30);
    expect(files.get('store-disk')!.size).toBeLessThan(16 * 2 ** 20);
    const map = JSON.parse((await execa('qemu-img', ['map', '--output=json', store])).stdout) as { data: boolean }[];
    expect(map.every((e) => !e.data)).toBe(true);
    // Both disks are in the manifest, in the tar order after it.
    const mf = (await execa('tar', ['-xOf', ova, 'qe-packets-9.9.9.mf'])).stdout;
    expect(mf).toContain(`SHA256(${files.get('store-disk')!.href})= ${await sha256File(store)}`);
  });

  it('describes two NICs, a system and an empty store disk, EFI and the appliance settings', async () => {
    const { ovf } = await smallOva();
    const xml = await readFile(ovf, 'utf8');
    expect(xml).toContain(`<vssd:VirtualSystemType>${VIRTUAL_HARDWARE}</vssd:VirtualSystemType>`);
    expect(xml.match(/<rasd:ResourceSubType>VmxNet3<\/rasd:ResourceSubType>/g)).toHaveLength(2);
    expect(xml).toContain('<rasd:Connection>Management</rasd:Connection>');
    expect(xml).toContain('<rasd:Connection>Capture</rasd:Connection>');
    expect(xml).toContain('<rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>');
    expect(xml).toMatch(/<Disk ovf:diskId="store" ovf:fileRef="store-disk" ovf:capacity="64" ovf:capacityAllocationUnits="byte \* 2\^30"/);
    // A capacity that is not whole GiB is given in bytes, not rounded up.
    expect(xml).toMatch(/<Disk ovf:diskId="system" ovf:fileRef="system-disk" ovf:capacity="67108864" ovf:format=/);
    expect(xml).toContain('vmw:key="firmware" vmw:value="efi"');
    for (const key of ['hostname', 'mgmt_address', 'mgmt_gateway', 'dns_servers', 'admin_ssh_key', 'capture_interface', 'storage_profile', 'qualevent_url', 'qualevent_token'])
      expect(xml).toContain(`ovf:key="${key}"`);
    expect(APPLIANCE_PROPERTIES).toHaveLength(9);
    // The Qe-Server token is masked by the hypervisor; it is no login password.
    expect(xml).toMatch(/<Property ovf:key="qualevent_token" [^>]*ovf:password="true">/);
    expect(xml).toContain('ovf:qualifiers="ValueMap{&quot;auto&quot;,&quot;10TB&quot;,&quot;20TB&quot;,&quot;40TB&quot;}"');
    expect(xml).toContain('ovf:transport="com.vmware.guestInfo iso"');
    // No password property, so no default password: access is by the SSH key or the console.
    expect(xml.replace(/<Property ovf:key="qualevent_token" [^>]*>/, '')).not.toMatch(/ovf:password="true"|ovf:key="[^"]*pass/i);
  });

  it('is a GNU tar with the descriptor first, then the manifest, then the disks', async () => {
    const { ova, ovf, vmdk, storeVmdk } = await smallOva();
    const list = (await execa('tar', ['-tf', ova])).stdout.split('\n');
    expect(list).toEqual(['qe-packets-9.9.9.ovf', 'qe-packets-9.9.9.mf', 'qe-packets-9.9.9-disk1.vmdk', 'qe-packets-9.9.9-store.vmdk']);
    const header = (await readFile(ova)).subarray(257, 265);
    expect(header.toString('latin1')).toBe('ustar  \0'); // GNU: sizes past 8 GiB are encoded in base-256
    const mf = (await execa('tar', ['-xOf', ova, 'qe-packets-9.9.9.mf'])).stdout;
    expect(mf).toBe(
      `SHA256(qe-packets-9.9.9.ovf)= ${await sha256File(ovf)}\nSHA256(qe-packets-9.9.9-disk1.vmdk)= ${await sha256File(vmdk)}\nSHA256(qe-packets-9.9.9-store.vmdk)= ${await sha256File(storeVmdk)}`,
    );
    expect(mf).toMatch(/^(SHA256\([^)]+\)= [0-9a-f]{64}\n?)+$/);
  });

  it('carries a streamOptimized VMDK that converts back to the same disk, and refuses any other disk', async () => {
    const { dir, vmdk } = await smallOva();
    await checkStreamOptimized(vmdk);
    const back = join(dir, 'back.raw');
    await execa('qemu-img', ['convert', '-O', 'raw', vmdk, back]);
    expect(await sha256File(back)).toBe(await sha256File(join(dir, 'system.raw')));
    const flat = join(dir, 'flat.vmdk');
    await execa('qemu-img', ['create', '-q', '-f', 'vmdk', flat, '16M']);
    await expect(checkStreamOptimized(flat)).rejects.toThrow(/not a streamOptimized VMDK; convert it with qemu-img convert -O vmdk -o subformat=streamOptimized/);
  });
});
