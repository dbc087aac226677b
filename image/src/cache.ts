// The base image is rebuilt only when one of its inputs changes: the package and module lists,
// the Node.js pin, the mirrors, the disk size and the build's own source code. Package updates
// published to the mirror are not an input (that would need the mirror's index in the hash):
// QE_IMAGE_REBUILD=1 or `npm run image:base -- --rebuild` takes them in.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as config from './config.js';

/** The repository root, from build/image/src/cache.js or image/src/cache.ts alike. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      readFileSync(join(dir, 'package.json'));
      return dir;
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
}

/** The modules whose code decides what is in the base disk. Not boot.ts, convert.ts or
 * appliance.ts: changing a test or an output format must not rebuild the base. */
export const BASE_SOURCES = ['config.ts', 'log.ts', 'disk.ts', 'debootstrap.ts', 'node.ts', 'bootloader.ts', 'rootfs.ts', 'cache.ts', 'build-base.ts'];

export function baseInputs(mirrors: config.Mirrors): Record<string, unknown> {
  const srcDir = join(repoRoot(), 'image/src');
  const present = new Set(readdirSync(srcDir));
  const sources = Object.fromEntries(
    BASE_SOURCES.map((f) => {
      if (!present.has(f)) throw new Error(`image/src/${f} is missing: the base image's cache hash needs every file in BASE_SOURCES (image/src/cache.ts)`);
      return [f, createHash('sha256').update(readFileSync(join(srcDir, f))).digest('hex')];
    }),
  );
  return {
    suite: config.SUITE,
    arch: config.ARCH,
    diskMiB: config.DISK_SIZE_MIB,
    hostname: config.HOSTNAME,
    packages: config.PACKAGES,
    initramfsModules: config.INITRAMFS_MODULES,
    node: config.NODE,
    mirrors,
    sources,
  };
}

export function hashInputs(inputs: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16);
}
