// Issue 18's figures in bench:index: the flow tables' size, and `stats --by host --top 10` over the
// whole store from a cold page cache against `tshark -z endpoints,ip` over the same files (the
// tool people would otherwise reach for), with the top hosts' packet counts compared.

import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { median, round } from '../capture/stats.js';
import { DAEMON_CLI } from '../capture/tools.js';
import { apiCommand, type ApiDaemon } from './api.js';
import { dropCaches, type Range } from './query.js';
import { timed, type Store } from './store.js';

export interface StatsTrial {
  tool: 'stats' | 'stats (API, curl)' | 'tshark -z endpoints,ip';
  rep: number;
  wallS?: number;
  cpuS?: number;
  error?: string;
}

export interface StatsFigures {
  trials: StatsTrial[];
  statsS?: number;
  /** The same asked of a running daemon with curl (api.ts): no Node.js start, config or catalog. */
  apiS?: number;
  tsharkS?: number;
  /** tshark's time over ours. */
  speedup?: number;
  /** The top 10 hosts by bytes, ours; and whether tshark counted the same packets for each. */
  top: { host: string; packets: number; tsharkPackets?: number }[];
  agree: boolean;
}

interface StatsJson {
  rows: { key: string; packets: number; bytes: number }[];
}

/** IPv4/IPv6 endpoint rows of `tshark -q -z endpoints,ip`/`endpoints,ipv6`: address and packets. */
export function parseEndpoints(text: string, into: Map<string, number>): void {
  for (const line of text.split('\n')) {
    const m = /^([0-9a-fA-F.:]+)\s+(\d+)\s+\d+/.exec(line.trim());
    if (m && (m[1]!.includes('.') || m[1]!.includes(':'))) into.set(m[1]!, (into.get(m[1]!) ?? 0) + Number(m[2]));
  }
}

export async function statsBench(store: Store, files: readonly string[], range: Range, reps: number, cpu: number, scratch: string, api?: ApiDaemon): Promise<StatsFigures> {
  const trials: StatsTrial[] = [];
  let ours: StatsJson | undefined;
  const statsCmd = [process.execPath, DAEMON_CLI, 'stats', '--config', store.config, '--from', range.from, '--to', range.to, '--by', 'host', '--top', '10', '--json'];
  for (let rep = 1; rep <= reps; rep++) {
    await dropCaches();
    const t = await timed(statsCmd, cpu, scratch);
    const trial: StatsTrial = { tool: 'stats', rep, wallS: round(t.wallS, 4)!, cpuS: round(t.cpuS, 3)! };
    if (t.exitCode !== 0) trial.error = `exit ${t.exitCode}: ${t.stderr.slice(-300)}`;
    else ours = JSON.parse(t.stdout) as StatsJson;
    trials.push(trial);
    if (api) {
      const out = join(scratch, 'api-stats.json');
      await dropCaches();
      const a = await timed(apiCommand(api, 'stats', { from: range.from, to: range.to, by: 'host', top: '10' }, out), cpu, scratch);
      const at: StatsTrial = { tool: 'stats (API, curl)', rep, wallS: round(a.wallS, 4)!, cpuS: round(a.cpuS, 3)! };
      if (a.exitCode !== 0) at.error = `exit ${a.exitCode}: ${a.stderr.slice(-300)}`;
      else {
        const rows = (JSON.parse(await readFile(out, 'utf8')) as StatsJson).rows;
        if (ours && JSON.stringify(rows) !== JSON.stringify(ours.rows)) at.error = 'the API answered other rows than the command';
      }
      await rm(out, { force: true });
      trials.push(at);
    }
  }
  // tshark reads each file whole (it has no index): once, cold, summed over the files.
  await dropCaches();
  const counts = new Map<string, number>();
  const tsharkTrial: StatsTrial = { tool: 'tshark -z endpoints,ip', rep: 1, wallS: 0, cpuS: 0 };
  for (const f of files) {
    const t = await timed(['tshark', '-n', '-q', '-r', f, '-z', 'endpoints,ip', '-z', 'endpoints,ipv6'], cpu, scratch);
    if (t.exitCode !== 0) {
      tsharkTrial.error = `exit ${t.exitCode} on ${f}: ${t.stderr.slice(-300)}`;
      break;
    }
    tsharkTrial.wallS = round(tsharkTrial.wallS! + t.wallS, 4);
    tsharkTrial.cpuS = round(tsharkTrial.cpuS! + t.cpuS, 3);
    parseEndpoints(t.stdout, counts);
  }
  trials.push(tsharkTrial);
  const statsTimes = trials.filter((t) => t.tool === 'stats' && !t.error).map((t) => t.wallS!);
  const statsS = statsTimes.length ? median(statsTimes) : undefined;
  const apiTimes = trials.filter((t) => t.tool === 'stats (API, curl)' && !t.error).map((t) => t.wallS!);
  const tsharkS = tsharkTrial.error ? undefined : tsharkTrial.wallS;
  const top = (ours?.rows ?? []).map((r) => ({ host: r.key, packets: r.packets, tsharkPackets: counts.get(r.key) }));
  return {
    trials,
    statsS,
    ...(apiTimes.length ? { apiS: median(apiTimes) } : {}),
    tsharkS,
    speedup: statsS && tsharkS ? round(tsharkS / statsS, 2) : undefined,
    top,
    agree: top.length > 0 && top.every((t) => t.tsharkPackets === t.packets),
  };
}
