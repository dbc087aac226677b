// `qe-packets extract`: the packets of a time range (and a BPF filter) from every interface in the
// store, merged in timestamp order into one pcap file or onto stdout. The catalog picks the files;
// qe-extract reads, filters and merges them.
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ExitCode } from '../extract/exit-codes.js';
import { runExtractor, type ExtractCounts, type ExtractOutcome } from '../extract/run-extractor.js';
import { nowNs } from '../time/format-time.js';
import { EXTRACT_USAGE, UsageError, parseExtractArgs, type ExtractRequest } from './extract-args.js';
import { ProgressBar } from './progress-bar.js';
import { formatCount, formatSize } from '../config/units.js';
import { ConfigError } from '../config/errors.js';
import type { FileRead } from '../extract/read-plan.js';
import { Refusal, emptyText, extractorJob, noteScans, prepareExtraction, refuseBadFilter, type Prepared, type Say } from '../extract/prepare.js';
import { explain, explainText } from '../extract/explain.js';
import { loadConfigFile } from '../config/load.js';

const PREFIX = 'qe-packets extract';
const PROGRESS_MS = 150;

export async function extractCommand(argv: string[]): Promise<number> {
  const say: Say = (text) => process.stderr.write(`${PREFIX}: ${text}\n`);
  try {
    const req = readRequest(argv);
    if (req.help) {
      process.stdout.write(`${EXTRACT_USAGE}\n`);
      return ExitCode.ok;
    }
    if (!req.explain) checkDestination(req.output);
    const paths = await storePaths(req);
    const prepared = await prepareExtraction(paths, req, say);
    const { chosen, reads } = prepared;
    if (req.explain) {
      await refuseBadFilter(req, chosen);
      const e = explain(reads, req.filter, req.fromNs, req.toNs);
      process.stdout.write(req.json ? `${JSON.stringify(e)}\n` : `${explainText(e)}\n`);
      return ExitCode.ok;
    }
    noteScans(reads, say);
    const outcome = await extract(req, prepared, say);
    reportOutcome(req, chosen.selection.files, outcome, say, indexedText(reads, outcome));
    return outcome.exitCode;
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    say(e.message);
    return e.exitCode;
  }
}

function readRequest(argv: string[]): ExtractRequest {
  try {
    return parseExtractArgs(argv, nowNs());
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    throw new Refusal(ExitCode.usage, e.message);
  }
}

function checkDestination(output: string): void {
  if (output === '-' && process.stdout.isTTY) {
    throw new Refusal(ExitCode.usage, 'refusing to write a binary pcap to a terminal: pipe it (-w - | wireshark -k -i -) or give -w FILE');
  }
  const outputProblem = checkOutput(output);
  if (outputProblem) throw new Refusal(ExitCode.output, outputProblem);
}

/** The store's directories from the configuration; the output must not be one of them. */
async function storePaths(req: ExtractRequest): Promise<string[]> {
  let paths: string[];
  try {
    paths = (await loadConfigFile(req.configPath)).storage.paths;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new Refusal(ExitCode.usage, `invalid configuration\n${e.message}`);
  }
  const intoStore = storeDirHolding(req.output, paths);
  if (intoStore) {
    throw new Refusal(ExitCode.output, `-w ${req.output} is inside the capture store (${intoStore}): write the extract somewhere else, so it can never replace or mix with captures`);
  }
  return paths;
}

/** Runs qe-extract, with a progress bar on a terminal. */
async function extract(req: ExtractRequest, prepared: Prepared, say: Say): Promise<ExtractOutcome> {
  const stderr = process.stderr;
  const total = prepared.reads.reduce((n, r) => n + r.bytes, 0);
  const bar = stderr.isTTY ? new ProgressBar(stderr, { total, columns: stderr.columns }) : undefined;
  let outcome: ExtractOutcome;
  try {
    outcome = await runExtractor(extractorJob(req, prepared, req.output), {
      progressMs: bar ? PROGRESS_MS : 0,
      onProgress: (c) => bar?.update(c.bytes_read, c.packets),
      onWarning: (m) => (bar ? bar.message(`${PREFIX}: warning: ${m}`) : say(`warning: ${m}`)),
    });
  } catch (e) {
    // qe-extract missing or not executable: an installation problem, said plainly.
    throw new Refusal(ExitCode.internal, (e as Error).message);
  }
  if (bar && (outcome.exitCode === ExitCode.ok || outcome.exitCode === ExitCode.empty)) {
    bar.update(outcome.counts?.bytes_read ?? 0, outcome.counts?.packets ?? 0);
    bar.finish();
  } else if (bar) {
    stderr.write('\r\x1b[K');
  }
  return outcome;
}

/** How much the index saved, for the closing line: "; read 2MB of 40GB (3 of 3 files through their index)". */
function indexedText(reads: readonly FileRead[], outcome: ExtractOutcome): string {
  const through = reads.filter((r) => r.why === 'index').length;
  if (!through || !outcome.counts) return '';
  const total = reads.reduce((n, r) => n + r.file.size, 0);
  return `; read ${formatSize(outcome.counts.bytes_read)} of ${formatSize(total)} (${through} of ${reads.length} file${reads.length === 1 ? '' : 's'} through their index)`;
}

function reportOutcome(req: ExtractRequest, files: number, outcome: ExtractOutcome, say: Say, indexed = ''): void {
  const where = req.output === '-' ? 'standard output' : req.output;
  switch (outcome.exitCode) {
    case ExitCode.ok:
      say(`wrote ${countText(outcome.counts)} from ${files} file${files === 1 ? '' : 's'} to ${where}${indexed}`);
      break;
    case ExitCode.empty:
      say(`${emptyText(req, files)}; wrote an empty pcap to ${where}`);
      break;
    case ExitCode.pipeClosed:
    case ExitCode.interrupted:
      break; // the person or the reader ended it: nothing to add
    default:
      say(outcome.error ?? `qe-extract failed with exit status ${outcome.exitCode}`);
  }
}

/** Fails fast, before a possibly long scan, on an output that cannot be written. */
function checkOutput(output: string): string | undefined {
  if (output === '-') return undefined;
  const dir = dirname(resolve(output));
  try {
    if (statSync(output, { throwIfNoEntry: false })?.isDirectory()) {
      return `-w ${output} is a directory: give a file name inside it`;
    }
    accessSync(dir, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    return `-w ${output}: cannot write in ${dir} (${why})`;
  }
  return undefined;
}

/** The store directory the output would land in, if any. */
function storeDirHolding(output: string, storePaths: readonly string[]): string | undefined {
  if (output === '-' || output === '') return undefined; // stdout, or --explain (no output)
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const dir = real(dirname(resolve(output)));
  return storePaths.find((p) => real(p) === dir);
}

function countText(c: ExtractCounts | undefined): string {
  if (!c) return 'the packets';
  return `${formatCount(c.packets)} packet${c.packets === 1 ? '' : 's'} (${formatSize(c.bytes)})`;
}

