// Fail-fast waiting on a guest: every wait on a QEMU guest (a boot test, the Packer build) reads its
// serial console and gives up at once when the console shows a boot that cannot recover, when QEMU
// has stopped, or when nothing has been written for too long; otherwise it may wait up to a
// generous limit, so a slow day is not a failure.
import { readFile, stat } from 'node:fs/promises';
import { qmpStatus, STOPPED_STATES } from './qmp.js';

/** Console text after which waiting longer is pointless: the boot has failed for good. */
export const FATAL_CONSOLE: readonly RegExp[] = [
  /Kernel panic/,
  /grub rescue>/,
  // The UEFI shell: OVMF found nothing it could boot.
  /Shell> /,
  /You are in emergency mode/,
  /Give root password for maintenance/,
  /ALERT! .* does not exist/,
  /No bootable device/,
];

/**
 * Under TCG the longest silence seen in a healthy boot or build is well under a minute (README,
 * Appliance images); five minutes means the guest is stuck, not slow.
 */
export const DEFAULT_STALL_MS = 5 * 60_000;

/** Terminal escapes removed: systemd colours unit names, grub and OVMF draw with them. */
export function plainConsole(text: string): string {
  return text.replace(/\x1b\[[0-9;?=]*[A-Za-z]/g, '');
}

export function consoleTail(text: string, lines = 30): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** Why the wait should stop now, or undefined to keep waiting. Pure: the unit tests feed it what
 * real failed boots printed. */
export function consoleFailure(o: { text: string; silentMs: number; stallMs: number; qemuState?: string }): string | undefined {
  const fatal = FATAL_CONSOLE.find((re) => re.test(o.text));
  if (fatal) return `the console shows ${fatal.source.replace(/\\/g, '')}`;
  if (o.qemuState && STOPPED_STATES.has(o.qemuState)) return `QEMU has stopped the guest (state ${o.qemuState})`;
  if (o.silentMs >= o.stallMs) return `the guest has written nothing to its console for ${Math.round(o.silentMs / 1000)} s (limit ${Math.round(o.stallMs / 1000)} s)`;
  return undefined;
}

/**
 * Polls a guest's console file (and optionally other signs of progress, such as Packer's output)
 * and its QEMU's QMP socket. `check()` returns the plain console text and a reason to stop, if any.
 */
export class ConsoleWatch {
  private lastSize = -1;
  private lastProgress = -1;
  private lastChange: number;
  /** The longest silence seen so far, for the README's margins. */
  maxSilentMs = 0;

  constructor(
    private readonly o: {
      console: string;
      stallMs?: number;
      qmpSocket?: string;
      /** Any other counter that grows while the guest works (bytes of Packer's output). */
      progress?: () => number;
      now?: () => number;
    },
  ) {
    this.lastChange = this.now();
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /** Feeds one observation; separated from the file reads so tests can drive it with a fake clock. */
  observe(consoleBytes: number, progress: number): number {
    const t = this.now();
    if (consoleBytes !== this.lastSize || progress !== this.lastProgress) {
      this.lastSize = consoleBytes;
      this.lastProgress = progress;
      this.lastChange = t;
    }
    const silent = t - this.lastChange;
    this.maxSilentMs = Math.max(this.maxSilentMs, silent);
    return silent;
  }

  async check(): Promise<{ text: string; failure?: string }> {
    const size = await stat(this.o.console).then((s) => s.size, () => 0);
    const silentMs = this.observe(size, this.o.progress?.() ?? 0);
    const text = plainConsole(await readFile(this.o.console, 'utf8').catch(() => ''));
    const qemuState = this.o.qmpSocket ? await qmpStatus(this.o.qmpSocket) : undefined;
    return { text, failure: consoleFailure({ text, silentMs, stallMs: this.o.stallMs ?? DEFAULT_STALL_MS, qemuState }) };
  }
}
