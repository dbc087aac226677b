// `npm run package`: builds dist/qe-packets_VERSION_amd64.deb from the built checkout.
//   node build/package/src/build-deb.js [--version V] [--out DIR] [--compress xz|gzip|zstd]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { $ } from 'zx';
import { packageRoot } from '../../daemon/src/util/native.js';
import { packageVersion } from '../../daemon/src/util/version.js';
import { checkVersion, controlFile } from './control.js';
import { shlibDepends } from './shlibdeps.js';
import { stageDebian, stageTree } from './stage.js';

const COMPRESSORS = ['xz', 'gzip', 'zstd'];

export interface BuildOptions {
  version?: string;
  outDir?: string;
  /** xz (the default: smallest download for appliances) or gzip (fast, for tests). */
  compress?: string;
}

export async function buildDeb(opts: BuildOptions = {}): Promise<string> {
  const compress = opts.compress ?? 'xz';
  if (!COMPRESSORS.includes(compress)) throw new Error(`--compress '${compress}' is not supported: use one of ${COMPRESSORS.join(', ')}`);
  const version = checkVersion(opts.version ?? packageVersion());
  const outDir = resolve(opts.outDir ?? join(packageRoot, 'dist'));
  const stage = await mkdtemp(join(tmpdir(), 'qe-deb-'));
  try {
    const { elfFiles } = await stageTree(stage, version);
    const shlibs = await shlibDepends(elfFiles);
    const kib = Number((await $`du -sk --apparent-size ${stage}`).stdout.split('\t')[0]);
    await stageDebian(stage, controlFile({ version, shlibDepends: shlibs, installedSizeKiB: kib }));
    await $`mkdir -p ${outDir}`;
    const deb = join(outDir, `qe-packets_${version}_amd64.deb`);
    await $`dpkg-deb --root-owner-group -Z${compress} --build ${stage} ${deb}`;
    return deb;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { version: { type: 'string' }, out: { type: 'string' }, compress: { type: 'string' } } });
  buildDeb({ version: values.version, outDir: values.out, compress: values.compress }).then(
    (deb) => process.stdout.write(`${deb}\n`),
    (e: unknown) => {
      process.stderr.write(`qe-packets package: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
