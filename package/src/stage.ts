// The file tree of the package, written into a staging directory that dpkg-deb turns into a .deb.
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { $ } from 'zx';
import { renderUnit } from '../../daemon/src/systemd/unit.js';
import { packageRoot } from '../../daemon/src/util/native.js';
import { nodeTarball, rebuildAddons, unpackNode } from './node-runtime.js';

export const LIB_DIR = '/usr/lib/qe-packets';
export const NODE_BIN = `${LIB_DIR}/node/bin/node`;
export const NATIVE_TOOLS = ['qe-capture', 'qe-extract', 'qe-flowstat', 'qe-index', 'qe-privsep'];
export const CONFFILES = ['/etc/qe-packets/config.yaml'];
const DEBIAN_FILES = join(packageRoot, 'package', 'debian');

/** Production dependencies only: the checkout's installed modules pruned of dev ones, their native
 * addons rebuilt for the shipped runtime. */
async function productionModules(target: string, nodeTgz: string): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'qe-prune-'));
  try {
    for (const f of ['package.json', 'package-lock.json']) await copyFile(join(packageRoot, f), join(work, f));
    // Hard links make the copy instant; prune only unlinks, and the one file npm would rewrite
    // (the hidden lockfile) is unlinked first so the checkout's own copy is never written through.
    const modules = join(work, 'node_modules');
    await $`cp -al ${join(packageRoot, 'node_modules')} ${modules}`;
    await rm(join(modules, '.package-lock.json'), { force: true });
    // Tools' caches (vitest's results, esbuild's, Vite's) live in node_modules/.vite and .cache: a
    // test run rewrites them, so shipping them would make two builds of one tree differ.
    for (const cache of ['.vite', '.cache']) await rm(join(modules, cache), { recursive: true, force: true });
    await $({ cwd: work })`npm prune --omit=dev --ignore-scripts --no-audit --no-fund`;
    await rebuildAddons(modules, nodeTgz);
    // Compiler leftovers of node-gyp (only build/Release/*.node is loaded) and the scopes prune emptied.
    await $`find ${modules} -depth '(' -name obj.target -o -name .deps ')' -type d -exec rm -rf '{}' +`;
    await $`find ${modules} -depth -type d -empty -delete`;
    // A real copy: the staging tree's modes are normalised, which must not reach the checkout through links.
    await $`cp -a ${modules} ${target}`;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function findFiles(dir: string, suffix: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (entry.isFile() && entry.name.endsWith(suffix)) out.push(join(entry.parentPath, entry.name));
  return out;
}

export interface StagedTree {
  /** The ELF files shipped, for dpkg-shlibdeps. */
  elfFiles: string[];
}

/** Writes everything but DEBIAN/ into stage. version goes into the shipped package.json (what `qe-packets --version` prints). */
export async function stageTree(stage: string, version: string): Promise<StagedTree> {
  for (const tool of NATIVE_TOOLS)
    if (!existsSync(join(packageRoot, 'build', 'native', tool))) throw new Error(`build/native/${tool} is missing: run \`npm run build\` before packaging`);
  if (!existsSync(join(packageRoot, 'build', 'console', 'index.html'))) throw new Error('build/console/index.html is missing: run `npm run build` before packaging (it bundles the web console)');
  const lib = join(stage, LIB_DIR);
  await mkdir(join(lib, 'build', 'native'), { recursive: true });

  const pkg = JSON.parse(await readFile(join(packageRoot, 'package.json'), 'utf8')) as Record<string, unknown>;
  // Scripts and dev dependencies describe the checkout, not the installed program.
  delete pkg.scripts;
  delete pkg.devDependencies;
  await writeFile(join(lib, 'package.json'), `${JSON.stringify({ ...pkg, version }, null, 2)}\n`);
  await copyFile(join(packageRoot, 'README.md'), join(lib, 'README.md'));
  await cp(join(packageRoot, 'build', 'daemon'), join(lib, 'build', 'daemon'), { recursive: true });
  // The web console, bundled: the daemon serves it from beside its own code (build/console).
  await cp(join(packageRoot, 'build', 'console'), join(lib, 'build', 'console'), { recursive: true });
  for (const tool of NATIVE_TOOLS) await copyFile(join(packageRoot, 'build', 'native', tool), join(lib, 'build', 'native', tool));
  await copyFile(join(packageRoot, 'build', 'config.schema.json'), join(lib, 'build', 'config.schema.json'));
  const nodeTgz = await nodeTarball();
  await productionModules(join(lib, 'node_modules'), nodeTgz);
  await unpackNode(nodeTgz, join(lib, 'node'));

  await mkdir(join(stage, 'usr', 'bin'), { recursive: true });
  await copyFile(join(DEBIAN_FILES, 'qe-packets.sh'), join(stage, 'usr', 'bin', 'qe-packets'));
  await chmod(join(stage, 'usr', 'bin', 'qe-packets'), 0o755);
  await mkdir(join(stage, 'lib', 'systemd', 'system'), { recursive: true });
  await writeFile(join(stage, 'lib', 'systemd', 'system', 'qe-packets.service'), renderUnit({ libDir: LIB_DIR, node: NODE_BIN }));
  // Enabled only on appliance images (the image build does it): on a server there is no OVF environment.
  for (const unit of ['qe-packets-firstboot', 'qe-packets-console-setup'] as const)
    await writeFile(join(stage, 'lib', 'systemd', 'system', `${unit}.service`), renderUnit({ libDir: LIB_DIR, node: NODE_BIN }, unit));
  await mkdir(join(stage, 'etc', 'qe-packets'), { recursive: true });
  await copyFile(join(DEBIAN_FILES, 'config.yaml'), join(stage, 'etc', 'qe-packets', 'config.yaml'));
  await mkdir(join(stage, 'usr', 'share', 'qe-packets'), { recursive: true });
  await copyFile(join(packageRoot, 'docs', 'config.schema.json'), join(stage, 'usr', 'share', 'qe-packets', 'config.schema.json'));
  // Alert rules and the Grafana dashboard, for the monitoring server to pick up.
  await cp(join(packageRoot, 'daemon', 'monitoring'), join(stage, 'usr', 'share', 'qe-packets', 'monitoring'), { recursive: true });

  // Whatever the umask of the build: directories 0755, files 0644 or 0755 if executable.
  await $`chmod -R u+rwX,go+rX,go-w ${stage}`;
  // Every file time at SOURCE_DATE_EPOCH when it is set, so the same tree packs into the same .deb.
  if (process.env.SOURCE_DATE_EPOCH) await $`find ${stage} -exec touch --no-dereference --date=@${process.env.SOURCE_DATE_EPOCH} '{}' +`;
  return {
    elfFiles: [join(lib, 'node', 'bin', 'node'), ...NATIVE_TOOLS.map((t) => join(lib, 'build', 'native', t)), ...(await findFiles(join(lib, 'node_modules'), '.node'))],
  };
}

/** Writes DEBIAN/: control, conffiles and the maintainer scripts. */
export async function stageDebian(stage: string, control: string): Promise<void> {
  const dir = join(stage, 'DEBIAN');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'control'), control);
  await writeFile(join(dir, 'conffiles'), `${CONFFILES.join('\n')}\n`);
  for (const script of ['postinst', 'prerm', 'postrm']) {
    await copyFile(join(DEBIAN_FILES, script), join(dir, script));
    await chmod(join(dir, script), 0o755);
  }
}
