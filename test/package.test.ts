// The update package for real: built twice (two versions) by the package build, installed,
// upgraded, removed and purged with dpkg inside a Debian 12 root made by debootstrap.
import { createHash } from 'node:crypto';
import { chown, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPLICIT_DEPENDS, checkVersion, controlFile, mergeDepends } from '../package/src/control.js';
import { TEST_ROOT_PACKAGES } from '../package/src/debian-root.js';
import { PACKAGES as IMAGE_PACKAGES } from '../image/src/config.js';
import { buildDeb } from '../package/src/build-deb.js';
import { NODE } from '../package/src/node-runtime.js';
import { freshRoot, inRoot, removeRoot } from './lib/chroot.js';
import { root as checkout } from './lib/cli.js';

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

describe('package sources', () => {
  it('maintainer scripts and the wrapper pass shellcheck', async () => {
    const dir = join(checkout, 'package', 'debian');
    const res = await execa('shellcheck', ['--shell=sh', ...['postinst', 'prerm', 'postrm', 'qe-packets.sh'].map((f) => join(dir, f))], { reject: false, all: true });
    expect(res.all).toBe('');
    expect(res.exitCode).toBe(0);
  });

  it('rejects a version dpkg would refuse, naming it and the fix', () => {
    expect(() => checkVersion('v1.0')).toThrow(/version 'v1\.0' is not a Debian version: start with a digit/);
    expect(checkVersion('0.2.0~rc1')).toBe('0.2.0~rc1');
  });
  it('keeps the explicit libpcap bound over the one dpkg-shlibdeps finds', () => {
    expect(mergeDepends(['libpcap0.8 (>= 1.10)'], ['libc6 (>= 2.34)', 'libpcap0.8 (>= 1.0.0)'])).toEqual(['libpcap0.8 (>= 1.10)', 'libc6 (>= 2.34)']);
    expect(controlFile({ version: '1.0', shlibDepends: ['libc6 (>= 2.34)'], installedSizeKiB: 1 })).toMatch(/^Depends: adduser, libpcap0\.8 \(>= 1\.10\), libsystemd0, openssl, libc6 \(>= 2\.34\)$/m);
  });
  it('depends on openssl, which first boot runs for the API certificate, and the image installs it', async () => {
    expect(readFileSync(join(checkout, 'daemon/src/appliance/api-cert.ts'), 'utf8')).toMatch(/execa\('openssl', \['req', '-x509'/);
    expect(controlFile({ version: '1.0', shlibDepends: [], installedSizeKiB: 1 })).toMatch(/^Depends: .*\bopenssl\b/m);
    expect(IMAGE_PACKAGES).toContain('openssl');
    // The root the .deb is installed into in the test below has its Depends, as apt would install them.
    expect(TEST_ROOT_PACKAGES).toEqual(expect.arrayContaining(EXPLICIT_DEPENDS.map((d) => d.split(' ')[0])));
  });
});

describe('qe-packets .deb in a Debian 12 root', () => {
  const v1 = (JSON.parse(readFileSync(join(checkout, 'package.json'), 'utf8')) as { version: string }).version;
  const v2 = `${v1}+upgrade1`;
  let out: string;
  let root: string;
  let deb1: string;
  let deb2: string;
  let deb1again: string;
  const captured = '/var/lib/qe-packets/store/qe-lo-20260101T000000.000000Z-000001.pcap';
  let capturedSha: string;
  const localConfig = 'capture:\n  interfaces: [lo]\nstorage:\n  paths: [/var/lib/qe-packets/store]\n  capacity: 1GiB\n  file_size: 64MiB\n# changed on this box\n';

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'qe-debs-'));
    // gzip: the release default (xz) costs a minute more on two shared cores and proves nothing more here.
    // A fixed SOURCE_DATE_EPOCH, as `npm run appliance` sets: the same tree must pack the same .deb.
    process.env.SOURCE_DATE_EPOCH = '1764000000';
    deb1 = await buildDeb({ outDir: out, compress: 'gzip' });
    deb1again = await buildDeb({ outDir: join(out, 'again'), compress: 'gzip' });
    delete process.env.SOURCE_DATE_EPOCH;
    deb2 = await buildDeb({ outDir: out, compress: 'gzip', version: v2 });
    root = await freshRoot('qe-pkg-root-');
    await execa('cp', [deb1, deb2, join(root, 'tmp')]);
  }, 900_000);
  afterAll(async () => {
    if (root) await removeRoot(root);
    if (out) await removeRoot(out);
  });

  const dpkg = (...args: string[]) => inRoot(root, ['dpkg', ...args]);

  it('is reproducible: two builds of one tree with SOURCE_DATE_EPOCH are the same bytes', async () => {
    const sha = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');
    expect(await sha(deb1again)).toBe(await sha(deb1));
  });

  it('ships no tool caches (a test run rewrites node_modules/.vite: the bytes would depend on it)', async () => {
    const list = (await execa('dpkg-deb', ['-c', deb1])).stdout;
    expect(list).toContain('/usr/lib/qe-packets/node_modules/zod/');
    expect(list).not.toMatch(/node_modules\/\.(vite|cache)\//);
  });

  it('builds dist-style names from package.json and --version', () => {
    expect(deb1).toBe(join(out, `qe-packets_${v1}_amd64.deb`));
    expect(deb2).toBe(join(out, `qe-packets_${v2}_amd64.deb`));
  });

  it('installs: the user, the unit, the conffile, the shipped Node.js, a store owned by the user', async () => {
    const res = await dpkg('-i', `/tmp/qe-packets_${v1}_amd64.deb`);
    expect(res.all).toContain(`Setting up qe-packets (${v1})`);
    expect(res.exitCode).toBe(0);

    const user = await inRoot(root, ['getent', 'passwd', 'qe-packets']);
    expect(user.stdout).toMatch(/^qe-packets:x:\d+:\d+:[^:]*:\/var\/lib\/qe-packets:\/usr\/sbin\/nologin$/);
    expect((await inRoot(root, ['getent', 'group', 'qe-packets'])).exitCode).toBe(0);

    const unit = await readFile(join(root, 'lib/systemd/system/qe-packets.service'), 'utf8');
    expect(unit).toContain('ExecStart=/usr/lib/qe-packets/build/native/qe-privsep /usr/lib/qe-packets/node/bin/node /usr/lib/qe-packets/build/daemon/src/cli.js capture --config /etc/qe-packets/config.yaml');
    // systemd's own check, resolving every path inside the root (it fails on a missing ExecStart binary).
    const verify = await execa('systemd-analyze', ['verify', `--root=${root}`, '/lib/systemd/system/qe-packets.service'], { reject: false, all: true });
    expect(verify.all).toBe('');
    expect(verify.exitCode).toBe(0);

    expect((await inRoot(root, ['dpkg-query', '-W', '-f=${Conffiles}', 'qe-packets'])).stdout).toContain('/etc/qe-packets/config.yaml');
    const control = (await inRoot(root, ['dpkg-query', '-W', '-f=${Depends}', 'qe-packets'])).stdout;
    expect(control).toMatch(/libpcap0\.8 \(>= 1\.10\)/);
    expect(control.split(', ')).toContain('openssl');
    expect(control).toMatch(/libc6/);

    // No tool's cache from the checkout (vitest writes node_modules/.vite on every run).
    expect(existsSync(join(root, 'usr/lib/qe-packets/node_modules/.vite'))).toBe(false);
    const version = await inRoot(root, ['qe-packets', '--version']);
    expect(version.stdout.trim()).toBe(v1);
    expect((await inRoot(root, ['/usr/lib/qe-packets/node/bin/node', '--version'])).stdout.trim()).toBe(`v${NODE.version}`);
    // The native addons (cap: interface discovery; sd-notify: READY and the watchdog) were rebuilt
    // for that runtime's ABI: they load.
    const addons = await inRoot(root, ['/usr/lib/qe-packets/node/bin/node', '-e', "for (const m of ['cap', 'sd-notify']) require('/usr/lib/qe-packets/node_modules/' + m); console.log('addons load')"]);
    expect(addons.all).toBe('addons load');
    // The web console the daemon serves, bundled: an index naming hashed files that are all there.
    const consoleDir = join(root, 'usr/lib/qe-packets/build/console');
    const index = await readFile(join(consoleDir, 'index.html'), 'utf8');
    const named = [...index.matchAll(/(?:src|href)="\/([^"]+)"/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThanOrEqual(3);
    for (const f of named) expect(existsSync(join(consoleDir, f)), f).toBe(true);
    // Debian's own node is not there: the wrapper runs the shipped one.
    expect(existsSync(join(root, 'usr/bin/node'))).toBe(false);

    const store = await inRoot(root, ['stat', '-c', '%U:%G %a', '/var/lib/qe-packets/store']);
    expect(store.stdout.trim()).toBe('qe-packets:qe-packets 750');
    // No production module is missing: the CLI loads every command's imports.
    expect((await inRoot(root, ['qe-packets', 'provision', 'storage', '--help'])).all).toMatch(/usage: qe-packets provision storage/);
  });

  it('check-config works with the shipped runtime: the default names no interface (exit 2), a local one is valid', async () => {
    const dflt = await inRoot(root, ['qe-packets', 'check-config']);
    expect(dflt.exitCode).toBe(2);
    expect(dflt.all).toContain('capture.interfaces = []');

    await writeFile(join(root, 'etc/qe-packets/config.yaml'), localConfig);
    const ok = await inRoot(root, ['qe-packets', 'check-config']);
    expect(ok.all).toContain('/etc/qe-packets/config.yaml: valid');
    expect(ok.exitCode).toBe(0);
  });

  it('upgrades without a prompt, keeping the locally changed config and every captured file', async () => {
    const file = join(root, captured);
    await writeFile(file, Buffer.concat([Buffer.from('d4c3b2a1020004000000000000000000ffff000001000000', 'hex'), Buffer.alloc(4096, 7)]));
    const uid = Number((await inRoot(root, ['id', '-u', 'qe-packets'])).stdout);
    await chown(file, uid, uid);
    capturedSha = await sha256(file);

    // stdin is closed: a conffile question would fail the upgrade. None is asked because the
    // shipped default did not change between the versions, so dpkg keeps the local file silently.
    const res = await dpkg('-i', `/tmp/qe-packets_${v2}_amd64.deb`);
    expect(res.all).not.toMatch(/Configuration file .* modified/);
    expect(res.exitCode).toBe(0);
    expect((await inRoot(root, ['qe-packets', '--version'])).stdout.trim()).toBe(v2);
    expect(await readFile(join(root, 'etc/qe-packets/config.yaml'), 'utf8')).toBe(localConfig);
    expect(await sha256(file)).toBe(capturedSha);
    expect((await stat(file)).uid).toBe(uid);
  });

  it('remove keeps the config, the captures and the user; purge removes the config and still keeps the captures', async () => {
    const removed = await dpkg('--remove', 'qe-packets');
    expect(removed.exitCode).toBe(0);
    expect(existsSync(join(root, 'usr/bin/qe-packets'))).toBe(false);
    expect(existsSync(join(root, 'usr/lib/qe-packets'))).toBe(false);
    expect(existsSync(join(root, 'lib/systemd/system/qe-packets.service'))).toBe(false);
    expect(await readFile(join(root, 'etc/qe-packets/config.yaml'), 'utf8')).toBe(localConfig);
    expect(await sha256(join(root, captured))).toBe(capturedSha);

    const purged = await dpkg('--purge', 'qe-packets');
    expect(purged.exitCode).toBe(0);
    expect(existsSync(join(root, 'etc/qe-packets'))).toBe(false);
    expect(await sha256(join(root, captured))).toBe(capturedSha);
    expect((await inRoot(root, ['getent', 'passwd', 'qe-packets'])).exitCode).toBe(0);
    expect((await dpkg('-s', 'qe-packets')).exitCode).not.toBe(0);
  });
});
