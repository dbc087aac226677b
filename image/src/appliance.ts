// `npm run appliance`: the whole pipeline, stage by stage: 1 the base (debootstrap, cached),
// 2 Packer boots it and runs ansible/site.yml (the .deb, hardening, tuning), 3 the disk formats
// and the OVA (descriptor, manifest, tar).
import { mkdir, readFile, rename, stat } from 'node:fs/promises';
import { buildOva } from '../../ova/src/pack.js';
import { buildDeb } from '../../package/src/build-deb.js';
import { packerBuild } from './packer-build.js';
import { join } from 'node:path';
import { buildBase, type BaseImage } from './build-base.js';
import { repoRoot } from './cache.js';
import { log, timed } from './log.js';
import { toQcow2, toStreamOptimizedVmdk, toImgZst, sizeMiB } from './convert.js';

export interface ProvisionedImage {
  /** A raw disk of the finished appliance. */
  raw: string;
  provisioned: boolean;
}

/** Stage 2: the update package, then Packer and Ansible on a copy of the base. */
export async function provision(base: BaseImage, version: string, workDir: string): Promise<ProvisionedImage> {
  const deb = await timed('update package', () => buildDeb({ version, outDir: join(repoRoot(), 'dist') }));
  const raw = await packerBuild({ base: base.path, deb, version, workDir });
  return { raw, provisioned: true };
}

export interface Outputs {
  qcow2: string;
  vmdk: string;
  imgZst: string;
  bmap: string;
  ova: string;
}

/** Stage 3: disk formats under dist/, named with package.json's version. The VMDK is not a
 * deliverable on its own: it stays in build/image/ for the OVA (descriptor, manifest, tar), which
 * a later stage builds from it. */
export async function makeOutputs(image: ProvisionedImage, distDir: string, workDir: string, version: string): Promise<Outputs> {
  await mkdir(distDir, { recursive: true });
  await mkdir(workDir, { recursive: true });
  const name = `qe-packets-${version}`;
  const out: Outputs = {
    qcow2: join(distDir, `${name}.qcow2`),
    vmdk: join(workDir, `${name}-disk1.vmdk`),
    imgZst: join(distDir, `${name}-amd64.img.zst`),
    bmap: join(distDir, `${name}-amd64.img.bmap`),
    ova: join(distDir, `${name}.ova`),
  };
  await toQcow2(image.raw, out.qcow2);
  await toStreamOptimizedVmdk(image.raw, out.vmdk);
  await toImgZst(image.raw, out.imgZst, out.bmap);
  // The OVA is assembled beside its disk, then moved to dist/ with the other outputs.
  const ova = await buildOva({
    name: 'qe-packets',
    version,
    systemVmdk: out.vmdk,
    systemDiskCapacityBytes: (await stat(image.raw)).size,
    storeDiskBytes: 64 * 2 ** 30,
    cpus: 4,
    memoryMiB: 8192,
    output: join(workDir, `${name}.ova`),
  });
  await rename(ova.ova, out.ova);
  return out;
}

export async function appliance(): Promise<Outputs> {
  const root = repoRoot();
  const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
  if (!/^\d+\.\d+\.\d+([-+][\w.-]+)?$/.test(version)) throw new Error(`package.json version "${version}" is not a semver version: output names are built from it`);
  const base = await buildBase({ rebuild: process.env.QE_IMAGE_REBUILD === '1' });
  const image = await provision(base, version, join(root, 'build/image'));
  const out = await makeOutputs(image, join(root, 'dist'), join(root, 'build/image'), version);
  for (const f of Object.values(out)) log(`${f}: ${await sizeMiB(f)} MiB`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  appliance().then(
    () => undefined,
    (e: Error) => {
      process.stderr.write(`appliance failed: ${e.message}\n`);
      process.exit(1);
    },
  );
}
