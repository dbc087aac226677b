// `npm run appliance`: the whole pipeline, stage by stage, each skipped on a rerun when its inputs
// are unchanged (stages.ts):
//   base      debootstrap into a GPT disk (cached by its own hash, build-base.ts)
//   package   the update package (.deb) from the built daemon
//   packer    Packer boots a copy of the base and runs ansible/site.yml (the .deb, hardening, tuning)
//   disks     qcow2, streamOptimized VMDK, img.zst + bmap
//   ova       descriptor, manifest, tar
//   sbom      CycloneDX SBOM of the image's packages and the npm dependencies
//   sums      SHA256SUMS over everything in dist/
import { execSync } from 'node:child_process';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { buildOva } from '../../ova/src/pack.js';
import { sha256File } from '../../ova/src/manifest.js';
import { buildDeb } from '../../package/src/build-deb.js';
import { packageVersion } from '../../daemon/src/util/version.js';
import { buildBase, imageDir } from './build-base.js';
import { repoRoot } from './cache.js';
import { toImgZst, toQcow2, toStreamOptimizedVmdk, sizeMiB } from './convert.js';
import { log } from './log.js';
import { packerBuild } from './packer-build.js';
import { sbomForImage } from './sbom.js';
import { Stages } from './stages.js';

export interface Outputs {
  deb: string;
  qcow2: string;
  imgZst: string;
  bmap: string;
  ova: string;
  sbom: string;
  sums: string;
}

/** The names of the deliverables in dist/ for a version. */
export function outputNames(distDir: string, version: string): Outputs {
  const name = `qe-packets-${version}`;
  return {
    deb: join(distDir, `qe-packets_${version}_amd64.deb`),
    qcow2: join(distDir, `${name}.qcow2`),
    imgZst: join(distDir, `${name}-amd64.img.zst`),
    bmap: join(distDir, `${name}-amd64.img.bmap`),
    ova: join(distDir, `${name}.ova`),
    sbom: join(distDir, `${name}.cdx.json`),
    sums: join(distDir, 'SHA256SUMS'),
  };
}

/** `sha256sum` format ("hex  name"), names relative to the file's folder so `sha256sum -c` runs there. */
export async function writeSha256Sums(path: string, files: readonly string[]): Promise<void> {
  const lines: string[] = [];
  for (const f of [...files].sort((a, b) => basename(a).localeCompare(basename(b)))) lines.push(`${await sha256File(f)}  ${basename(f)}`);
  await writeFile(`${path}.partial`, `${lines.join('\n')}\n`);
  await rename(`${path}.partial`, path);
}

/** SOURCE_DATE_EPOCH, or the time of the checkout's last commit: every time stamp the build writes. */
function sourceDateEpoch(root: string): number {
  const given = process.env.SOURCE_DATE_EPOCH;
  if (given !== undefined) {
    if (!/^\d+$/.test(given)) throw new Error(`SOURCE_DATE_EPOCH=${given}: give seconds since 1970 (e.g. $(git log -1 --format=%ct))`);
    return Number(given);
  }
  try {
    return Number(execSync('git log -1 --format=%ct', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
  } catch {
    return 0;
  }
}

export async function appliance(): Promise<Outputs> {
  const root = repoRoot();
  const version = packageVersion(root);
  if (!/^\d+\.\d+\.\d+([-+][\w.-]+)?$/.test(version)) throw new Error(`package.json version "${version}" is not a semver version: output names are built from it`);
  const epoch = sourceDateEpoch(root);
  process.env.SOURCE_DATE_EPOCH = String(epoch);
  const work = imageDir();
  const dist = join(root, 'dist');
  await mkdir(dist, { recursive: true });
  const out = outputNames(dist, version);
  const stages = new Stages(root, work);
  const at = (...p: string[]) => join(root, ...p);
  const t0 = Date.now();

  // The base keeps its own cache (its file name carries the hash of its inputs).
  const { path: base } = await stages.timed('base', () => buildBase({ rebuild: process.env.QE_IMAGE_REBUILD === '1' }));
  await stages.run(
    'package',
    { paths: [at('build/daemon'), at('build/console'), at('build/native'), at('build/config.schema.json'), at('package'), at('package.json'), at('package-lock.json'), at('README.md'), at('daemon/monitoring'), at('docs/config.schema.json')], values: { version, epoch } },
    async () => [await buildDeb({ version, outDir: dist })],
  );
  const [raw] = await stages.run('packer', { paths: [out.deb, at('packer'), at('ansible'), at('image/src/packer-build.ts')], values: { base: basename(base), version } }, async () => [
    await packerBuild({ base, deb: out.deb, version, workDir: work }),
  ]);
  const vmdk = join(work, `qe-packets-${version}-disk1.vmdk`);
  const rawId = { raw: basename(raw!), packer: stages.records.at(-1)!.hash };
  await stages.run('disks', { paths: [at('image/src/convert.ts')], values: rawId }, async () => {
    await toQcow2(raw!, out.qcow2);
    await toStreamOptimizedVmdk(raw!, vmdk);
    await toImgZst(raw!, out.imgZst, out.bmap);
    return [out.qcow2, vmdk, out.imgZst, out.bmap];
  });
  await stages.run('ova', { paths: [vmdk, at('ova/src')], values: { version } }, async () => {
    // Assembled beside its disk, then moved to dist/ with the other outputs.
    const ova = await buildOva({
      name: 'qe-packets',
      version,
      systemVmdk: vmdk,
      systemDiskCapacityBytes: (await stat(raw!)).size,
      storeDiskBytes: 64 * 2 ** 30,
      cpus: 4,
      memoryMiB: 8192,
      output: join(work, `qe-packets-${version}.ova`),
    });
    await rename(ova.ova, out.ova);
    return [out.ova];
  });
  await stages.run('sbom', { paths: [at('package-lock.json'), at('image/src/sbom.ts')], values: { ...rawId, epoch } }, async () => {
    await writeFile(out.sbom, await sbomForImage(raw!, at('package-lock.json'), 'qe-packets', version, epoch));
    return [out.sbom];
  });
  const deliverables = [out.deb, out.qcow2, out.imgZst, out.bmap, out.ova, out.sbom];
  // Checking whether the sums are current would hash the same files as writing them.
  await stages.timed('sums', () => writeSha256Sums(out.sums, deliverables));
  await stages.writeReport(join(work, 'stages.json'));
  for (const f of deliverables) log(`${f}: ${await sizeMiB(f)} MiB`);
  log(`appliance: done in ${((Date.now() - t0) / 1000).toFixed(0)} s; stage times in ${join(work, 'stages.json')}`);
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
