import { defineConfig } from 'vitest/config';

// Image tests boot VMs (minutes each under TCG): only `npm run test:image` runs them, never `npm test`.
export default defineConfig({
  test: {
    include: ['image/test/**/*.test.ts'],
    fileParallelism: false,
    // A base build from nothing plus two TCG boots.
    testTimeout: 40 * 60_000,
    hookTimeout: 40 * 60_000,
  },
});
