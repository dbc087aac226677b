// The shared-library dependencies of the ELF files in a staging tree, as dpkg-shlibdeps works
// them out from the installed libraries' shlibs/symbols files.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { $ } from 'zx';

export async function shlibDepends(elfFiles: string[]): Promise<string[]> {
  // dpkg-shlibdeps wants to run in a source tree with debian/control; a minimal one suffices.
  const src = await mkdtemp(join(tmpdir(), 'qe-shlibdeps-'));
  try {
    await mkdir(join(src, 'debian'));
    await writeFile(join(src, 'debian', 'control'), 'Source: qe-packets\n\nPackage: qe-packets\nArchitecture: amd64\n');
    const { stdout } = await $({ cwd: src })`dpkg-shlibdeps -O ${elfFiles}`;
    const line = stdout.split('\n').find((l) => l.startsWith('shlibs:Depends='));
    if (!line) throw new Error(`dpkg-shlibdeps printed no shlibs:Depends for ${elfFiles.join(' ')}`);
    return line.slice('shlibs:Depends='.length).split(',').map((d) => d.trim()).filter(Boolean);
  } finally {
    await rm(src, { recursive: true, force: true });
  }
}
