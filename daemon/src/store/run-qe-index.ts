// Runs qe-index (daemon/native/qe-index.c) on closed capture files and reads its status lines.
// Indexing reads whole pcap files: it runs at the lowest CPU priority (nice 19) and the lowest
// best-effort I/O priority (ionice -c2 -n7), so capture and extraction always come first. Not the
// idle I/O class: on a store written all day by capture, idle I/O would never run at all.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { nativeTool } from '../util/native.js';

const count = z.number().int().nonnegative();

/** qe-index's status lines (its usage comment is the other copy). */
export const qeIndexMessage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('progress'), path: z.string(), bytes: count, total: count }),
  z.strictObject({
    type: z.literal('indexed'),
    path: z.string(),
    index: z.string().optional(),
    records: count,
    keys: count.default(0),
    index_bytes: count.default(0),
    /** With --flows: the flow table's records and size. */
    flows: count.optional(),
    flow_bytes: count.default(0),
  }),
  z.strictObject({ type: z.literal('error'), path: z.string(), message: z.string() }),
  z.strictObject({ type: z.literal('done'), files: count, failed: count }),
]);
export type QeIndexMessage = z.output<typeof qeIndexMessage>;

export const QE_INDEX_EXIT = { ok: 0, usage: 2, someFailed: 4 } as const;

export interface QeIndexRun {
  fields: readonly string[];
  blockSizeBytes: number;
  /** Build each file's flow table too (with `fields` empty: only the flow table). */
  flows?: boolean;
  files: readonly string[];
  /** nice 19 and ionice best-effort 7 (the daemon and `qe-packets index`); false in tests that time it. */
  lowPriority?: boolean;
  progressMs?: number;
  onMessage: (m: QeIndexMessage) => void;
  signal?: AbortSignal;
}

/** Resolves with qe-index's exit code once it has ended and every status line has been read. */
export function runQeIndex(run: QeIndexRun): Promise<{ code: number | null; stderr: string }> {
  const tool = [nativeTool('qe-index'), '--fields', run.fields.join(','), '--block-size', String(run.blockSizeBytes), '--status-fd', '3', '--progress-ms', String(run.progressMs ?? 500), ...(run.flows ? ['--flows'] : []), '--', ...run.files];
  // Where lowering a priority is refused (a sandbox without these calls) qe-index runs all the
  // same: nice goes on after a warning, ionice is told to (-t).
  const argv = run.lowPriority === false ? tool : ['ionice', '-t', '-c', '2', '-n', '7', 'nice', '-n', '19', ...tool];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], ...(run.signal ? { signal: run.signal } : {}) });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8192);
  });
  const lines = createInterface({ input: child.stdio[3] as Readable });
  lines.on('line', (line) => {
    let m: QeIndexMessage;
    try {
      m = qeIndexMessage.parse(JSON.parse(line));
    } catch {
      stderr += `\nunreadable qe-index status line: ${line.slice(0, 200)}`;
      return;
    }
    run.onMessage(m);
  });
  const closed = new Promise<void>((r) => lines.once('close', r));
  return new Promise((resolve) => {
    child.once('error', (e) => {
      if (e.name === 'AbortError') return;
      stderr += e.message;
    });
    child.once('close', (code) => void closed.then(() => resolve({ code, stderr: stderr.trim() })));
  });
}
