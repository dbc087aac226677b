// The Debian root: a minbase debootstrap from the configured mirror, then apt inside a chroot.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile, rm, rename, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { sh, Cleanup, log } from './log.js';
import { ARCH, SUITE, type Mirrors } from './config.js';
import { mount } from './disk.js';

/** minbase plus what apt needs to fetch from the mirror over HTTPS if it is configured so. */
const DEBOOTSTRAP_ARGS = ['--variant=minbase', `--arch=${ARCH}`, '--components=main', '--include=ca-certificates'];

/**
 * debootstrap takes one and a half to two minutes here and its result depends only on the suite,
 * the mirror and its arguments: it is kept as a tarball and unpacked (seconds) when the base is
 * rebuilt for another reason. Its packages go stale, which is why the build upgrades the root from
 * the updates and security suites right after (build-base.ts).
 */
export async function debootstrapCached(root: string, mirrors: Mirrors, cacheDir: string): Promise<void> {
  await mkdir(cacheDir, { recursive: true });
  const key = createHash('sha256').update(JSON.stringify([SUITE, mirrors.debian, DEBOOTSTRAP_ARGS])).digest('hex').slice(0, 16);
  const tarball = join(cacheDir, `debootstrap-${SUITE}-${key}.tar`);
  if (existsSync(tarball)) {
    log(`debootstrap: unpacking cached ${tarball}`);
    await sh`tar -xpf ${tarball} -C ${root} --numeric-owner --xattrs '--xattrs-include=*'`;
    return;
  }
  await debootstrap(root, mirrors, join(cacheDir, 'debs'));
  const tmp = `${tarball}.partial`;
  await sh`tar -cpf ${tmp} -C ${root} --numeric-owner --xattrs '--xattrs-include=*' --one-file-system --exclude=./lost+found .`;
  await rename(tmp, tarball);
}

async function debootstrap(root: string, mirrors: Mirrors, debCache: string): Promise<void> {
  await mkdir(debCache, { recursive: true });
  // Downloaded .debs are kept between builds: only what changed on the mirror is fetched again.
  await sh`debootstrap ${DEBOOTSTRAP_ARGS} --cache-dir=${debCache} ${SUITE} ${root} ${mirrors.debian}`.catch((e: Error) => {
    throw new Error(`${e.message}\ndebootstrap of ${SUITE} from ${mirrors.debian} failed: check that the mirror is reachable (apt-get update on this machine) or set QE_IMAGE_MIRROR`);
  });
}

/** The kernel filesystems a package's maintainer scripts (initramfs, grub-probe) expect. */
export async function mountChrootFs(root: string, cleanup: Cleanup): Promise<void> {
  // Runs before the unmounts: a dpkg or daemon still inside the chroot (apt killed by a signal
  // leaves its dpkg running) would keep the filesystems, and so the loop device, busy.
  cleanup.push(`kill processes in ${root}`, () => killChrootProcesses(root));
  await mount('proc', join(root, 'proc'), cleanup, ['-t', 'proc']);
  await mount('sysfs', join(root, 'sys'), cleanup, ['-t', 'sysfs']);
  // The host's /dev: grub-install must see the loop device and its partitions.
  await mount('/dev', join(root, 'dev'), cleanup, ['--bind']);
  await mount('devpts', join(root, 'dev/pts'), cleanup, ['-t', 'devpts', '-o', 'gid=5,mode=620,ptmxmode=000']);
  await mount('tmpfs', join(root, 'run'), cleanup, ['-t', 'tmpfs', '-o', 'mode=755']);
}

async function killChrootProcesses(root: string): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const inside: number[] = [];
    for (const pid of await readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(pid)) continue;
      const r = await readlink(`/proc/${pid}/root`).catch(() => '');
      if (r === root || r.startsWith(`${root}/`)) inside.push(Number(pid));
    }
    if (!inside.length) return;
    log(`killing ${inside.length} process(es) left in ${root}`);
    for (const pid of inside) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const CHROOT_ENV = {
  DEBIAN_FRONTEND: 'noninteractive',
  DEBCONF_NONINTERACTIVE_SEEN: 'true',
  LC_ALL: 'C.UTF-8',
  LANG: 'C.UTF-8',
  PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
};

export function chroot(root: string, args: string[], input?: string): Promise<string> {
  return sh.with({ env: CHROOT_ENV, ...(input !== undefined ? { input } : {}) })`chroot ${root} ${args}`;
}

/** Apt sources inside the image: the same mirror, with updates and security, in deb822 form as
 * Debian 12 writes it. */
export async function writeAptSources(root: string, mirrors: Mirrors): Promise<void> {
  await rm(join(root, 'etc/apt/sources.list'), { force: true });
  await writeFile(
    join(root, 'etc/apt/sources.list.d/debian.sources'),
    `Types: deb
URIs: ${mirrors.debian}
Suites: ${SUITE} ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirrors.security}
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`,
  );
}

export async function aptInstall(root: string, packages: readonly string[]): Promise<void> {
  await chroot(root, [
    'apt-get', 'install', '-y', '-q', '--no-install-recommends',
    '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold',
    ...packages,
  ]);
}

const UNSAFE_IO = 'etc/dpkg/dpkg.cfg.d/qe-image-build';

/**
 * Build-time settings of the chroot, removed before the disk is finished: maintainer scripts may
 * not start daemons, and dpkg skips its fsync per unpacked file: the disk is thrown away if the
 * build fails and is synced when it is unmounted, so those thousands of fsyncs protect nothing
 * (apt's part of the build went from about 400 to 340 s here, on a loaded machine).
 */
export async function enterBuildMode(root: string): Promise<void> {
  await writeFile(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\n# image build: no daemons in the chroot\nexit 101\n', { mode: 0o755 });
  await writeFile(join(root, UNSAFE_IO), 'force-unsafe-io\n');
}

export async function leaveBuildMode(root: string): Promise<void> {
  await rm(join(root, 'usr/sbin/policy-rc.d'), { force: true });
  await rm(join(root, UNSAFE_IO), { force: true });
}
