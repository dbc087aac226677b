// `npm run appliance`: the whole pipeline, stage by stage. Today it runs stage 1 (the base) and the
// disk conversions of stage 3; stage 2 (Packer booting the base and running ansible/site.yml) and
// the OVA (descriptor, manifest, tar) are not written yet and plug in where marked.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildBase, type BaseImage } from './build-base.js';
import { repoRoot } from './cache.js';
import { log } from './log.js';
import { toQcow2, toStreamOptimizedVmdk, toImgZst, sizeMiB } from './convert.js';

export interface ProvisionedImage {
  /** A raw disk of the finished appliance. */
  raw: string;
  provisioned: boolean;
}

/**
 * Stage 2 boundary. The implementation will copy the base, boot it with Packer's qemu builder
 * (packer/) and run ansible/site.yml in it, and return the provisioned raw disk. Until then the
 * outputs are the unprovisioned base, and the log says so.
 */
export async function provision(base: BaseImage): Promise<ProvisionedImage> {
  log('stage 2 (Packer + Ansible) is not implemented yet: the outputs are the unprovisioned base image');
  return { raw: base.path, provisioned: false };
}

export interface Outputs {
  qcow2: string;
  vmdk: string;
  imgZst: string;
  bmap: string;
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
  };
  await toQcow2(image.raw, out.qcow2);
  await toStreamOptimizedVmdk(image.raw, out.vmdk);
  await toImgZst(image.raw, out.imgZst, out.bmap);
  return out;
}

export async function appliance(): Promise<Outputs> {
  const root = repoRoot();
  const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
  if (!/^\d+\.\d+\.\d+([-+][\w.-]+)?$/.test(version)) throw new Error(`package.json version "${version}" is not a semver version: output names are built from it`);
  const base = await buildBase({ rebuild: process.env.QE_IMAGE_REBUILD === '1' });
  const image = await provision(base);
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
