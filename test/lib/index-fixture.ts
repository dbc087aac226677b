// Stores with index files, for the tests of their life cycle: closed capture files and the real
// qe-index run on them.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { BASE_NS, MS, traffic, writeCaptureFile, type FixtureFile } from './fixture.js';
import { root } from './cli.js';

export const qeIndexPath = join(root, 'build', 'native', 'qe-index');

/** The config's default index (index.fields, index.block_size). */
export const DEFAULT_INDEX = { fields: ['ip', 'port', 'proto', 'vlan'] as const, blockSizeBytes: 16384 };

/** `n` closed files of 40 packets, one a minute apart. */
export function closedFiles(d: string, n: number, iface = 'eth0'): FixtureFile[] {
  return Array.from({ length: n }, (_, i) => writeCaptureFile(d, iface, traffic(BASE_NS + BigInt(i) * 60_000n * MS, 40, i + 1)));
}

/** Indexes the files with qe-index, as the helper or `qe-packets index` would. */
export function indexFiles(files: string[], fields = 'ip,port,proto,vlan'): void {
  execFileSync(qeIndexPath, ['--fields', fields, ...files], { stdio: 'ignore' });
}
