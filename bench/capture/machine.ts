// What the numbers were measured on: they mean little without the machine, the tool versions and
// how busy the (shared) cores were.

import { cpus, freemem, loadavg, release, totalmem } from 'node:os';
import { readFile } from 'node:fs/promises';
import { run } from './proc.js';

async function firstLine(cmd: string, args: string[]): Promise<string | undefined> {
  const r = await run(cmd, args, { reject: false }).catch(() => undefined);
  if (!r) return undefined;
  const text = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('Running as user'));
  return text;
}

export async function machineInfo(workDir: string, repoDir: string) {
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const pretty = /PRETTY_NAME="([^"]*)"/.exec(osRelease)?.[1];
  const fs = await run('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '--target', workDir], { reject: false });
  const commit = await run('git', ['-C', repoDir, 'rev-parse', 'HEAD'], { reject: false });
  const dirty = await run('git', ['-C', repoDir, 'status', '--porcelain', '--untracked-files=no'], { reject: false });
  return {
    cpuModel: cpus()[0]?.model,
    cores: cpus().length,
    memoryBytes: totalmem(),
    freeMemoryBytes: freemem(),
    kernel: release(),
    os: pretty,
    node: process.version,
    loadAvgAtStart: loadavg(),
    workDir,
    workDirFilesystem: fs.stdout.trim(),
    workDirFreeBytes: await freeBytes(workDir),
    gitCommit: commit.stdout.trim() || undefined,
    gitDirty: dirty.stdout.trim() !== '',
    versions: {
      tcpdump: await firstLine('tcpdump', ['--version']),
      dumpcap: await firstLine('dumpcap', ['-v']),
      netsniffNg: await firstLine('netsniff-ng', ['-v']),
      trafgen: await firstLine('trafgen', ['-v']),
      tcpreplay: await firstLine('tcpreplay', ['-V']),
      stenographer: await firstLine('dpkg-query', ['-W', '-f', '${Version}', 'stenographer']),
      libpcap: await firstLine('dpkg-query', ['-W', '-f', '${Version}', 'libpcap0.8']),
      gnuTime: await firstLine('/usr/bin/time', ['--version']),
    },
  };
}

export async function freeBytes(dir: string): Promise<number> {
  const df = await run('df', ['-B1', '--output=avail', dir], { reject: false });
  return Number(df.stdout.split('\n')[1]?.trim() ?? NaN);
}
