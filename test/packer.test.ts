// The Packer templates as Debian 12's Packer (1.6.6) reads them: formatted, and valid with the
// inputs the image build passes (a base disk and its checksum, the .deb, a build key, OVMF vars).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { sha256File } from '../ova/src/manifest.js';
import { root, tempDir } from './lib/cli.js';

const packerDir = join(root, 'packer');

describe('packer/', () => {
  it('is formatted (packer fmt -check), the build folder and the plugins folder', async () => {
    for (const dir of [packerDir, join(packerDir, 'plugins')]) {
      const res = await execa('packer', ['fmt', '-check', dir], { reject: false, all: true });
      expect(res.all, dir).toBe('');
      expect(res.exitCode).toBe(0);
    }
  });

  it('validates with the inputs the image build gives it, without warnings', async () => {
    const dir = await tempDir();
    const base = join(dir, 'base.raw');
    await execa('truncate', ['-s', '16M', base]);
    const deb = join(dir, 'qe-packets_0.0.0_amd64.deb');
    await writeFile(deb, '');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'build-key')]);
    await writeFile(join(dir, 'OVMF_VARS.fd'), Buffer.alloc(540672));
    const vars = {
      version: '0.0.0',
      base_image: base,
      base_image_sha256: await sha256File(base),
      deb,
      ovmf_vars: join(dir, 'OVMF_VARS.fd'),
      ssh_private_key_file: join(dir, 'build-key'),
      output_directory: join(dir, 'out'),
    };
    const args = Object.entries(vars).flatMap(([k, v]) => ['-var', `${k}=${v}`]);
    const res = await execa('packer', ['validate', ...args, packerDir], { reject: false, all: true });
    expect(res.all).toBe('');
    expect(res.exitCode).toBe(0);
    // A missing input is named.
    const missing = await execa('packer', ['validate', ...args.slice(2), packerDir], { reject: false, all: true });
    expect(missing.exitCode).not.toBe(0);
    expect(missing.all).toMatch(/version/);
  });

  it('needs no plugin block in the build folder (Packer 1.6.6 refuses one) and declares them for current Packer', async () => {
    const { stdout } = await execa('grep', ['-rl', 'required_plugins', packerDir]);
    expect(stdout.trim().split('\n')).toEqual([join(packerDir, 'plugins', 'plugins.pkr.hcl')]);
  });
});
