// The capture tools under test, one adapter each: how to start a live capture with a ring of
// rotating files, which signal stops it, what it reports about itself, and how to count what it
// left on disk. All get the same buffer (256 MiB), snaplen, file size and ring budget.

import { chmod, chown, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { countPcap, countStenotype, type FileCount } from './count.js';
import { run, type Measured } from './proc.js';

export const TOOL_NAMES = ['daemon', 'tcpdump', 'dumpcap', 'netsniff-ng', 'stenotype'] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

export interface LiveContext {
  iface: string;
  /** Fresh, empty folder for the capture files. */
  outDir: string;
  /** Fresh folder for the tool's config and summary files. */
  workDir: string;
  /** How many files the ring may hold: sized so a whole trial fits without overwriting. */
  ringFiles: number;
  fileSizeMB: number;
  bufferMiB: number;
  snaplen: number;
}

export interface Reported {
  received?: number;
  written?: number;
  /** Everything the tool says it lost, all causes together. */
  dropped?: number;
  /** Losses by cause, under the tool's own names. */
  causes?: Record<string, number>;
  /** The daemon's own CPU figure (helper user+sys), for comparison with GNU time's. */
  cpuUs?: number;
  /** What was parsed, for the record. */
  raw: string;
}

export interface LiveTool {
  name: ToolName;
  /** Why the tool cannot run here; undefined when it can. */
  unavailable(): Promise<string | undefined>;
  /** Prepares folders and config; returns the command line. */
  command(ctx: LiveContext): Promise<string[]>;
  stopSignal: NodeJS.Signals;
  /** How long to wait for a clean exit after the signal before SIGKILL. */
  stopGraceMs: number;
  /** Extra wait once idle: data a tool only hands over on a timer (block timeouts). */
  settleMs: number;
  reported(m: Measured, ctx: LiveContext): Promise<Reported | undefined>;
  count(ctx: LiveContext): Promise<FileCount[]>;
  /** True if the ring may have overwritten files, making the file count too low. */
  ringFull(files: FileCount[], ctx: LiveContext): boolean;
  /** The process that does the packet work, when the tool is more than one (the daemon's helper). */
  helperComm?: string;
  notes?: string;
}

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const DAEMON_CLI = join(REPO, 'build/daemon/src/cli.js');

async function which(bin: string): Promise<string | undefined> {
  const r = await run('sh', ['-c', `command -v ${bin}`], { reject: false });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

async function missing(...bins: string[]): Promise<string | undefined> {
  for (const b of bins) if (!(await which(b))) return `${b} not found on PATH`;
  return undefined;
}

async function countFiles(dir: string, match: (name: string) => boolean, counter = countPcap): Promise<FileCount[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter(match).sort();
  const out: FileCount[] = [];
  for (const n of names) out.push(await counter(join(dir, n)));
  return out;
}

function num(re: RegExp, text: string): number | undefined {
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
}

function linesMatching(text: string, re: RegExp): string {
  return text.split('\n').filter((l) => re.test(l)).join('\n');
}

export const daemon: LiveTool = {
  name: 'daemon',
  helperComm: 'qe-capture',
  async unavailable() {
    return existsSync(DAEMON_CLI) ? undefined : `${DAEMON_CLI} does not exist (daemon not built or not merged yet)`;
  },
  async command(ctx) {
    const config = join(ctx.workDir, 'qe-packets.yaml');
    await writeFile(config, daemonConfig({ ...ctx, capacityMB: ctx.ringFiles * ctx.fileSizeMB }));
    return [process.execPath, DAEMON_CLI, 'capture', '--config', config, '--summary', join(ctx.workDir, 'summary.json')];
  },
  stopSignal: 'SIGTERM',
  stopGraceMs: 30_000,
  settleMs: 1000,
  async reported(_m, ctx) {
    const text = await readFile(join(ctx.workDir, 'summary.json'), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    const s = JSON.parse(text) as { interfaces?: Record<string, Record<string, number>> };
    const i = s.interfaces?.[ctx.iface];
    if (!i) return { raw: text };
    const causes = {
      kernel_drops: i.kernel_drops ?? 0,
      if_drops: i.if_drops ?? 0,
      writer_drops: i.writer_drops ?? 0,
      // Retention refused the bytes (linear store full, or a grant that came too late): counted.
      store_full_drops: i.store_full_drops ?? 0,
      filtered: i.filtered ?? 0,
    };
    return {
      ...(i.received !== undefined ? { received: i.received } : {}),
      ...(i.written !== undefined ? { written: i.written } : {}),
      dropped: causes.kernel_drops + causes.if_drops + causes.writer_drops + causes.store_full_drops,
      causes,
      ...(i.cpu_us !== undefined ? { cpuUs: i.cpu_us } : {}),
      raw: text,
    };
  },
  count: (ctx) => countFiles(ctx.outDir, (n) => n.endsWith('.pcap') || n.endsWith('.pcap.part')),
  // Circular storage deletes the oldest files at capacity; capacity is the same budget as the rings.
  ringFull: (files, ctx) => files.reduce((s, f) => s + f.fileBytes, 0) > 0.9 * ctx.ringFiles * ctx.fileSizeMB * 1e6,
};

export interface DaemonConfigOptions {
  iface: string;
  outDir: string;
  capacityMB: number;
  fileSizeMB: number;
  bufferMiB: number;
  snaplen: number;
  /** The product default is true; offline rows turn it off because no peer there syncs (dd, cat, tcpdump). */
  fsync?: boolean;
  /** `index.fields`; absent: the product default (the index on). */
  indexFields?: readonly string[];
  /** `flows.enabled`; absent: the product default (on). */
  flows?: boolean;
  /** `elements:` as the config takes them; absent: none. */
  elements?: readonly Record<string, unknown>[];
  /** `api.listen`; absent: off. */
  apiListen?: string;
  /** `control.socket`; absent: beside the store folder. */
  controlSocket?: string;
}

/** The daemon's YAML config for one benchmark run (the shape the daemon's docs give). */
export function daemonConfig(o: DaemonConfigOptions): string {
  return stringify({
    capture: { interfaces: [o.iface], buffer: `${o.bufferMiB}MiB`, snaplen: o.snaplen },
    storage: {
      paths: [o.outDir],
      capacity: `${o.capacityMB}MB`,
      mode: 'circular',
      file_size: `${o.fileSizeMB}MB`,
      flush_interval: '1s',
      fsync: o.fsync ?? true,
    },
    // Never a fixed port or the appliance's socket: a bench must not collide with a running daemon.
    metrics: { listen: '127.0.0.1:0' },
    api: { listen: o.apiListen ?? false },
    control: { socket: o.controlSocket ?? `${o.outDir}.control.sock` },
    ...(o.indexFields ? { index: { fields: [...o.indexFields] } } : {}),
    ...(o.flows !== undefined ? { flows: { enabled: o.flows } } : {}),
    ...(o.elements?.length ? { elements: [...o.elements] } : {}),
  });
}

/** The daemon row with the product defaults and these `elements` (issue 20's cost: 50 against none). */
export function daemonWithElements(elements: readonly Record<string, unknown>[]): LiveTool {
  return {
    ...daemon,
    async command(ctx) {
      const config = join(ctx.workDir, 'qe-packets.yaml');
      await writeFile(config, daemonConfig({ ...ctx, capacityMB: ctx.ringFiles * ctx.fileSizeMB, elements }));
      return [process.execPath, DAEMON_CLI, 'capture', '--config', config, '--summary', join(ctx.workDir, 'summary.json')];
    },
  };
}

/** The daemon row with a chosen `index.fields` and flow tables on or off (the index benchmark
 * compares the index on against off, and both tables against neither). */
export function daemonWithIndex(indexFields: readonly string[], flows: boolean): LiveTool {
  return {
    ...daemon,
    async command(ctx) {
      const config = join(ctx.workDir, 'qe-packets.yaml');
      await writeFile(config, daemonConfig({ ...ctx, capacityMB: ctx.ringFiles * ctx.fileSizeMB, indexFields, flows }));
      return [process.execPath, DAEMON_CLI, 'capture', '--config', config, '--summary', join(ctx.workDir, 'summary.json')];
    },
  };
}

export const tcpdump: LiveTool = {
  name: 'tcpdump',
  unavailable: () => missing('tcpdump'),
  async command(ctx) {
    // -Z root: as root tcpdump drops to user tcpdump, which cannot write here. -B is in KiB.
    return ['tcpdump', '-i', ctx.iface, '-n', '-s', String(ctx.snaplen), '-B', String(ctx.bufferMiB * 1024),
      '--time-stamp-precision=nano', '-w', join(ctx.outDir, 'tcpdump.pcap'),
      '-C', String(ctx.fileSizeMB), '-W', String(ctx.ringFiles), '-Z', 'root'];
  },
  stopSignal: 'SIGINT',
  stopGraceMs: 15_000,
  settleMs: 0,
  async reported(m) {
    // libpcap's "received by filter" includes the kernel's drops; what is neither captured nor
    // dropped was still in the ring when tcpdump exited.
    const t = m.stderr;
    const captured = num(/(\d+) packets? captured/, t);
    const received = num(/(\d+) packets? received by filter/, t);
    const kernel = num(/(\d+) packets? dropped by kernel/, t) ?? 0;
    const iface = num(/(\d+) packets? dropped by interface/, t) ?? 0;
    if (captured === undefined) return undefined;
    const unread = received === undefined ? 0 : Math.max(0, received - captured - kernel);
    return {
      written: captured,
      ...(received !== undefined ? { received } : {}),
      dropped: kernel + iface + unread,
      causes: { dropped_by_kernel: kernel, dropped_by_interface: iface, unread_on_exit: unread },
      raw: linesMatching(t, /packets?/),
    };
  },
  count: (ctx) => countFiles(ctx.outDir, (n) => n.startsWith('tcpdump.pcap')),
  ringFull: (files, ctx) => files.length >= ctx.ringFiles,
};

export const dumpcap: LiveTool = {
  name: 'dumpcap',
  unavailable: () => missing('dumpcap'),
  async command(ctx) {
    // -P: classic pcap like the others (dumpcap writes microsecond pcap only). filesize is in kB.
    return ['dumpcap', '-q', '-i', ctx.iface, '-B', String(ctx.bufferMiB), '-s', String(ctx.snaplen), '-P',
      '-w', join(ctx.outDir, 'dumpcap.pcap'),
      '-b', `filesize:${ctx.fileSizeMB * 1000}`, '-b', `files:${ctx.ringFiles}`];
  },
  stopSignal: 'SIGINT',
  stopGraceMs: 15_000,
  settleMs: 0,
  async reported(m) {
    const t = m.stderr;
    const captured = num(/Packets captured: (\d+)/, t);
    const m2 = /received\/dropped on interface '[^']*': (\d+)\/(\d+) \(pcap:(\d+)\/dumpcap:(\d+)\/flushed:(\d+)\/ps_ifdrop:(\d+)\)/.exec(t);
    if (captured === undefined && !m2) return undefined;
    const [received, dropped, pcap, dc, flushed, ifdrop] = m2 ? m2.slice(1).map(Number) : [];
    return {
      ...(captured !== undefined ? { written: captured } : {}),
      ...(received !== undefined ? { received } : {}),
      ...(dropped !== undefined ? { dropped } : {}),
      ...(m2 ? { causes: { pcap: pcap!, dumpcap: dc!, flushed: flushed!, ps_ifdrop: ifdrop! } } : {}),
      raw: linesMatching(t, /Packets/),
    };
  },
  count: (ctx) => countFiles(ctx.outDir, (n) => n.startsWith('dumpcap_')),
  ringFull: (files, ctx) => files.length >= ctx.ringFiles,
};

export const netsniff: LiveTool = {
  name: 'netsniff-ng',
  unavailable: () => missing('netsniff-ng'),
  async command(ctx) {
    // --overwrite makes a ring with numbered names; the default names by Unix second and two
    // rotations within one second overwrite each other silently. -T: nanosecond pcap.
    return ['netsniff-ng', '--in', ctx.iface, '--out', `${ctx.outDir}/`, '--interval', `${ctx.fileSizeMB}MiB`,
      '--overwrite', String(ctx.ringFiles), '--prefix', 'netsniff-', '--silent', '--notouch-irq',
      '--ring-size', `${ctx.bufferMiB}MiB`, '-T', '0xa1b23c4d'];
  },
  stopSignal: 'SIGINT',
  stopGraceMs: 15_000,
  settleMs: 0,
  async reported(m) {
    // With TPACKET_V3, "incoming" is what netsniff-ng processed, "passed" what the kernel put in
    // its ring and "failed (out of space)" what the kernel dropped. Its "unread" figure mixes the
    // drops in, so the unread packets are derived as passed − incoming.
    const t = m.stdout;
    const seen = num(/(\d+)\s+packets incoming/, t);
    const passed = num(/(\d+)\s+packets passed filter/, t);
    const outOfSpace = num(/(\d+)\s+packets failed filter \(out of space\)/, t) ?? 0;
    if (seen === undefined || passed === undefined) return undefined;
    const unread = Math.max(0, passed - seen);
    return {
      received: passed + outOfSpace,
      written: seen,
      dropped: outOfSpace + unread,
      causes: { out_of_space: outOfSpace, unread_on_exit: unread },
      raw: linesMatching(t, /packets|droprate/),
    };
  },
  count: (ctx) => countFiles(ctx.outDir, (n) => n.startsWith('netsniff-')),
  ringFull: (files, ctx) => files.length >= ctx.ringFiles,
};

const STENO_BLOCK = 1 << 20;

export const stenotype: LiveTool = {
  name: 'stenotype',
  async unavailable() {
    const m = await missing('stenotype', 'setpriv');
    if (m) return m;
    const u = await run('id', ['-u', 'stenographer'], { reject: false });
    return u.exitCode === 0 ? undefined : 'user stenographer does not exist (package stenographer)';
  },
  async command(ctx) {
    // As root stenotype switches to nobody and cannot write; as its own user it keeps the file
    // capabilities the package gives it. It writes into PKT0/ and IDX0/ under --dir.
    // Its user must reach the folder: open the (private, mkdtemp) trial folders for traversal.
    await chmod(ctx.workDir, 0o755);
    await chmod(ctx.outDir, 0o755);
    for (const d of ['PKT0', 'IDX0']) {
      await mkdir(join(ctx.outDir, d));
      await chown(join(ctx.outDir, d), await uid('stenographer'), await gid('stenographer'));
    }
    // 128 MB files: its default of 128 async writes needs --filesize_mb >= --aiops.
    return ['setpriv', '--reuid', 'stenographer', '--regid', 'stenographer', '--init-groups',
      'stenotype', '--iface', ctx.iface, '--dir', ctx.outDir, '--threads', '1',
      '--blocks', String(Math.floor((ctx.bufferMiB << 20) / STENO_BLOCK)), '--filesize_mb', '128',
      '--fileage_sec', '60', '--blockage_sec', '1', '--seccomp', 'none', '-v', '--stats_sec', '1'];
  },
  stopSignal: 'SIGINT',
  // It does not exit on SIGINT while idle (it waits for one more block): it is killed after this,
  // once every block it had was written (O_DIRECT, so already on disk).
  stopGraceMs: 3000,
  settleMs: 1500,
  async reported(m) {
    const lines = m.stderr.split('\n').filter((l) => l.includes('stats:') && l.includes('packets='));
    const last = lines[lines.length - 1];
    if (!last) return undefined;
    const packets = num(/packets=(\d+)/, last);
    const drops = num(/drops=(\d+)/, last) ?? 0;
    return {
      ...(packets !== undefined ? { received: packets + drops, written: packets } : {}),
      dropped: drops,
      causes: { drops },
      raw: last,
    };
  },
  // Hidden (".") files are the ones still open when it was stopped; their blocks are on disk too.
  count: (ctx) => countFiles(join(ctx.outDir, 'PKT0'), () => true, (p) => countStenotype(p, STENO_BLOCK)),
  ringFull: () => false,
  notes:
    'stenotype reports its totals only in periodic log lines (every second), so its reported ' +
    'figures can miss the last second; it indexes packets too (its normal mode) and is killed ' +
    'after SIGINT if idle (it does not exit then).',
};

async function uid(user: string): Promise<number> {
  return Number((await run('id', ['-u', user])).stdout.trim());
}
async function gid(user: string): Promise<number> {
  return Number((await run('id', ['-g', user])).stdout.trim());
}

export const LIVE_TOOLS: Record<ToolName, LiveTool> = {
  daemon,
  tcpdump,
  dumpcap,
  'netsniff-ng': netsniff,
  stenotype,
};
