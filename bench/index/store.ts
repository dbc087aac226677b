// The store under test and its build: each chunk of generated traffic is imported with
// `capture --read` (index on, the product default, and off) and copied by `cat`, each followed by a
// sync of the filesystem, so durability is paid on every side (storage.fsync is on for the imports).

import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CAPTURE_IF } from '../capture/netns.js';
import { TimedProcess, run } from '../capture/proc.js';
import { round } from '../capture/stats.js';
import { DAEMON_CLI, daemonConfig } from '../capture/tools.js';

export const FILE_SIZE_MB = 100;

export interface Store {
  dir: string;
  config: string;
}

/** A store folder and its config; `indexFields` and `flows` undefined = the product default. */
export async function makeStore(root: string, name: string, capacityBytes: number, indexFields?: readonly string[], flows?: boolean): Promise<Store> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const config = join(root, `${name}.yaml`);
  await writeFile(
    config,
    daemonConfig({
      // Named only because the schema asks for an interface; --read replaces it.
      iface: CAPTURE_IF,
      outDir: dir,
      capacityMB: Math.ceil(capacityBytes / 1e6),
      fileSizeMB: FILE_SIZE_MB,
      bufferMiB: 64,
      snaplen: 262144,
      fsync: true,
      ...(indexFields ? { indexFields } : {}),
      ...(flows !== undefined ? { flows } : {}),
    }),
  );
  return { dir, config };
}

export interface Timed {
  wallS: number;
  cpuS: number;
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}

/** Runs one measured command pinned to `cpu`, timed from its start to its exit. */
export async function timed(command: readonly string[], cpu: number, scratch: string): Promise<Timed> {
  const timeFile = join(scratch, `time-${process.hrtime.bigint()}.txt`);
  const m = await TimedProcess.start(command, { cpu, timeFile }).done;
  await rm(timeFile, { force: true });
  return { wallS: m.wallS, cpuS: m.cpuUserS + m.cpuSysS, exitCode: m.exitCode, stdout: m.stdout, stderr: m.stderr };
}

/** `sync -f`: writes back the filesystem holding `dir` (syncfs), timed. */
export async function syncFs(dir: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  await run('sync', ['-f', dir]);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export type ImportRow = 'index' | 'no-index' | 'cat';
export const IMPORT_ROWS: readonly ImportRow[] = ['index', 'no-index', 'cat'];

export interface ImportTrial {
  row: ImportRow;
  chunk: number;
  bytes: number;
  commandS: number;
  syncS: number;
  wallS: number;
  cpuS: number;
  error?: string;
}

/**
 * Imports (or copies) one chunk file. `index` goes into the kept store; `no-index` and `cat` go
 * into scratch folders that are emptied afterwards (the disk holds one store, not three).
 */
export async function importChunk(row: ImportRow, file: string, chunk: number, target: Store, cpu: number, scratch: string): Promise<ImportTrial> {
  const bytes = (await stat(file)).size;
  // Write back whatever is dirty first (the generated chunk, the last row's output): no row pays
  // for another's writeback.
  await run('sync', ['-f', target.dir]);
  const command =
    row === 'cat'
      ? ['sh', '-c', 'exec cat "$1" > "$2"', 'sh', file, join(target.dir, `copy-${chunk}`)]
      : [process.execPath, DAEMON_CLI, 'capture', '--read', file, '--config', target.config];
  const t = await timed(command, cpu, scratch);
  const syncS = await syncFs(target.dir);
  const trial: ImportTrial = {
    row,
    chunk,
    bytes,
    commandS: round(t.wallS, 4)!,
    syncS: round(syncS, 4)!,
    wallS: round(t.wallS + syncS, 4)!,
    cpuS: round(t.cpuS, 3)!,
  };
  if (t.exitCode !== 0) trial.error = `exit ${t.exitCode}: ${t.stderr.slice(-400)}`;
  if (row !== 'index') await emptyDir(target.dir);
  return trial;
}

export async function emptyDir(dir: string): Promise<void> {
  for (const n of await readdir(dir)) await rm(join(dir, n), { recursive: true, force: true });
}

export interface StoreFiles {
  pcaps: string[];
  pcapBytes: number;
  indexBytes: number;
  indexes: number;
  /** The closed files' flow tables (`.qeflow`). */
  flowBytes: number;
  flowTables: number;
}

export async function storeFiles(dir: string): Promise<StoreFiles> {
  const out: StoreFiles = { pcaps: [], pcapBytes: 0, indexBytes: 0, indexes: 0, flowBytes: 0, flowTables: 0 };
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.pcap')) {
        out.pcaps.push(p);
        out.pcapBytes += (await stat(p)).size;
      } else if (e.name.endsWith('.qeidx')) {
        out.indexes++;
        out.indexBytes += (await stat(p)).size;
      } else if (e.name.endsWith('.qeflow')) {
        out.flowTables++;
        out.flowBytes += (await stat(p)).size;
      }
    }
  };
  await walk(dir);
  out.pcaps.sort();
  return out;
}
