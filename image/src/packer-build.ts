// Stage 2: Packer boots a copy of the base with its qemu builder and runs ansible/site.yml in it
// (the .deb, the hardening, the tuning). A build-only SSH key is written into the copy for root;
// the build's last step removes it (packer/build.pkr.hcl), so nothing of it stays in the image.
import { execa } from 'execa';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from '../../ova/src/manifest.js';
import { chooseAccel, type Accel } from './accel.js';
import { OVMF_CODE, OVMF_VARS } from './boot.js';
import { repoRoot } from './cache.js';
import { ConsoleWatch, consoleTail, DEFAULT_STALL_MS } from './console-watch.js';
import { ensurePartitionNodes, PART } from './disk.js';
import { Cleanup, log, sh, timed } from './log.js';

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
    const loop = await sh`losetup --find --show --partscan ${disk}`;
    cleanup.push('detach', () => sh`losetup -d ${loop}`.then(() => undefined));
    await ensurePartitionNodes(loop, [PART.root]);
    const part = `${loop}p${PART.root}`;
    await mkdir(mnt, { recursive: true });
    await sh`mount ${part} ${mnt}`;
    cleanup.push('unmount', () => sh`umount ${mnt}`.then(() => undefined));
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
  await sh`ssh-keygen -q -t ed25519 -N '' -C qe-packets-image-build -f ${key}`;
  const copy = join(dir, 'base-with-build-key.raw');
  await sh`cp --sparse=always ${o.base} ${copy}`;
  await addBuildKey(copy, await readFile(`${key}.pub`, 'utf8'), join(dir, 'mnt'));
  const vars = join(dir, 'OVMF_VARS.fd');
  await copyFile(OVMF_VARS, vars);
  const out = join(dir, 'out');
  const memory = 2048;
  // The guest as Packer 1.6.6 starts it (`-machine type=pc,accel=X`, no -cpu; the drives of
  // packer/sources.pkr.hcl), the disk as a snapshot: the probe must not write the build's copy.
  const probeVars = join(dir, 'probe-OVMF_VARS.fd');
  await copyFile(OVMF_VARS, probeVars);
  const accel = await chooseAccel('the packer build (uefi on pc)', (a: Accel) => [
    '-machine', `type=pc,accel=${a}`, '-m', String(memory),
    '-drive', `file=${copy},if=virtio,format=raw,snapshot=on`,
    '-drive', `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`,
    '-drive', `if=pflash,format=raw,file=${probeVars}`,
    '-nic', 'user,model=virtio-net-pci',
  ]);
  await rm(probeVars, { force: true });
  const args: Record<string, string> = {
    version: o.version,
    base_image: copy,
    base_image_sha256: await sha256File(copy),
    deb: o.deb,
    ovmf_code: OVMF_CODE,
    ovmf_vars: vars,
    ssh_private_key_file: key,
    output_directory: out,
    accelerator: accel,
    memory: String(memory),
    qmp_socket: join(dir, 'qmp.sock'),
    serial_log: join(dir, 'serial.log'),
  };
  const serial = args.serial_log!;
  const packerLog = join(dir, 'packer.log');
  log(`stage 2: packer build (${accel}); serial console in ${serial}, Packer's output in ${packerLog}`);
  const maxSilent = await timed('packer build', () =>
    runPacker(['build', '-color=false', ...Object.entries(args).flatMap(([k, v]) => ['-var', `${k}=${v}`]), join(repoRoot(), 'packer')], {
      serial,
      qmpSocket: args.qmp_socket!,
      packerLog,
      // Packer's cache (lock files, port reservations) under build/, not in the checkout.
      env: { ANSIBLE_HOST_KEY_CHECKING: 'False', ANSIBLE_FORCE_COLOR: '0', PACKER_CACHE_DIR: join(o.workDir, 'packer_cache') },
    }),
  );
  log(`packer build: the longest silence (no console output, no Packer output) was ${(maxSilent / 1000).toFixed(0)} s`);
  await rm(copy, { force: true });
  return join(out, `qe-packets-${o.version}.raw`);
}

/**
 * Runs Packer and watches its guest: Packer itself waits for SSH without a word for as long as
 * ssh_timeout allows, also when QEMU has stopped the guest. Progress is any new byte on the guest's
 * console or in Packer's output (Ansible's tasks); QEMU's state comes from its QMP socket. On a
 * stall, a stopped QEMU or a fatal console, Packer is interrupted (it stops its QEMU) and the error
 * carries the console's tail. Returns the longest silence seen, in ms.
 */
async function runPacker(args: string[], o: { serial: string; qmpSocket: string; packerLog: string; env: Record<string, string>; stallMs?: number }): Promise<number> {
  const logStream = createWriteStream(o.packerLog);
  let outputBytes = 0;
  const packer = execa('packer', args, { env: o.env, stdin: 'ignore', all: true, reject: false, buffer: false });
  packer.all?.on('data', (d: Buffer) => {
    outputBytes += d.length;
    logStream.write(d);
    if (process.env.QE_IMAGE_VERBOSE === '1') process.stderr.write(d);
  });
  let exited = false;
  void packer.then(() => {
    exited = true;
  });
  const watch = new ConsoleWatch({ console: o.serial, qmpSocket: o.qmpSocket, stallMs: o.stallMs ?? DEFAULT_STALL_MS, progress: () => outputBytes });
  try {
    for (;;) {
      await new Promise((r) => setTimeout(r, 2000));
      if (exited) {
        const r = await packer;
        await new Promise((ok) => logStream.end(ok));
        if (r.exitCode === 0) return watch.maxSilentMs;
        const tail = (await readFile(o.packerLog, 'utf8')).split('\n').slice(-25).join('\n');
        throw new Error(`packer build exited ${r.exitCode} (its output in ${o.packerLog}):\n${tail}`);
      }
      const { text, failure } = await watch.check();
      if (failure) {
        // Interrupted, Packer stops its QEMU and removes its output folder.
        packer.kill('SIGINT');
        const killer = setTimeout(() => packer.kill('SIGKILL'), 60_000);
        await packer.catch(() => undefined);
        clearTimeout(killer);
        throw new Error(`packer build stopped: ${failure}; Packer's output in ${o.packerLog}; the guest's console ended:\n${consoleTail(text)}`);
      }
    }
  } finally {
    if (!exited) packer.kill('SIGKILL');
    logStream.end();
  }
}
