#!/usr/bin/env node
// Bundles the command (tsc's build/daemon/src/main.js and all it imports, npm packages included)
// into build/daemon/src/cli.js and its chunks in build/daemon/src/cli-chunks/. Every query pays
// Node.js's module loading before its first read: resolving and compiling some 300 files (zod and
// yaml are many small modules) cost about 50 ms of a 250 ms `extract`; one file per command costs
// less. Each command stays its own chunk, loaded when it runs (main.ts's lazy imports). Not
// minified, so a stack trace still names functions and lines.
//   node scripts/bundle-cli.mjs        (npm run build:ts runs it after tsc)
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'build', 'daemon', 'src');

await rm(join(src, 'cli-chunks'), { recursive: true, force: true });
const result = await build({
  entryPoints: { cli: join(src, 'main.js') },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  splitting: true,
  outdir: src,
  chunkNames: 'cli-chunks/[name]-[hash]',
  // Native add-ons are loaded at run time by createRequire; they stay in node_modules.
  external: ['cap', 'sd-notify'],
  // Some npm packages are CommonJS and call require(): give the ESM bundle one.
  banner: { js: "import { createRequire as __qeCreateRequire } from 'node:module';\nconst require = __qeCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
// A warning is a module left out of the bundle (an import() of a computed path, say): it would
// be missing at run time, so the build stops.
if (result.warnings.length) throw new Error(`scripts/bundle-cli.mjs: ${result.warnings.length} warning(s) from esbuild, see above`);
