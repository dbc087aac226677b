// Flow records made from the packets themselves, for what no flow table answers exactly: files
// that straddle the range's edges, files without a usable table, the unflushed tail of an open
// file, and every file when a filter is given. qe-extract reads them (through the index where a
// filter can use it, with extract's filter semantics) and writes one pcap stream, which
// `qe-index --flows-stdout` turns into one flow table. One interface per run: the table's records
// carry no interface, and a merged stream of two would mix their flows.
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { ExitCode } from '../extract/exit-codes.js';
import { runExtractor, type ExtractCounts } from '../extract/run-extractor.js';
import type { ExtractStream } from '../store/select-files.js';
import { nativeTool } from '../util/native.js';
import { decodeFlowTable, type FlowTable } from './format.js';
import { PcapRecordWalker, type SeriesCounter } from './series.js';

export interface PacketRead {
  streams: readonly ExtractStream[];
  fromNs: bigint;
  /** Inclusive, as extract's --to. */
  toNs: bigint;
  filter?: string;
  linktype: number;
  snaplen: number;
  ranges?: { bytes: Buffer; spans: ReadonlyMap<string, readonly [number, number]> };
  /** Also count the packets per interval (the pcap stream then passes through this process). */
  series?: SeriesCounter;
}

export interface PacketReadHooks {
  onProgress?: (c: ExtractCounts) => void;
  onWarning?: (message: string) => void;
  progressMs?: number;
}

export interface PacketReadOutcome {
  /** qe-extract's exit status: ok, empty (nothing matched: the table is empty), or a failure. */
  exitCode: number;
  error?: string;
  counts?: ExtractCounts;
  table?: FlowTable;
}

export async function flowsFromPackets(job: PacketRead, hooks: PacketReadHooks = {}): Promise<PacketReadOutcome> {
  // The table counts [from, to), extract's range is [from, to].
  const builder = spawn(nativeTool('qe-index'), ['--flows-stdout', '--from-ns', job.fromNs.toString(), '--to-ns', (job.toNs + 1n).toString()], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  builder.stdout!.on('data', (d: Buffer) => out.push(d));
  builder.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 64 * 1024) stderr += d.toString();
  });
  builder.stdin!.on('error', () => {}); // a builder that fails early closes its stdin: said by its exit
  const built = new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    builder.once('error', reject);
    builder.once('close', (c, s) => resolve([c, s]));
  });

  const series = job.series;
  let walked: Promise<void> | undefined;
  const extracted = runExtractor(
    {
      streams: job.streams,
      fromNs: job.fromNs,
      toNs: job.toNs,
      ...(job.filter !== undefined ? { filter: job.filter } : {}),
      output: '-',
      // Without a series the packets go from one helper to the other through a pipe of their own.
      stdout: series ? 'pipe' : builder.stdin!,
      linktype: job.linktype,
      snaplen: job.snaplen,
      ...(job.ranges?.spans.size ? { ranges: job.ranges } : {}),
    },
    {
      progressMs: hooks.progressMs ?? 0,
      ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
      ...(hooks.onWarning ? { onWarning: hooks.onWarning } : {}),
      onStdout: (s) => (walked = tee(s, builder.stdin!, series!)),
    },
  );
  // The extractor holds its own copy of the pipe: this one must go for the builder to see the end.
  if (!series) builder.stdin!.destroy();
  let outcome;
  try {
    outcome = await extracted;
  } catch (e) {
    builder.kill();
    await built.catch(() => undefined);
    throw e;
  }
  await walked;
  const [code, signal] = await built;
  if (outcome.exitCode !== ExitCode.ok && outcome.exitCode !== ExitCode.empty) {
    return { exitCode: outcome.exitCode, ...(outcome.error ? { error: outcome.error } : {}), ...(outcome.counts ? { counts: outcome.counts } : {}) };
  }
  if (code !== 0) {
    return { exitCode: ExitCode.internal, error: `qe-index --flows-stdout failed (${code === null ? `signal ${signal}` : `exit ${code}`}): ${stderr.trim() || 'no message'}` };
  }
  const table = decodeFlowTable(Buffer.concat(out), 'the flow table of qe-index --flows-stdout');
  return { exitCode: outcome.exitCode, ...(outcome.counts ? { counts: outcome.counts } : {}), table };
}

/** Passes the pcap stream on to the builder, counting its records per interval on the way. */
function tee(from: Readable, to: NodeJS.WritableStream, series: SeriesCounter): Promise<void> {
  const walker = new PcapRecordWalker((ts, len) => series.count(ts, len));
  // A builder that died takes no more: the stream is read to its end all the same, so the
  // extractor is never left blocked on a full pipe (the builder's exit says what went wrong).
  let dead = false;
  to.once('close', () => {
    dead = true;
    from.resume();
  });
  return new Promise((resolve) => {
    from.on('data', (chunk: Buffer) => {
      walker.push(chunk);
      if (!dead && !to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    const done = () => {
      if (!dead) to.end();
      resolve();
    };
    from.once('end', done);
    from.once('error', done);
  });
}
