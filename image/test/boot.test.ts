// Boots the base image by both firmware paths and checks it reaches multi-user.target with a login
// prompt on the serial console. Slow under TCG (no KVM): run by `npm run test:image` only.
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buildBase, imageDir, type BaseImage } from '../src/build-base.js';
import { bootToLogin, type Firmware } from '../src/boot.js';

/** Generous: a TCG boot takes 1-2 minutes; a failed one is stopped long before (console-watch.ts). */
const BOOT_TIMEOUT_MS = 20 * 60_000;

describe('base image', () => {
  let base: BaseImage;
  beforeAll(async () => {
    base = await buildBase();
    await mkdir(join(imageDir(), 'boot-logs'), { recursive: true });
  });

  for (const firmware of ['bios', 'uefi'] as Firmware[]) {
    it(`boots by ${firmware === 'bios' ? 'BIOS (SeaBIOS, grub i386-pc)' : 'UEFI (OVMF, grub x86_64-efi at the removable path)'} to a login prompt`, async () => {
      const serialLog = join(imageDir(), 'boot-logs', `base-${base.hash}-${firmware}.log`);
      const r = await bootToLogin({ disk: base.path, firmware, timeoutMs: BOOT_TIMEOUT_MS, serialLog });
      console.log(`${firmware} boot to login prompt and multi-user.target: ${r.seconds.toFixed(0)} s under ${r.accel}, longest console silence ${r.maxSilentSeconds.toFixed(0)} s (serial log ${serialLog})`);
      // grub ran from the disk (its menu goes to the serial terminal too) ...
      expect(r.serial).toMatch(/GNU GRUB/);
      // ... under the firmware asked for: the kernel reports EFI only when booted by UEFI.
      if (firmware === 'uefi') expect(r.serial).toMatch(/efi: EFI v\d/);
      else expect(r.serial).not.toMatch(/efi: EFI v\d/);
      // The kernel command line the image sets, so the console is on serial for every hypervisor.
      expect(r.serial).toMatch(/Command line: .*console=ttyS0,115200n8/);
      // The booted system's own view, reported after multi-user.target.
      expect(r.reportedFirmware).toBe(firmware);
      expect(r.failedUnits).toBe('none');
      expect(r.serial).toMatch(/qe-packets login: /);
    });
  }
});
