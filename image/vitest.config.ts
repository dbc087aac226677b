import { defineConfig } from 'vitest/config';

const ci = process.env.CI === 'true' && process.env.QE_IMAGE_FULL !== '1';

// Image tests boot VMs (minutes each under TCG): only `npm run test:image` runs them, never `npm test`.
// In CI (CI=true) the base image's own BIOS and UEFI boots are left out: the appliance boots go
// through the same firmware paths (README, Tests).
export default defineConfig({
  test: {
    include: ['image/test/**/*.test.ts'],
    exclude: ci ? ['image/test/boot.test.ts'] : [],
    fileParallelism: false,
    // Generous: every wait inside fails fast on a stuck guest (image/src/console-watch.ts).
    testTimeout: 40 * 60_000,
    hookTimeout: 40 * 60_000,
  },
});
