// Running commands inside a Debian root as if it were the machine: a private mount namespace
// (unshare -m) with /proc and /sys, so nothing stays mounted when the command ends, even if a
// test dies half-way.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { copyRoot, debianRoot } from '../../package/src/debian-root.js';

export const CHROOT_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive' };

/** A fresh writable copy of the cached Debian 12 test root. */
export async function freshRoot(prefix: string): Promise<string> {
  const cached = await debianRoot();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await copyRoot(cached, dir);
  return dir;
}

export async function removeRoot(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Runs argv inside root; never rejects: look at exitCode and all (stdout and stderr interleaved). */
export function inRoot(root: string, argv: string[], opts: { timeout?: number } = {}) {
  const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  const script = `mount --rbind /sys "$0/sys" && mount -t proc proc "$0/proc" && exec chroot "$0" env -i ${Object.entries(CHROOT_ENV).map(([k, v]) => `${k}=${v}`).join(' ')} ${quoted}`;
  return execa('unshare', ['-m', 'sh', '-c', script, root], { reject: false, all: true, stdin: 'ignore', timeout: opts.timeout ?? 120_000 });
}
