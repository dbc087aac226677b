// Stage 2: Packer boots a copy of the base with its qemu builder and runs ansible/site.yml in it
// (the .deb, the hardening, the tuning). A build-only SSH key is written into the copy for root;
// the build's last step removes it (packer/build.pkr.hcl), so nothing of it stays in the image.
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from '../../ova/src/manifest.js';
import { kvmUsable, OVMF_CODE, OVMF_VARS } from './boot.js';
import { repoRoot } from './cache.js';
import { ensurePartitionNodes, PART } from './disk.js';
import { Cleanup, log, run, timed } from './log.js';

export interface PackerInputs {
  base: string;
  deb: string;
  version: string;
  workDir: string;
}

/** Writes the build key into root's authorized_keys on the copy's root partition. */
async function addBuildKey(disk: string, publicKey: string, mnt: string): Promise<void> {
  const cleanup = new Cleanup();
  try {
    const loop = await run('losetup', ['--find', '--show', '--partscan', disk]);
    cleanup.push('detach', () => run('losetup', ['-d', loop]).then(() => undefined));
    await ensurePartitionNodes(loop, [PART.root]);
    const part = `${loop}p${PART.root}`;
    await mkdir(mnt, { recursive: true });
    await run('mount', [part, mnt]);
    cleanup.push('unmount', () => run('umount', [mnt]).then(() => undefined));
    await mkdir(join(mnt, 'root/.ssh'), { recursive: true, mode: 0o700 });
    await writeFile(join(mnt, 'root/.ssh/authorized_keys'), publicKey, { mode: 0o600 });
  } finally {
    await cleanup.runAll();
    await rm(mnt, { recursive: true, force: true });
  }
}

/** Returns the provisioned raw disk. */
export async function packerBuild(o: PackerInputs): Promise<string> {
  const dir = join(o.workDir, 'packer');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const key = join(dir, 'build-key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'qe-packets-image-build', '-f', key]);
  const copy = join(dir, 'base-with-build-key.raw');
  await run('cp', ['--sparse=always', o.base, copy]);
  await addBuildKey(copy, await readFile(`${key}.pub`, 'utf8'), join(dir, 'mnt'));
  const vars = join(dir, 'OVMF_VARS.fd');
  await copyFile(OVMF_VARS, vars);
  const out = join(dir, 'out');
  const args: Record<string, string> = {
    version: o.version,
    base_image: copy,
    base_image_sha256: await sha256File(copy),
    deb: o.deb,
    ovmf_code: OVMF_CODE,
    ovmf_vars: vars,
    ssh_private_key_file: key,
    output_directory: out,
    accelerator: kvmUsable() ? 'kvm' : 'tcg',
  };
  log(`stage 2: packer build (${args.accelerator}); serial console in ${out}/serial.log`);
  await timed('packer build', () =>
    run('packer', ['build', '-color=false', ...Object.entries(args).flatMap(([k, v]) => ['-var', `${k}=${v}`]), join(repoRoot(), 'packer')], {
      // Packer's cache (lock files, port reservations) under build/, not in the checkout.
      env: { ANSIBLE_HOST_KEY_CHECKING: 'False', ANSIBLE_FORCE_COLOR: '0', PACKER_CACHE_DIR: join(o.workDir, 'packer_cache') },
    }),
  );
  await rm(copy, { force: true });
  return join(out, `qe-packets-${o.version}.raw`);
}
