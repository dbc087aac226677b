// The accelerator decision (image/src/accel.ts): KVM only when a short run of the guest's own
// command line reached the guest's kernel. The failing outcomes are what QEMU printed on a host
// whose /dev/kvm exists but does not work (test/fixtures/kvm-probe); the working and the stuck
// outcomes are also produced for real by short QEMU runs.
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseAccel, forcedAccel, judgeProbe, probeKvm, type ProbeObservation } from '../image/src/accel.js';
import { root } from './lib/cli.js';

const fixture = async (name: string) => JSON.parse(await readFile(join(root, 'test/fixtures/kvm-probe', `${name}.json`), 'utf8')) as ProbeObservation;

describe('accelerator probe', () => {
  it('refuses KVM when OVMF stops with a KVM internal error (QEMU paused, nothing on the console)', async () => {
    const o = await fixture('ovmf-internal-error');
    expect(o.state).toBe('internal-error');
    expect(judgeProbe(o)).toEqual({ usable: false, reason: 'KVM internal error (Suberror: 1, emulation failure): QEMU stopped the guest' });
    // The paused state alone is enough, whatever QEMU printed.
    expect(judgeProbe({ ...o, stderr: '' })).toEqual({ usable: false, reason: 'QEMU stopped the guest under KVM (state internal-error)' });
  });

  it('refuses KVM when QEMU aborts on the CPU model (-cpu host: an MSR the host refuses)', async () => {
    const v = judgeProbe(await fixture('cpu-host-msr-abort'));
    expect(v.usable).toBe(false);
    expect(v.reason).toMatch(/^QEMU exited .*under KVM: .*kvm_buf_set_msrs: Assertion/);
  });

  it('refuses KVM when grub ran but the kernel never printed, and accepts it once the kernel did', () => {
    // What SeaBIOS under this host's KVM showed for two minutes.
    const grub = "  Booting `Debian GNU/Linux'\n\nLoading Linux 6.1.0-57-amd64 ...\nLoading initial ramdisk ...\n";
    const stuck = judgeProbe({ exited: false, stderr: "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]\n", console: grub, state: 'running', seconds: 25 });
    expect(stuck.usable).toBe(false);
    expect(stuck.reason).toBe('the guest did not reach its kernel in 25 s under KVM (console ends: "Loading Linux 6.1.0-57-amd64 ... Loading initial ramdisk ...")');
    const ok = judgeProbe({ exited: false, stderr: '', console: `${grub}[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)\n`, state: 'running', seconds: 3.2 });
    expect(ok).toEqual({ usable: true, reason: 'the guest reached its kernel in 3 s' });
    // A disk that cannot boot is the disk's failure, shown by the real run, not KVM's.
    expect(judgeProbe({ exited: false, stderr: '', console: 'error: no such device\ngrub rescue> ', state: 'running', seconds: 2 }).usable).toBe(true);
  });

  it('QE_ACCEL forces kvm or tcg without a probe, and names the fix for any other value', async () => {
    expect(forcedAccel({})).toBeUndefined();
    expect(forcedAccel({ QE_ACCEL: 'kvm' })).toBe('kvm');
    expect(forcedAccel({ QE_ACCEL: 'tcg' })).toBe('tcg');
    expect(() => forcedAccel({ QE_ACCEL: 'hvf' })).toThrow('QE_ACCEL=hvf: use QE_ACCEL=kvm or QE_ACCEL=tcg, or unset it to probe');
    // No QEMU runs: argsFor is never called.
    const never = () => {
      throw new Error('probed although forced');
    };
    expect(await chooseAccel('forced-kvm-test', never, { QE_ACCEL: 'kvm' })).toBe('kvm');
    expect(await chooseAccel('forced-tcg-test', never, { QE_ACCEL: 'tcg' })).toBe('tcg');
  });

  // Real short QEMU runs (TCG, so they behave the same on every machine): the probe's watch on the
  // console sees a guest that reaches its kernel, and one that never does.
  const kernel = existsSync('/boot') ? readdirSync('/boot').find((f) => /^vmlinuz-/.test(f)) : undefined;

  it('judges a real guest that reaches its kernel usable, as soon as the kernel prints', async () => {
    expect(kernel, 'a kernel in /boot (scripts/install-deps installs linux-image-amd64; libguestfs needs it too)').toBeDefined();
    const o = await probeKvm(['-machine', 'pc,accel=tcg', '-m', '256', '-nic', 'none', '-kernel', join('/boot', kernel!), '-append', 'console=ttyS0'], 120_000);
    expect(o.exited).toBe(false);
    expect(o.console).toMatch(/Linux version \d/);
    expect(judgeProbe(o).usable).toBe(true);
    expect(o.seconds).toBeLessThan(120);
  }, 150_000);

  it('judges a real guest with nothing to boot unusable once the probe time is up', async () => {
    const o = await probeKvm(['-machine', 'pc,accel=tcg', '-m', '64', '-nic', 'none'], 4000);
    expect(o.state).toBe('running');
    const v = judgeProbe(o);
    expect(v.usable).toBe(false);
    expect(v.reason).toMatch(/^the guest did not reach its kernel in \d+ s under KVM/);
  }, 30_000);
});
