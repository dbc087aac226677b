// Live rows, on bench:capture's veth pair and trial machinery: the capture helper's CPU per packet
// with the index on and off (and stenotype's, which indexes too) at 64 B, IMIX and 1500 B; and how
// soon a packet sent live is returned by `extract` through the index.

import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writePcapFile, type SizeProfile } from '../../daemon/src/traffic/generate.js';
import { countPcap } from '../capture/count.js';
import { runGenerator } from '../capture/generators.js';
import { fixedRateEnv, runLiveTrial, summarizeLive, type LiveTrial } from '../capture/live.js';
import { CAPTURE_IF, GENERATOR_IF, NAMESPACE, packetSockets } from '../capture/netns.js';
import { TimedProcess, run, sleep } from '../capture/proc.js';
import { ratio, round } from '../capture/stats.js';
import { DAEMON_CLI, daemonWithIndex, stenotype, type LiveTool } from '../capture/tools.js';
import { makeStore } from './store.js';

export const DEFAULT_FIELDS = ['ip', 'port', 'proto', 'vlan'] as const;
const PROFILES: readonly SizeProfile[] = ['64', 'imix', '1500'];

interface Row {
  label: 'index on' | 'index off' | 'index + flows' | 'stenotype';
  tool: LiveTool;
}

export interface CaptureCostOptions {
  workDir: string;
  ifindex: number;
  seconds: number;
  pps: number;
  reps: number;
  steno: boolean;
  generatorCpu: number;
  captureCpu: number;
  seed: number;
}

export async function captureCost(o: CaptureCostOptions, log: (s: string) => void) {
  const env = await fixedRateEnv(o, PROFILES);
  const rows: Row[] = [
    // Flow tables off in both: the index's own cost (issue 17); then both tables against neither (issue 18).
    { label: 'index on', tool: daemonWithIndex(DEFAULT_FIELDS, false) },
    { label: 'index off', tool: daemonWithIndex([], false) },
    { label: 'index + flows', tool: daemonWithIndex(DEFAULT_FIELDS, true) },
    ...(o.steno ? [{ label: 'stenotype' as const, tool: stenotype }] : []),
  ];
  const conditions = [];
  for (const profile of PROFILES) {
    const c = { id: `${profile}/tcpreplay-${o.pps}`, profile, generator: { kind: 'tcpreplay' as const, pps: o.pps } };
    const trials: (LiveTrial & { row: Row['label'] })[] = [];
    for (let rep = 1; rep <= o.reps; rep++) {
      const order = rows.map((_, i) => rows[(i + rep - 1) % rows.length]!);
      for (const row of order) {
        const t = await runLiveTrial(row.tool, c, rep, env);
        trials.push({ ...t, row: row.label });
        log(`capture cost ${profile} ${row.label} #${rep}: ${t.error ? `ERROR ${t.error}` : `offered ${t.offered}, in files ${t.written}, lost ${t.lossPct?.toFixed(2)}%, CPU ${t.cpu?.perMpktWrittenHelperS ?? t.cpu?.perMpktWrittenSchedS} s/Mpkt (whole tree ${t.cpu?.perMpktWrittenSchedS}, ticks ${t.cpu?.perMpktWrittenS})`}`);
      }
    }
    const summaries = rows.map((r) => ({ row: r.label, ...summarizeLive(r.tool.name, trials.filter((t) => t.row === r.label), o.seconds) }));
    // schedstat nanoseconds (a 2 s trial at 100 kpps is only a few 10 ms ticks of CPU); ours is the
    // helper's (the packet work), stenotype's its whole process.
    const cpu = (l: Row['label']) => {
      const s = summaries.find((x) => x.row === l);
      return l === 'stenotype' ? s?.cpuPerMpktSchedS : s?.cpuPerMpktHelperS;
    };
    conditions.push({
      profile,
      pps: o.pps,
      summaries,
      onVsOff: round(ratio(cpu('index on'), cpu('index off')), 3),
      withFlowsVsOff: round(ratio(cpu('index + flows'), cpu('index off')), 3),
      onVsStenotype: round(ratio(cpu('index on'), cpu('stenotype')), 3),
      trials,
    });
  }
  return {
    method:
      'tcpreplay at a fixed rate, bench:capture live trials (runLiveTrial); CPU = on-CPU time (schedstat) over traffic + drain, per packet ' +
      'written: the qe-capture helper alone for ours (index on/off), the stenotype process (all threads) for stenotype; the whole tree ' +
      '(Node.js too) is in cpuPerMpktSchedS',
    conditions,
  };
}

/** One UDP frame from `src` in a nanosecond pcap: a packet nobody else sends. */
async function writeProbe(path: string, n: number): Promise<string> {
  const src = `10.99.${n >> 8}.${n & 255}`;
  const h = Buffer.alloc(24);
  h.writeUInt32LE(0xa1b23c4d, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeUInt32LE(65535, 16);
  h.writeUInt32LE(1, 20);
  const f = Buffer.alloc(60);
  f.writeUIntBE(0x020000000099, 0, 6); // not the veth's MAC: the host stack drops it after capture
  f.writeUIntBE(0x020000000001, 6, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(46, 16);
  f[22] = 64;
  f[23] = 17;
  src.split('.').forEach((v, i) => (f[26 + i] = Number(v)));
  [10, 99, 255, 1].forEach((v, i) => (f[30 + i] = v));
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(9, 36);
  f.writeUInt16BE(26, 38);
  const r = Buffer.alloc(16);
  r.writeUInt32LE(60, 8);
  r.writeUInt32LE(60, 12);
  await writeFile(path, Buffer.concat([h, r, f]));
  return src;
}

/**
 * The daemon captures live with the default index while background IMIX flows at `bgPps`; each
 * probe is sent once, then `extract --filter 'host SRC'` runs again and again until it returns it.
 */
export async function findability(o: { workDir: string; ifindex: number; probes: number; bgPps: number; generatorCpu: number; captureCpu: number; seed: number }, log: (s: string) => void) {
  const dir = join(o.workDir, 'findable');
  const store = await makeStore(dir, 'store', 2e9);
  const bg = join(dir, 'bg.pcap');
  await writePcapFile(bg, { profile: 'imix', count: 60_000, seed: o.seed });
  const before = await packetSockets(o.ifindex);
  const daemon = TimedProcess.start([process.execPath, DAEMON_CLI, 'capture', '--config', store.config], { cpu: o.captureCpu, timeFile: join(dir, 'time.txt') });
  const probes: { src: string; foundAfterS?: number; extracts: number; lastExtractS?: number }[] = [];
  try {
    const until = Date.now() + 30_000;
    while ((await packetSockets(o.ifindex)) <= before) {
      if (Date.now() > until) throw new Error('the daemon never opened a packet socket');
      await sleep(100);
    }
    await sleep(2000);
    const seconds = 8 + o.probes * 5;
    const background = runGenerator({ kind: 'tcpreplay', pps: o.bgPps }, { trafgenConfig: '', pcap: bg }, seconds, o.generatorCpu);
    for (let i = 1; i <= o.probes; i++) {
      const probe = join(dir, `probe-${i}.pcap`);
      const src = await writeProbe(probe, i);
      await run('ip', ['netns', 'exec', NAMESPACE, 'tcpreplay', '-i', GENERATOR_IF, probe]);
      const sentAt = process.hrtime.bigint();
      const p: (typeof probes)[number] = { src, extracts: 0 };
      const out = join(dir, 'found.pcap');
      while (p.foundAfterS === undefined) {
        const from = new Date(Date.now() - 120_000).toISOString();
        const t0 = process.hrtime.bigint();
        const r = await run(process.execPath, [DAEMON_CLI, 'extract', '--config', store.config, '--from', from, '--filter', `host ${src}`, '-w', out], { reject: false });
        const now = process.hrtime.bigint();
        p.extracts++;
        p.lastExtractS = round(Number(now - t0) / 1e9, 3)!;
        const n = r.exitCode === 0 ? (await countPcap(out)).packets : 0;
        if (n >= 1) p.foundAfterS = round(Number(now - sentAt) / 1e9, 3)!;
        else if (Number(now - sentAt) / 1e9 > 30) break;
      }
      await rm(out, { force: true });
      log(`findable: probe ${src} returned by extract ${p.foundAfterS ?? 'NEVER (30 s)'} s after it was sent (${p.extracts} extract runs, the last took ${p.lastExtractS} s)`);
      probes.push(p);
      await sleep(1500);
    }
    await background;
  } finally {
    await daemon.stop('SIGTERM', 30_000);
    await rm(dir, { recursive: true, force: true });
  }
  return {
    method: `daemon capturing on ${CAPTURE_IF} (default index, flush_interval 1s) with IMIX in the background at ${o.bgPps} pps; each probe frame sent once; extract re-run until it returns the probe; the time includes the last extract run itself`,
    probes,
  };
}
