// Boots a disk image under QEMU with its serial console captured, and waits for the login prompt
// and the image's boot report (multi-user.target reached):
// the proof that firmware, grub, kernel, initramfs, root by UUID and systemd up to
// multi-user.target all work. KVM when /dev/kvm is usable, TCG (slow, minutes) otherwise.
import { execa } from 'execa';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { accessSync, constants, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BOOT_COMPLETE_MARKER } from './rootfs.js';

export type Firmware = 'bios' | 'uefi';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS.fd';

export interface BootResult {
  firmware: Firmware;
  accel: 'kvm' | 'tcg';
  /** Seconds from starting QEMU to the login prompt and multi-user.target on the serial console. */
  seconds: number;
  /** The serial console's text, terminal escapes removed. */
  serial: string;
  /** From the image's boot report (rootfs.ts): 'bios' or 'uefi' as the booted system saw it. */
  reportedFirmware: string;
  /** Units failed at multi-user.target, comma-separated, or 'none'. */
  failedUnits: string;
}

export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Serial output that means the boot has failed and waiting longer is pointless. */
const FATAL = [/Kernel panic/, /grub rescue>/, /You are in emergency mode/, /Give root password for maintenance/, /ALERT! .* does not exist/, /No bootable device/];

export async function bootToLogin(opts: {
  disk: string;
  format?: 'raw' | 'qcow2' | 'vmdk';
  firmware: Firmware;
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
  /** Runs once the system is up, before QEMU is stopped (checks over SSH). */
  whileUp?: () => Promise<void>;
}): Promise<BootResult> {
  if (!existsSync(opts.disk)) throw new Error(`${opts.disk} does not exist: build it first (npm run image:base)`);
  if (opts.firmware === 'uefi' && !existsSync(OVMF_CODE)) throw new Error(`${OVMF_CODE} is missing: apt-get install ovmf (scripts/install-deps)`);
  const accel = kvmUsable() ? 'kvm' : 'tcg';
  const work = await mkdtemp(join(tmpdir(), 'qe-boot-'));
  const args = [
    '-name', `qe-boot-${opts.firmware}`,
    '-machine', `${opts.firmware === 'uefi' ? 'q35' : 'pc'},accel=${accel}`,
    '-cpu', accel === 'kvm' ? 'host' : 'max',
    '-smp', '1', '-m', String(opts.memoryMiB ?? 1024),
    '-display', 'none', '-monitor', 'none', '-no-reboot',
    '-chardev', `file,id=serial0,path=${opts.serialLog}`, '-serial', 'chardev:serial0',
    // The image is never written: every boot starts from the built state.
    '-snapshot',
    ...(opts.diskArgs ?? ['-drive', `file=${opts.disk},format=${opts.format ?? 'raw'},if=virtio`]),
    ...(opts.nics ?? ['user,model=virtio-net-pci']).flatMap((n) => ['-nic', n]),
    ...(opts.extraArgs ?? []),
  ];
  if (opts.firmware === 'uefi') {
    // The variable store is written by the firmware: each boot gets its own copy.
    const vars = join(work, 'OVMF_VARS.fd');
    await copyFile(OVMF_VARS, vars);
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
  }
  const t0 = Date.now();
  const qemu = execa('qemu-system-x86_64', args, { stdin: 'ignore', reject: false, all: true });
  let exited = false;
  void qemu.then(() => {
    exited = true;
  });
  try {
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000));
      // Without terminal escapes: systemd colours unit names, grub draws its menu with them.
      const serial = (await readFile(opts.serialLog, 'utf8').catch(() => '')).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
      // Both: the getty prompts before multi-user.target is complete (slow units such as host
      // key generation still run), and the report alone does not prove a console login.
      const report = new RegExp(`${BOOT_COMPLETE_MARKER} firmware=(\\w+) failed-units=(\\S+)`).exec(serial);
      if (/\blogin: /.test(serial) && report) {
        const seconds = (Date.now() - t0) / 1000;
        await opts.whileUp?.();
        return { firmware: opts.firmware, accel, seconds, serial, reportedFirmware: report[1]!, failedUnits: report[2]! };
      }
      const fatal = FATAL.find((re) => re.test(serial));
      const tail = () => serial.split('\n').slice(-30).join('\n');
      if (fatal) throw new Error(`${opts.firmware} boot of ${opts.disk} failed (${fatal}); serial console in ${opts.serialLog}:\n${tail()}`);
      if (exited) {
        const r = await qemu;
        throw new Error(`qemu exited (${r.exitCode}) before a login prompt: ${String(r.all ?? '').slice(-2000)}\nserial console in ${opts.serialLog}:\n${tail()}`);
      }
      if (Date.now() - t0 > opts.timeoutMs) {
        throw new Error(`no login prompt after ${opts.timeoutMs / 1000} s of ${opts.firmware} boot (${accel}); serial console in ${opts.serialLog}:\n${tail()}`);
      }
    }
  } finally {
    qemu.kill('SIGTERM');
    await qemu.catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}
