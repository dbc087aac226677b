// /extract: qe-extract's pcap stream to an HTTP client, through the command's own preparation
// (extract/prepare.ts) and runner. Extraction never costs capture: the helper runs at idle CPU and
// I/O priority, at most api.max_extractions at once, and ends when its client goes away or stops
// reading. Nothing is sent before qe-extract has compiled the filter, opened every input and found
// a first packet (the pcap header is held until then), so a bad filter is a 400 and nothing in the
// range a 404 empty_range, each with the CLI's words; a failure after the first byte cuts the
// connection (never a clean end of a truncated pcap).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { ExitCode } from '../extract/exit-codes.js';
import { emptyText, extractorJob, noteScans, prepareExtraction, type ExtractQuery } from '../extract/prepare.js';
import { GLOBAL_HEADER_LEN } from '../pcap/format.js';
import { runExtractor, type ExtractCounts, type ExtractOutcome } from '../extract/run-extractor.js';
import { formatIsoNs } from '../time/format-time.js';
import { log } from '../util/log.js';

/** A download that sends nothing for this long (a client that stopped reading) is ended. */
export const STALL_MS = 60_000;
const PROGRESS_MS = 500;

export interface ExtractionResult {
  status: number;
  outcome: 'complete' | 'cancelled' | 'refused' | 'failed';
  packets: number;
  bytes: number;
  error?: string;
  /** For a refusal before any byte: the HTTP status and code to answer with. */
  refusal?: { status: number; code: 'bad_request' | 'empty_range' | 'unreadable_input' | 'internal'; message: string };
}

/** The helpers running, for api.max_extractions and for the test that none is left behind. */
export class ExtractionSlots {
  readonly pids = new Set<number>();
  private taken = 0;
  constructor(private readonly max: () => number) {}
  /** A slot, or undefined when all are taken; its release may be called more than once. */
  tryTake(): { release: () => void } | undefined {
    if (this.taken >= this.max()) return undefined;
    this.taken++;
    let held = true;
    return {
      release: () => {
        if (held) this.taken--;
        held = false;
      },
    };
  }
  get running(): number {
    return this.taken;
  }
}

/** `qe-packets_20260101T000000Z_20260101T001000Z.pcap`: the range in the name, safe in any header. */
export function downloadName(q: ExtractQuery): string {
  const t = (ns: bigint) => formatIsoNs(ns).replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `qe-packets_${t(q.fromNs)}_${t(q.toNs)}.pcap`;
}

const refusalFor = (exitCode: number, message: string): NonNullable<ExtractionResult['refusal']> =>
  exitCode === ExitCode.usage
    ? { status: 400, code: 'bad_request', message }
    : exitCode === ExitCode.input
      ? { status: 500, code: 'unreadable_input', message }
      : { status: 500, code: 'internal', message };

/**
 * Streams the extraction to `res`. Refusals before the first byte come back as `refusal` (the
 * caller answers them as JSON errors); everything after is said by the stream itself.
 */
export async function streamExtraction(req: IncomingMessage, res: ServerResponse, paths: readonly string[], q: ExtractQuery, slots: ExtractionSlots, slot: { release: () => void }): Promise<ExtractionResult> {
  const say = (text: string) => log('info', `extract (API): ${text}`);
  const prepared = await prepareExtraction(paths, q, say);
  noteScans(prepared.reads, say);

  const abort = new AbortController();
  let started = false;
  let sent = 0;
  let counts: ExtractCounts | undefined;
  let stdout: Readable | undefined;
  let stall: NodeJS.Timeout | undefined;
  let pid: number | undefined;
  const armStall = () => {
    clearTimeout(stall);
    stall = setTimeout(() => {
      log('warn', `extract (API): ${req.socket.remoteAddress}: nothing could be sent for ${STALL_MS / 1000} s; ending the download`);
      res.destroy();
    }, STALL_MS);
  };
  // The client went away (or was cut): the helper is ended and its pipe drained, so nothing waits on it.
  const gone = () => {
    if (res.writableFinished) return;
    abort.abort();
    stdout?.unpipe(res);
    stdout?.resume();
  };
  res.on('close', gone);

  let outcome: ExtractOutcome;
  try {
    outcome = await runExtractor(
      { ...extractorJob(q, prepared, '-'), stdout: 'pipe' },
      {
        idle: true,
        signal: abort.signal,
        progressMs: PROGRESS_MS,
        onProgress: (c) => (counts = c),
        onWarning: (m) => say(`warning: ${m}`),
        onSpawn: (p) => slots.pids.add((pid = p)),
        onStdout: (s) => {
          stdout = s;
          // The pcap header alone says nothing yet: held until a packet follows it (or the helper
          // ends, when an empty range is answered as such rather than as an empty file).
          const held: Buffer[] = [];
          let heldBytes = 0;
          const hold = (d: Buffer) => {
            held.push(d);
            heldBytes += d.length;
            if (heldBytes > GLOBAL_HEADER_LEN) {
              s.off('data', hold);
              begin(Buffer.concat(held));
            }
          };
          s.on('data', hold);
          const begin = (first: Buffer) => {
            if (res.destroyed) return;
            started = true;
            res.writeHead(200, {
              'content-type': 'application/vnd.tcpdump.pcap',
              'content-disposition': `attachment; filename="${downloadName(q)}"`,
              'cache-control': 'no-store',
            });
            res.write(first);
            sent += first.length;
            armStall();
            s.on('data', (d: Buffer) => {
              sent += d.length;
              armStall();
            });
            // The end comes from the outcome, not the pipe: a helper that fails midway must not look like a whole file.
            s.pipe(res, { end: false });
          };
        },
      },
    );
  } finally {
    clearTimeout(stall);
    if (pid !== undefined) slots.pids.delete(pid); // runExtractor returns once the helper has ended
    // Free before the response ends: a client that starts its next download on the end of this one must find the slot free.
    slot.release();
  }
  const packets = outcome.counts?.packets ?? counts?.packets ?? 0;
  if (abort.signal.aborted || res.destroyed) {
    return { status: started ? 200 : 499, outcome: 'cancelled', packets, bytes: sent };
  }
  if (outcome.exitCode === ExitCode.empty && !started) {
    const message = emptyText(q, prepared.chosen.selection.files);
    return { status: 404, outcome: 'refused', packets: 0, bytes: 0, error: message, refusal: { status: 404, code: 'empty_range', message } };
  }
  if (outcome.exitCode === ExitCode.ok || outcome.exitCode === ExitCode.empty) {
    if (!started) {
      // qe-extract always writes a pcap header; nothing at all is a failure of the helper.
      return { status: 500, outcome: 'failed', packets: 0, bytes: 0, refusal: refusalFor(ExitCode.internal, 'qe-extract wrote nothing') };
    }
    await new Promise<void>((resolve) => (stdout!.readableEnded ? resolve() : stdout!.once('end', resolve)));
    res.end();
    return { status: 200, outcome: 'complete', packets, bytes: sent };
  }
  const message = outcome.error ?? `qe-extract failed with exit status ${outcome.exitCode}`;
  if (!started) {
    const refusal = refusalFor(outcome.exitCode, message);
    return { status: refusal.status, outcome: refusal.status < 500 ? 'refused' : 'failed', packets: 0, bytes: 0, error: message, refusal };
  }
  log('error', `extract (API): failed after ${sent} bytes: ${message}`);
  res.destroy();
  return { status: 200, outcome: 'failed', packets, bytes: sent, error: message };
}

