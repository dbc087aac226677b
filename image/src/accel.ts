// KVM or TCG for a QEMU guest. /dev/kvm being there is not enough: on some nested hosts KVM runs
// SeaBIOS but OVMF stops at once with "KVM internal error. Suberror: 1 … emulation failure" (QEMU
// then sits paused), `-cpu host` aborts on an MSR the host refuses, or grub runs and the kernel
// never prints. So KVM is chosen only after a short run of the same command line (firmware,
// machine, CPU model, disk) has reached the guest's kernel; otherwise TCG, with one log line
// saying why. QE_ACCEL=kvm|tcg forces either.
import { execa } from 'execa';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FATAL_CONSOLE, consoleTail, plainConsole } from './console-watch.js';
import { log } from './log.js';
import { qmpStatus, STOPPED_STATES } from './qmp.js';

export type Accel = 'kvm' | 'tcg';

/** The kernel's first line on the console: the guest got through firmware and boot loader. */
const KERNEL_STARTED = /Linux version \d/;
/** A working KVM reaches the kernel in a few seconds; TCG needs 10-20 s for the same path. */
export const PROBE_MS = 25_000;

export interface ProbeObservation {
  /** QEMU exited during the probe (an assertion on `-cpu host`, a bad option). */
  exited: boolean;
  exitCode?: number;
  stderr: string;
  /** The guest's serial console, escapes removed. */
  console: string;
  /** QEMU's run state at the end (QMP), when it still answered. */
  state?: string;
  seconds: number;
}

/** Whether KVM ran the guest, and why not. Pure: tested with what QEMU printed on this machine. */
export function judgeProbe(o: ProbeObservation): { usable: boolean; reason: string } {
  const internal = /KVM internal error\.?\s*(Suberror: \d+)?/.exec(o.stderr);
  if (internal) return { usable: false, reason: `KVM internal error${internal[1] ? ` (${internal[1]}${/emulation failure/.test(o.stderr) ? ', emulation failure' : ''})` : ''}: QEMU stopped the guest` };
  if (o.exited) {
    const why = o.stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/warning:/.test(l)).slice(-1)[0] ?? 'no message';
    return { usable: false, reason: `QEMU exited${o.exitCode !== undefined ? ` (${o.exitCode})` : ''} under KVM: ${why}` };
  }
  if (o.state && STOPPED_STATES.has(o.state)) return { usable: false, reason: `QEMU stopped the guest under KVM (state ${o.state})` };
  if (KERNEL_STARTED.test(o.console)) return { usable: true, reason: `the guest reached its kernel in ${o.seconds.toFixed(0)} s` };
  // A boot that fails on its own (grub rescue, no boot device) is the disk's fault, not KVM's: the
  // real run shows it and fails fast.
  const fatal = FATAL_CONSOLE.find((re) => re.test(o.console));
  if (fatal) return { usable: true, reason: `the guest ran under KVM (to ${fatal.source.replace(/\\/g, '')})` };
  const last = consoleTail(o.console, 3).replace(/\s+/g, ' ').trim();
  return { usable: false, reason: `the guest did not reach its kernel in ${o.seconds.toFixed(0)} s under KVM (console ends: ${last ? `"${last.slice(-120)}"` : 'nothing written'})` };
}

/** QE_ACCEL, checked; undefined when unset. */
export function forcedAccel(env: NodeJS.ProcessEnv = process.env): Accel | undefined {
  const v = env.QE_ACCEL;
  if (v === undefined || v === '') return undefined;
  if (v !== 'kvm' && v !== 'tcg') throw new Error(`QE_ACCEL=${v}: use QE_ACCEL=kvm or QE_ACCEL=tcg, or unset it to probe`);
  return v;
}

export function kvmAccessible(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `qemu-system-x86_64 args` (built for KVM) with its own console file and QMP socket until the
 * kernel prints, QEMU fails, or PROBE_MS pass. The disk must be attached with -snapshot (or be a
 * throw-away copy): the probe's guest is killed mid-boot.
 */
export async function probeKvm(args: readonly string[], probeMs = PROBE_MS): Promise<ProbeObservation> {
  const dir = await mkdtemp(join(tmpdir(), 'qe-accel-'));
  const serial = join(dir, 'serial.log');
  const qmp = join(dir, 'qmp.sock');
  const qemu = execa('qemu-system-x86_64', [...args, '-display', 'none', '-monitor', 'none', '-serial', `file:${serial}`, '-qmp', `unix:${qmp},server=on,wait=off`], {
    stdin: 'ignore',
    reject: false,
    all: true,
  });
  let exited = false;
  let stderr = '';
  qemu.all?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  void qemu.then(() => {
    exited = true;
  });
  const t0 = Date.now();
  let text = '';
  try {
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      text = plainConsole(await readFile(serial, 'utf8').catch(() => ''));
      const seconds = (Date.now() - t0) / 1000;
      const ended = exited || /KVM internal error/.test(stderr) || KERNEL_STARTED.test(text) || FATAL_CONSOLE.some((re) => re.test(text)) || seconds * 1000 >= probeMs;
      if (!ended) continue;
      const state = exited ? undefined : await qmpStatus(qmp);
      const r = exited ? await qemu : undefined;
      return { exited, exitCode: r?.exitCode, stderr, console: text, state, seconds };
    }
  } finally {
    qemu.kill('SIGKILL');
    await qemu.catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

const decided = new Map<string, Promise<Accel>>();

/**
 * The accelerator for a guest, decided once per process for each `key` (firmware, machine and CPU
 * model: what makes KVM work or not). `argsFor(accel)` is the guest's QEMU command line without
 * its console and monitor options; with KVM it is run briefly to see that KVM works.
 */
export function chooseAccel(key: string, argsFor: (accel: Accel) => string[], env: NodeJS.ProcessEnv = process.env): Promise<Accel> {
  let p = decided.get(key);
  if (!p) {
    p = (async () => {
      const forced = forcedAccel(env);
      if (forced) {
        log(`accelerator for ${key}: ${forced} (QE_ACCEL=${forced})`);
        return forced;
      }
      if (!kvmAccessible()) {
        log(`accelerator for ${key}: tcg (/dev/kvm is missing or not accessible)`);
        return 'tcg';
      }
      const verdict = judgeProbe(await probeKvm(argsFor('kvm')));
      const accel: Accel = verdict.usable ? 'kvm' : 'tcg';
      log(`accelerator for ${key}: ${accel} (KVM probe: ${verdict.reason}; QE_ACCEL=kvm|tcg forces one)`);
      return accel;
    })();
    decided.set(key, p);
  }
  return p;
}
