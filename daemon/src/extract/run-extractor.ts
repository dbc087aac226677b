// Runs qe-extract over a selection of files: hands it the streams on stdin, reads its JSON status
// lines from fd 3 and reports progress, warnings and the outcome. With `-` as output the helper
// writes straight to this process's stdout, so packets never pass through JavaScript.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Stream } from 'node:stream';
import type { ExtractStream } from '../store/select-files.js';
import { nativeTool } from '../util/native.js';
import { ExitCode } from './exit-codes.js';
import { countsOf, parseExtractStatus, whyUnreadable, type ExtractCounts, type ExtractStatus } from './status.js';

export interface ExtractJob {
  streams: readonly ExtractStream[];
  fromNs: bigint;
  /** Inclusive. */
  toNs: bigint;
  filter?: string;
  /** A file path, or `-` for this process's stdout (or for `stdout`). */
  output: string;
  /**
   * With output `-`: where the pcap goes instead of this process's stdout. A stream with a
   * descriptor (another child's stdin: the packets never pass through JavaScript), or 'pipe' to
   * read it (hooks.onStdout).
   */
  stdout?: Stream | 'pipe';
  /** The output's link type and snaplen (used as they are when no file is selected). */
  linktype: number;
  snaplen: number;
  /** Files read through their index: the --ranges bytes and each file's span of them. */
  ranges?: { bytes: Buffer; spans: ReadonlyMap<string, readonly [number, number]> };
}

export type { ExtractCounts };

export interface ExtractOutcome {
  exitCode: number;
  counts?: ExtractCounts;
  /** qe-extract's own message when it failed. */
  error?: string;
}

export interface ExtractHooks {
  onProgress?: (c: ExtractCounts) => void;
  onWarning?: (message: string) => void;
  /** How often qe-extract reports progress (0 = never). */
  progressMs?: number;
  /** With job.stdout 'pipe': the pcap stream, given once the helper has started. */
  onStdout?: (s: Readable) => void;
  /**
   * Idle CPU (nice 19) and idle I/O class (ionice -c3): the API's extractions, which must never
   * take the disk or a core from capture. Not the command's: a person waiting at a terminal asked.
   */
  idle?: boolean;
  /** Ends the helper (SIGTERM: it removes an unfinished output) when aborted: a client that went away. */
  signal?: AbortSignal;
  /** The helper's process id, once started. */
  onSpawn?: (pid: number) => void;
}

export function extractorArgs(job: ExtractJob, progressMs: number): string[] {
  const args = [
    '-w', job.output,
    '--from', job.fromNs.toString(),
    '--to', job.toNs.toString(),
    '--linktype', String(job.linktype),
    '--snaplen', String(job.snaplen),
    '--list', '-',
    '--status-fd', '3',
    '--progress-ms', String(progressMs),
  ];
  if (job.filter !== undefined && job.filter.trim() !== '') args.push('--filter', job.filter);
  if (job.ranges?.spans.size) args.push('--ranges', `/dev/fd/${RANGES_FD}`);
  return args;
}

// The --ranges bytes travel on this descriptor of the child (a pipe: nothing left on disk).
const RANGES_FD = 4;

/** The `--list` text: `<stream> <sorted>[:<first>+<count>] <path>` per file. */
export function extractorList(streams: readonly ExtractStream[], spans?: ReadonlyMap<string, readonly [number, number]>): string {
  const lines: string[] = [];
  streams.forEach((s, i) => {
    for (const f of s.files) {
      if (f.path.includes('\n')) throw new Error(`cannot pass a path containing a newline to qe-extract: ${JSON.stringify(f.path)}`);
      // Only a closed file is known to stay sorted: a part file may have grown since the scan.
      const span = spans?.get(f.path);
      lines.push(`${i} ${f.sorted && !f.partial ? 1 : 0}${span ? `:${span[0]}+${span[1]}` : ''} ${f.path}`);
    }
  });
  return lines.length ? lines.join('\n') + '\n' : '';
}

export async function runExtractor(job: ExtractJob, hooks: ExtractHooks = {}): Promise<ExtractOutcome> {
  const ranged = !!job.ranges?.spans.size;
  // --idle: qe-extract lowers its own priorities (ionice and nice in front of it were two more
  // programs to load from disk, 15-30 ms of a cold API query).
  const argv = [nativeTool('qe-extract'), ...extractorArgs(job, hooks.progressMs ?? 0), ...(hooks.idle ? ['--idle'] : [])];
  const child = spawn(argv[0]!, argv.slice(1), {
    ...(hooks.signal ? { signal: hooks.signal, killSignal: 'SIGTERM' as const } : {}),
    stdio: ['pipe', job.output === '-' ? (job.stdout ?? 'inherit') : 'ignore', 'pipe', 'pipe', ...(ranged ? ['pipe' as const] : [])],
  });
  if (child.pid !== undefined) hooks.onSpawn?.(child.pid);
  if (job.stdout === 'pipe') hooks.onStdout?.(child.stdout!);
  // A child that exits early (a bad filter) closes stdin before the list is written: not an error.
  // All four were asked for as pipes (or inherited) above, so none is null.
  const stdin = child.stdin!;
  const errStream = child.stderr!;
  const statusStream = child.stdio[3] as Readable;
  stdin.on('error', () => {});
  if (ranged) {
    const rangesIn = child.stdio[RANGES_FD] as NodeJS.WritableStream & { on: (e: 'error', f: () => void) => void };
    rangesIn.on('error', () => {});
    rangesIn.end(job.ranges!.bytes);
  }
  stdin.end(extractorList(job.streams, job.ranges?.spans));

  let stderr = '';
  errStream.setEncoding('utf8');
  errStream.on('data', (d: string) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });

  // Ctrl-C reaches the helper through the terminal; a signal sent to this process alone is
  // passed on, so the helper still removes its unfinished output.
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);

  let final: { exit: number; message?: string; counts: ExtractCounts } | undefined;
  const status = createInterface({ input: statusStream });
  status.on('line', (line) => {
    let msg: ExtractStatus;
    try {
      msg = parseExtractStatus(line);
    } catch (e) {
      // Not the helper's own words: say so rather than lose them (the outcome still comes from its exit).
      hooks.onWarning?.(`unreadable status line from qe-extract (${whyUnreadable(e)}): ${line.slice(0, 200)}`);
      return;
    }
    if (msg.type === 'progress') hooks.onProgress?.(countsOf(msg));
    else if (msg.type === 'warning') hooks.onWarning?.(msg.message);
    else final = { exit: msg.exit, counts: countsOf(msg), ...(msg.type === 'error' ? { message: msg.message } : {}) };
  });

  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      // An abort kills the helper and is reported as an error too: its exit says the rest.
      child.on('error', (e) => (e.name === 'AbortError' ? undefined : reject(e)));
      child.on('close', (c, s) => resolve([c, s]));
    });
    const exitCode = code ?? (signal === 'SIGINT' ? ExitCode.interrupted : ExitCode.internal);
    if (final) {
      return { exitCode, counts: final.counts, ...(final.message ? { error: final.message } : {}) };
    }
    if (exitCode === ExitCode.pipeClosed || exitCode === ExitCode.interrupted) return { exitCode };
    return { exitCode: exitCode === 0 ? ExitCode.internal : exitCode, error: stderr.trim() || `qe-extract ended by ${signal ?? `exit ${code}`} without a result` };
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}
