// Boots a disk image under QEMU with its serial console captured, and waits for the login prompt
// and the image's boot report (multi-user.target reached):
// the proof that firmware, grub, kernel, initramfs, root by UUID and systemd up to
// multi-user.target all work. KVM when a short probe shows it works (accel.ts), TCG (minutes)
// otherwise. The wait fails fast (console-watch.ts) on a failed boot, a stopped QEMU or a silent
// console, and otherwise waits up to the caller's generous limit.
import { execa } from 'execa';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseAccel, type Accel } from './accel.js';
import { ConsoleWatch, consoleTail, DEFAULT_STALL_MS } from './console-watch.js';
import { BOOT_COMPLETE_MARKER } from './rootfs.js';

export type Firmware = 'bios' | 'uefi';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS.fd';

export interface BootResult {
  firmware: Firmware;
  accel: Accel;
  /** Seconds from starting QEMU to the login prompt and multi-user.target on the serial console. */
  seconds: number;
  /** The longest time the console stayed silent during the boot (the stall limit's margin). */
  maxSilentSeconds: number;
  /** The serial console's text, terminal escapes removed. */
  serial: string;
  /** From the image's boot report (rootfs.ts): 'bios' or 'uefi' as the booted system saw it. */
  reportedFirmware: string;
  /** Units failed at multi-user.target, comma-separated, or 'none'. */
  failedUnits: string;
}

export async function bootToLogin(opts: {
  disk: string;
  format?: 'raw' | 'qcow2' | 'vmdk';
  firmware: Firmware;
  /** The generous limit; a failed boot is noticed long before it (see console-watch.ts). */
  timeoutMs: number;
  /** Where the serial console goes; kept for inspection when the boot fails. */
  serialLog: string;
  /** Instead of one user-mode NIC: these -nic specifications, in order. */
  nics?: string[];
  /** Instead of the disk on virtio: these QEMU arguments attach it (a pvscsi controller, as VMware does). */
  diskArgs?: string[];
  /** More QEMU arguments (extra disks, a CD-ROM). */
  extraArgs?: string[];
  memoryMiB?: number;
  /** Silence on the console that fails the boot. */
  stallMs?: number;
  /** Runs once the system is up, before QEMU is stopped (checks over SSH). */
  whileUp?: () => Promise<void>;
}): Promise<BootResult> {
  if (!existsSync(opts.disk)) throw new Error(`${opts.disk} does not exist: build it first (npm run image:base)`);
  if (opts.firmware === 'uefi' && !existsSync(OVMF_CODE)) throw new Error(`${OVMF_CODE} is missing: apt-get install ovmf (scripts/install-deps)`);
  const work = await mkdtemp(join(tmpdir(), 'qe-boot-'));
  const machine = opts.firmware === 'uefi' ? 'q35' : 'pc';
  const argsFor = (accel: Accel) => [
    '-name', `qe-boot-${opts.firmware}`,
    '-machine', `${machine},accel=${accel}`,
    '-cpu', accel === 'kvm' ? 'host' : 'max',
    '-smp', '1', '-m', String(opts.memoryMiB ?? 1024),
    '-no-reboot',
    // The image is never written: every boot (and the accelerator probe) starts from the built state.
    '-snapshot',
    ...(opts.diskArgs ?? ['-drive', `file=${opts.disk},format=${opts.format ?? 'raw'},if=virtio`]),
    ...(opts.nics ?? ['user,model=virtio-net-pci']).flatMap((n) => ['-nic', n]),
    ...(opts.extraArgs ?? []),
    ...(opts.firmware === 'uefi'
      ? [
          '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
          // The variable store is written by the firmware: each boot gets its own copy.
          '-drive', `if=pflash,format=raw,unit=1,file=${join(work, 'OVMF_VARS.fd')}`,
        ]
      : []),
  ];
  const qmp = join(work, 'qmp.sock');
  try {
    if (opts.firmware === 'uefi') await copyFile(OVMF_VARS, join(work, 'OVMF_VARS.fd'));
    const accel = await chooseAccel(`${opts.firmware} boot on ${machine}`, argsFor);
    if (opts.firmware === 'uefi') await copyFile(OVMF_VARS, join(work, 'OVMF_VARS.fd'));
    const args = [
      ...argsFor(accel),
      '-display', 'none', '-monitor', 'none',
      '-chardev', `file,id=serial0,path=${opts.serialLog}`, '-serial', 'chardev:serial0',
      '-qmp', `unix:${qmp},server=on,wait=off`,
    ];
    await rm(opts.serialLog, { force: true });
    const t0 = Date.now();
    const qemu = execa('qemu-system-x86_64', args, { stdin: 'ignore', reject: false, all: true });
    let exited = false;
    void qemu.then(() => {
      exited = true;
    });
    const watch = new ConsoleWatch({ console: opts.serialLog, qmpSocket: qmp, stallMs: opts.stallMs ?? DEFAULT_STALL_MS });
    const what = `${opts.firmware} boot of ${opts.disk} (${accel})`;
    try {
      for (;;) {
        await new Promise((r) => setTimeout(r, 1000));
        const { text: serial, failure } = await watch.check();
        // Both: the getty prompts before multi-user.target is complete (slow units such as host
        // key generation still run), and the report alone does not prove a console login.
        const report = new RegExp(`${BOOT_COMPLETE_MARKER} firmware=(\\w+) failed-units=(\\S+)`).exec(serial);
        if (/\blogin: /.test(serial) && report) {
          const seconds = (Date.now() - t0) / 1000;
          await opts.whileUp?.();
          return { firmware: opts.firmware, accel, seconds, maxSilentSeconds: watch.maxSilentMs / 1000, serial, reportedFirmware: report[1]!, failedUnits: report[2]! };
        }
        if (exited) {
          const r = await qemu;
          throw new Error(`${what}: qemu exited (${r.exitCode}) before a login prompt: ${String(r.all ?? '').slice(-2000)}\nserial console in ${opts.serialLog}:\n${consoleTail(serial)}`);
        }
        if (failure) throw new Error(`${what} failed after ${((Date.now() - t0) / 1000).toFixed(0)} s: ${failure}; serial console in ${opts.serialLog}:\n${consoleTail(serial)}`);
        if (Date.now() - t0 > opts.timeoutMs) {
          throw new Error(`${what}: no login prompt after ${opts.timeoutMs / 1000} s; serial console in ${opts.serialLog}:\n${consoleTail(serial)}`);
        }
      }
    } finally {
      qemu.kill('SIGTERM');
      await qemu.catch(() => undefined);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
