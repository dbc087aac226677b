// Offline trials: the same multi-gigabyte IMIX pcap, already in the page cache, copied into
// capture files by the daemon (`capture --read`, rotation on) and by `tcpdump -r -w` with and
// without -C, against `cat` and `dd` of the same bytes to the same filesystem — the limit.

import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { countPcap } from './count.js';
import { TimedProcess, run } from './proc.js';
import { median, ratio, round } from './stats.js';
import { CAPTURE_IF } from './netns.js';
import { DAEMON_CLI, daemonConfig } from './tools.js';

export const OFFLINE_ROWS = ['daemon', 'tcpdump', 'tcpdump -C', 'cat', 'dd'] as const;
export type OfflineRow = (typeof OFFLINE_ROWS)[number];
export const LIMIT_ROWS: readonly OfflineRow[] = ['cat', 'dd'];

export interface OfflineInput {
  path: string;
  packets: number;
  fileBytes: number;
  frameBytes: number;
  generateS: number;
  /** Time to read the whole file once it is cached (cat to /dev/null). */
  cachedReadS?: number;
}

export interface OfflineEnv {
  workDir: string;
  cpu: number;
  fileSizeMB: number;
  input: OfflineInput;
}

export interface OfflineTrial {
  row: OfflineRow;
  rep: number;
  startedAt: string;
  command: readonly string[];
  wallS?: number;
  /** Input file bytes per second, in Gbit/s. */
  fileGbps?: number;
  /** Frame bytes (what a capture stores) per second, in Gbit/s: "Gbps of IMIX". */
  imixGbps?: number;
  cpu?: { userS: number; sysS: number; totalS: number };
  output?: { files: number; bytes: number; packets?: number };
  /** The output holds every input packet (captures) or every input byte (cat, dd). */
  complete?: boolean;
  exitCode?: number | undefined;
  loadAvg: { before: number[]; after?: number[] };
  error?: string;
  stderrTail?: string;
}

export interface OfflineSummary {
  row: OfflineRow;
  trials: number;
  failed: number;
  wallS?: number;
  fileGbps?: number;
  imixGbps?: number;
  cpuS?: number;
  /** Rate relative to the faster of cat and dd. */
  vsLimit?: number;
}

export function offlineAvailable(row: OfflineRow): string | undefined {
  if (row === 'daemon' && !existsSync(DAEMON_CLI)) return `${DAEMON_CLI} does not exist (daemon not built or not merged yet)`;
  return undefined;
}

async function command(row: OfflineRow, env: OfflineEnv, outDir: string, workDir: string): Promise<string[]> {
  const input = env.input.path;
  switch (row) {
    case 'daemon': {
      const config = join(workDir, 'qe-packets.yaml');
      // Capacity far above the input, so circular storage never deletes during the copy. The
      // interface is only named because the config schema asks for one; --read replaces it.
      const capacityMB = Math.ceil((4 * env.input.fileBytes) / 1e6);
      await writeFile(
        config,
        daemonConfig({ iface: CAPTURE_IF, outDir, capacityMB, fileSizeMB: env.fileSizeMB, bufferMiB: 256, snaplen: 262144, fsync: false }),
      );
      return [process.execPath, DAEMON_CLI, 'capture', '--read', input, '--config', config, '--summary', join(workDir, 'summary.json')];
    }
    case 'tcpdump':
    case 'tcpdump -C':
      return ['tcpdump', '-r', input, '--time-stamp-precision=nano', '-w', join(outDir, 'tcpdump.pcap'), '-Z', 'root',
        ...(row === 'tcpdump -C' ? ['-C', String(env.fileSizeMB)] : [])];
    case 'cat':
      // The shell only opens the output and execs cat: the measured program is cat itself.
      return ['sh', '-c', 'exec cat "$1" > "$2"', 'sh', input, join(outDir, 'copy')];
    case 'dd':
      return ['dd', `if=${input}`, `of=${join(outDir, 'copy')}`, 'bs=1M', 'status=none'];
  }
}

export async function runOfflineTrial(row: OfflineRow, rep: number, env: OfflineEnv): Promise<OfflineTrial> {
  const trial: OfflineTrial = { row, rep, startedAt: new Date().toISOString(), command: [], loadAvg: { before: loadavg() } };
  const dir = await mkdtemp(join(env.workDir, `offline-${row.replace(/\W+/g, '')}-`));
  try {
    const outDir = join(dir, 'out');
    await mkdir(outDir);
    trial.command = await command(row, env, outDir, dir);
    // Write back the previous trial's dirty pages first, so no trial pays for another's.
    await run('sync', []);
    const p = TimedProcess.start(trial.command, { cpu: env.cpu, timeFile: join(dir, 'time.txt') });
    const m = await p.done;
    trial.exitCode = m.exitCode;
    trial.wallS = round(m.wallS, 4);
    trial.cpu = { userS: m.cpuUserS, sysS: m.cpuSysS, totalS: round(m.cpuUserS + m.cpuSysS, 3)! };
    trial.stderrTail = m.stderr.slice(-600);
    if (m.exitCode !== 0) throw new Error(`exit code ${m.exitCode}`);
    trial.fileGbps = round((env.input.fileBytes * 8) / m.wallS / 1e9, 3);
    trial.imixGbps = round((env.input.frameBytes * 8) / m.wallS / 1e9, 3);
    trial.output = await measureOutput(row, outDir);
    trial.complete =
      row === 'cat' || row === 'dd'
        ? trial.output.bytes === env.input.fileBytes
        : trial.output.packets === env.input.packets;
  } catch (err) {
    trial.error = err instanceof Error ? err.message : String(err);
  } finally {
    trial.loadAvg.after = loadavg();
    await rm(dir, { recursive: true, force: true });
  }
  return trial;
}

async function measureOutput(row: OfflineRow, outDir: string): Promise<{ files: number; bytes: number; packets?: number }> {
  const names = await readdir(outDir);
  let bytes = 0;
  let packets = 0;
  for (const n of names) {
    const path = join(outDir, n);
    bytes += (await stat(path)).size;
    if (row !== 'cat' && row !== 'dd') packets += (await countPcap(path)).packets;
  }
  return { files: names.length, bytes, ...(row === 'cat' || row === 'dd' ? {} : { packets }) };
}

export function summarizeOffline(trials: readonly OfflineTrial[]): OfflineSummary[] {
  const rows = [...new Set(trials.map((t) => t.row))];
  const out = rows.map((row): OfflineSummary => {
    const all = trials.filter((t) => t.row === row);
    const ok = all.filter((t) => !t.error && t.complete);
    const m = (f: (t: OfflineTrial) => number | undefined) => median(ok.map(f).filter((x): x is number => x !== undefined));
    const s: OfflineSummary = { row, trials: all.length, failed: all.length - ok.length };
    const wall = m((t) => t.wallS);
    if (wall !== undefined) s.wallS = round(wall, 3)!;
    const fg = m((t) => t.fileGbps);
    if (fg !== undefined) s.fileGbps = round(fg, 3)!;
    const ig = m((t) => t.imixGbps);
    if (ig !== undefined) s.imixGbps = round(ig, 3)!;
    const cpu = m((t) => t.cpu?.totalS);
    if (cpu !== undefined) s.cpuS = round(cpu, 3)!;
    return s;
  });
  const limit = limitRate(out);
  for (const s of out) {
    const r = round(ratio(s.fileGbps, limit), 3);
    if (r !== undefined) s.vsLimit = r;
  }
  return out;
}

/** The faster of cat and dd: what the filesystem and page cache allow for a plain copy. */
export function limitRate(rows: readonly OfflineSummary[]): number | undefined {
  const rates = rows.filter((r) => LIMIT_ROWS.includes(r.row)).map((r) => r.fileGbps).filter((x): x is number => x !== undefined);
  return rates.length ? Math.max(...rates) : undefined;
}
