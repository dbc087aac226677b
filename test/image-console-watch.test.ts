// The fail-fast wait on a guest (image/src/console-watch.ts): a boot that cannot recover, a stopped
// QEMU or a silent console ends the wait at once; anything else may wait up to the generous limit.
import { writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConsoleWatch, consoleFailure, plainConsole } from '../image/src/console-watch.js';
import { tempDir } from './lib/cli.js';

const calm = { silentMs: 1000, stallMs: 300_000 };

describe('console watch', () => {
  it('stops on a kernel panic, grub rescue and the UEFI shell', () => {
    expect(consoleFailure({ ...calm, text: '[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n' })).toBe('the console shows Kernel panic');
    expect(consoleFailure({ ...calm, text: 'error: unknown filesystem.\nEntering rescue mode...\ngrub rescue> ' })).toBe('the console shows grub rescue>');
    // OVMF with nothing to boot, as it draws it (escapes and all).
    const shell = plainConsole('\x1b[2J\x1b[01;01HUEFI Interactive Shell v2.2\r\nPress ESC in 1 seconds to skip startup.nsh or any other key to continue.\r\n\x1b[1m\x1b[33mShell> \x1b[0m');
    expect(consoleFailure({ ...calm, text: shell })).toBe('the console shows Shell> ');
    expect(consoleFailure({ ...calm, text: 'You are in emergency mode. After logging in, type "journalctl -xb"' })).toMatch(/emergency mode/);
  });

  it('keeps waiting on a healthy boot, however long it takes, while the console moves', () => {
    const text = "Booting `Debian GNU/Linux'\n[    0.000000] Linux version 6.1.0\n[  OK  ] Reached target Multi-User System.\n";
    expect(consoleFailure({ text, silentMs: 299_000, stallMs: 300_000, qemuState: 'running' })).toBeUndefined();
  });

  it('stops when QEMU has stopped the guest (KVM internal error, panic) or the console is silent too long', () => {
    expect(consoleFailure({ ...calm, text: '', qemuState: 'internal-error' })).toBe('QEMU has stopped the guest (state internal-error)');
    expect(consoleFailure({ ...calm, text: '', qemuState: 'guest-panicked' })).toBe('QEMU has stopped the guest (state guest-panicked)');
    expect(consoleFailure({ text: 'Loading initial ramdisk ...', silentMs: 300_000, stallMs: 300_000, qemuState: 'running' })).toBe(
      'the guest has written nothing to its console for 300 s (limit 300 s)',
    );
  });

  it('measures silence from the last growth of the console or of the other progress counter', async () => {
    const dir = await tempDir('qe-watch-');
    const file = join(dir, 'serial.log');
    let now = 0;
    let packerBytes = 0;
    const watch = new ConsoleWatch({ console: file, stallMs: 10_000, now: () => now, progress: () => packerBytes });
    // No file yet: silence counts from the start.
    now = 9_000;
    expect((await watch.check()).failure).toBeUndefined();
    await writeFile(file, 'SeaBIOS\n');
    now = 15_000;
    expect((await watch.check()).failure).toBeUndefined();
    // The console is quiet while Ansible works: Packer's output is progress too.
    now = 24_000;
    packerBytes = 100;
    expect((await watch.check()).failure).toBeUndefined();
    now = 33_000;
    expect((await watch.check()).failure).toBeUndefined();
    now = 34_000;
    const stalled = await watch.check();
    expect(stalled.failure).toBe('the guest has written nothing to its console for 10 s (limit 10 s)');
    expect(stalled.text).toBe('SeaBIOS\n');
    await appendFile(file, 'login: ');
    now = 35_000;
    expect((await watch.check()).failure).toBeUndefined();
    expect(watch.maxSilentMs).toBe(10_000);
  });
});
