// The finished appliance, booted as a user would run it: the qcow2 from `npm run appliance` with
// a management NIC, a capture NIC, an empty store disk and the settings on an "OVF ENV" CD-ROM (the
// ISO transport of OVF properties). It must come up with the host name and admin key given,
// provision the store disk, and capture: checked over SSH as that admin.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { bootToLogin, kvmUsable } from '../src/boot.js';
import { imageDir } from '../src/build-base.js';
import { repoRoot } from '../src/cache.js';

const BOOT_TIMEOUT_MS = (kvmUsable() ? 5 : 25) * 60_000;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe('appliance image', () => {
  it('boots with its OVF settings, provisions the store disk and captures', async () => {
    const { version } = JSON.parse(await readFile(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
    const qcow2 = join(repoRoot(), 'dist', `qe-packets-${version}.qcow2`);
    if (!existsSync(qcow2)) throw new Error(`${qcow2} does not exist: build it with npm run appliance`);
    const work = join(imageDir(), 'appliance-test');
    await mkdir(join(work, 'iso'), { recursive: true });
    await execa('rm', ['-f', join(work, 'admin'), join(work, 'admin.pub')]);
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(work, 'admin')]);
    const key = (await readFile(join(work, 'admin.pub'), 'utf8')).trim();
    await writeFile(
      join(work, 'iso', 'ovf-env.xml'),
      `<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1">
  <PropertySection>
    <Property oe:key="hostname" oe:value="qe-test-appliance"/>
    <Property oe:key="admin_ssh_key" oe:value="${key}"/>
    <Property oe:key="capture_interface" oe:value="auto"/>
    <Property oe:key="storage_profile" oe:value="auto"/>
  </PropertySection>
</Environment>
`,
    );
    const iso = join(work, 'ovf-env.iso');
    await execa('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'OVF ENV', '-J', '-r', '-o', iso, join(work, 'iso')]);
    const store = join(work, 'store.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', store, '8G']);
    const port = await freePort();
    const ssh = (cmd: string) =>
      execa('ssh', ['-i', join(work, 'admin'), '-p', String(port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', 'admin@127.0.0.1', cmd], { reject: false });

    let status: { state: string; figures: { interfaces: { name: string; up: boolean }[]; store: { capacityBytes: number; paths: string[] } } } | undefined;
    let hostname = '';
    const r = await bootToLogin({
      disk: qcow2,
      format: 'qcow2',
      firmware: 'uefi',
      timeoutMs: BOOT_TIMEOUT_MS,
      serialLog: join(work, 'serial.log'),
      // Management first (SSH forwarded), then the capture NIC.
      nics: [`user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:${port}-:22`, 'user,model=virtio-net-pci,restrict=on'],
      extraArgs: ['-drive', `file=${store},format=qcow2,if=virtio`, '-drive', `file=${iso},media=cdrom,readonly=on`],
      whileUp: async () => {
        // Capture starts after first boot provisioned the disk; give the daemon a moment under TCG.
        for (let i = 0; i < 40; i++) {
          const res = await ssh('qe-packets status --json');
          // Until the daemon answers, status --json prints {"state": "unknown", ...} without figures.
          const parsed = res.stdout.trim().startsWith('{') ? (JSON.parse(res.stdout) as typeof status & { figures?: unknown }) : undefined;
          if (parsed?.figures) {
            status = parsed;
            if (status!.figures.interfaces.every((x) => x.up)) break;
          }
          await new Promise((ok) => setTimeout(ok, 5000));
        }
        hostname = (await ssh('hostname')).stdout.trim();
      },
    });
    console.log(`appliance boot under ${r.accel}: ${r.seconds.toFixed(0)} s; failed units: ${r.failedUnits}`);
    expect(r.failedUnits).toBe('none');
    expect(hostname).toBe('qe-test-appliance');
    expect(status, 'qe-packets status over SSH as admin').toBeDefined();
    expect(status!.figures.interfaces).toHaveLength(1);
    expect(status!.figures.interfaces[0]!.up).toBe(true);
    expect(status!.figures.store.paths[0]).toMatch(/^\/srv\/qe-packets\/store/);
    expect(status!.figures.store.capacityBytes).toBeGreaterThan(6e9);
  });
});
