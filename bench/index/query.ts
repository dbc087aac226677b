// Timed queries, each from a cold page cache (a real store is tens of terabytes and never sits in
// memory): `qe-packets extract` through the index and with --no-index, `tcpdump -r` over the same
// files, and (steno.ts) stenoread. Every answer is counted, and the indexed answer must be byte
// for byte the scan's.

import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { countPcap } from '../capture/count.js';
import { run } from '../capture/proc.js';
import { median, round } from '../capture/stats.js';
import { DAEMON_CLI } from '../capture/tools.js';
import { NEEDLES } from './traffic.js';
import { timed, type Store } from './store.js';

export interface Query {
  id: 'pair' | 'port' | 'vlan';
  filter: string;
  /** The same question in Stenographer's query language; undefined: it cannot ask it. */
  steno: string | undefined;
}

export const QUERIES: readonly Query[] = [
  { id: 'pair', filter: `host ${NEEDLES.pair.client} and host ${NEEDLES.pair.server}`, steno: `host ${NEEDLES.pair.client} and host ${NEEDLES.pair.server}` },
  { id: 'port', filter: `port ${NEEDLES.port}`, steno: `port ${NEEDLES.port}` },
  // Stenographer indexes no VLAN IDs.
  { id: 'vlan', filter: `vlan ${NEEDLES.vlan}`, steno: undefined },
];

export type QueryTool = 'extract' | 'API (curl)' | 'extract --no-index' | 'tcpdump -r' | 'stenoread';

export interface QueryTrial {
  tool: QueryTool;
  query: Query['id'];
  rep: number;
  wallS?: number;
  cpuS?: number;
  packets?: number;
  bytes?: number;
  error?: string;
  stderrTail?: string;
}

/** Writes back dirty pages, then drops the page cache, dentries and inodes. */
export async function dropCaches(): Promise<void> {
  await run('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', '3\n');
}

export interface Range {
  from: string;
  to: string;
}

export function extractCommand(store: Store, range: Range, filter: string, out: string, noIndex = false): string[] {
  return [process.execPath, DAEMON_CLI, 'extract', '--config', store.config, '--from', range.from, '--to', range.to,
    '--filter', filter, ...(noIndex ? ['--no-index'] : []), '-w', out];
}

/** One timed answer; `out` is left for the caller to compare and remove. */
export async function runQuery(tool: QueryTool, command: readonly string[], q: Query, rep: number, out: string, cpu: number, scratch: string): Promise<QueryTrial> {
  const trial: QueryTrial = { tool, query: q.id, rep };
  await rm(out, { force: true });
  await dropCaches();
  const t = await timed(command, cpu, scratch);
  trial.wallS = round(t.wallS, 4)!;
  trial.cpuS = round(t.cpuS, 3)!;
  if (t.exitCode !== 0) {
    trial.error = `exit ${t.exitCode}`;
    trial.stderrTail = t.stderr.slice(-600);
    return trial;
  }
  const c = await countPcap(out).catch((e: unknown) => {
    trial.error = `output unreadable: ${e instanceof Error ? e.message : String(e)}`;
    return undefined;
  });
  if (c) {
    trial.packets = c.packets;
    trial.bytes = c.fileBytes;
  }
  return trial;
}

/** tcpdump over every file of the store, in name (= time) order, through a file list (-V). */
export async function tcpdumpCommand(files: readonly string[], filter: string, out: string, scratch: string): Promise<string[]> {
  const list = join(scratch, 'tcpdump-files.txt');
  await writeFile(list, `${files.join('\n')}\n`);
  return ['tcpdump', '-n', '-Z', 'root', '-V', list, '-w', out, filter];
}

/** Are two files byte for byte equal? */
export async function sameBytes(a: string, b: string): Promise<boolean> {
  const r = await run('cmp', ['-s', a, b], { reject: false });
  return r.exitCode === 0;
}

export interface QuerySummary {
  tool: QueryTool;
  query: Query['id'];
  ok: number;
  trials: number;
  wallS?: number;
  cpuS?: number;
  packets?: number;
}

export function summarizeQueries(trials: readonly QueryTrial[]): QuerySummary[] {
  const keys = [...new Set(trials.map((t) => `${t.tool}\u0000${t.query}`))];
  return keys.map((k) => {
    const [tool, query] = k.split('\u0000') as [QueryTool, Query['id']];
    const all = trials.filter((t) => t.tool === tool && t.query === query);
    const ok = all.filter((t) => !t.error);
    const s: QuerySummary = { tool, query, ok: ok.length, trials: all.length };
    const w = median(ok.map((t) => t.wallS!));
    if (w !== undefined) s.wallS = round(w, 4)!;
    const c = median(ok.map((t) => t.cpuS!));
    if (c !== undefined) s.cpuS = round(c, 3)!;
    if (ok[0]?.packets !== undefined) s.packets = ok[0].packets;
    return s;
  });
}
