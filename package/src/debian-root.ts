// A Debian 12 root made by debootstrap, cached so that the package and Ansible tests pay the
// two or three minutes of downloading once per machine rather than once per run. The cache key
// is the package list: a different list is a different root.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { $ } from 'zx';

/** What the tests need in the root besides minbase: the package's dependencies and what the Ansible roles manage. */
export const TEST_ROOT_PACKAGES = [
  'adduser', 'libpcap0.8', 'libsystemd0', 'openssl', // the .deb's Depends
  'systemd', 'udev', 'procps', 'iproute2', 'ethtool', // unit enabling, udev rules, sysctl, NIC tuning
  'python3', 'python3-apt', // Ansible runs its modules with the root's python (apt needs python3-apt)
  'nftables', 'openssh-server', 'prometheus-node-exporter', // hardening and monitoring roles
];

export const DEBIAN_MIRROR = process.env.QE_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'qe-packets', 'debian-roots');
}

/**
 * The path of a bookworm minbase root with these packages, made on first use. Treat it as
 * read-only: copy it (copyRoot) before installing anything into it.
 */
export async function debianRoot(packages: string[] = TEST_ROOT_PACKAGES): Promise<string> {
  const list = [...new Set(packages)].sort();
  const key = createHash('sha256').update(`bookworm minbase ${DEBIAN_MIRROR} ${list.join(' ')}`).digest('hex').slice(0, 12);
  const dir = join(cacheDir(), `bookworm-${key}`);
  if (existsSync(join(dir, '.complete'))) return dir;
  const partial = `${dir}.partial`;
  // A half-made root from an interrupted run is never reused: debootstrap would trip over it.
  await rm(partial, { recursive: true, force: true });
  await mkdir(cacheDir(), { recursive: true });
  await $`debootstrap --variant=minbase --include=${list.join(',')} bookworm ${partial} ${DEBIAN_MIRROR}`;
  await $`touch ${join(partial, '.complete')}`;
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  return dir;
}

/** A private, writable copy of a cached root (hard links would let a test change the cache). */
export async function copyRoot(cached: string, target: string): Promise<void> {
  await $`cp -a --reflink=auto ${cached}/. ${target}`;
}
