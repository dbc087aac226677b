// Live trials: one capture tool on the receiving veth, one generator in the namespace, the same
// frames for every tool. A trial arms the tool, offers traffic for a fixed time, lets the tool
// drain what it buffered, stops it, and compares what was offered with what is in its files.

import { loadavg } from 'node:os';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileCount } from './count.js';
import { describeGenerator, runGenerator, type GeneratorInputs, type GeneratorSpec } from './generators.js';
import { CAPTURE_IF, GENERATOR_IF, NAMESPACE, counters, delta, packetSockets, type LinkCounters } from './netns.js';
import { TimedProcess, sleep, ticksToSeconds } from './proc.js';
import { median, round } from './stats.js';
import type { LiveTool, Reported, ToolName } from './tools.js';
import { writePcapFile, writeTrafgenConfig, type SizeProfile } from '../../daemon/src/traffic/generate.js';

export interface LiveCondition {
  id: string;
  profile: SizeProfile;
  generator: GeneratorSpec;
}

export interface LiveEnv {
  workDir: string;
  ifindex: number;
  generatorCpu: number;
  captureCpu: number;
  seconds: number;
  ringFiles: number;
  fileSizeMB: number;
  bufferMiB: number;
  snaplen: number;
  /** Pause between arming the capture and starting traffic. */
  warmupMs: number;
  inputs: Record<SizeProfile, GeneratorInputs>;
}

/** What a fixed-rate cost trial (bench:index's capture cost, bench:capture's elements) runs on. */
export interface FixedRateOptions {
  workDir: string;
  ifindex: number;
  generatorCpu: number;
  captureCpu: number;
  seconds: number;
  pps: number;
  seed: number;
}

/**
 * The environment of tcpreplay trials at `o.pps` of the given profiles (their pcap and trafgen
 * inputs written under the work folder). The ring holds the trial's bytes plus the 1 GiB a circular
 * store frees ahead of a helper (the ledger's least grant, capped at half the capacity): a ring of
 * the trial's size alone keeps only part of it, and "in files" would count retention's deletions
 * as loss.
 */
export async function fixedRateEnv(o: FixedRateOptions, profiles: readonly SizeProfile[]): Promise<LiveEnv> {
  const dir = join(o.workDir, 'fixed-rate-inputs');
  await mkdir(dir, { recursive: true });
  const inputs = {} as Record<SizeProfile, GeneratorInputs>;
  for (const profile of profiles) {
    const trafgenConfig = join(dir, `${profile}.cfg`);
    const pcap = join(dir, `${profile}.pcap`);
    await writeTrafgenConfig(trafgenConfig, { profile, seed: o.seed });
    await writePcapFile(pcap, { profile, count: 60_000, seed: o.seed });
    inputs[profile] = { trafgenConfig, pcap };
  }
  const fileSizeMB = 100;
  return {
    workDir: o.workDir,
    ifindex: o.ifindex,
    generatorCpu: o.generatorCpu,
    captureCpu: o.captureCpu,
    seconds: o.seconds,
    ringFiles: Math.ceil((o.seconds * o.pps * 1600) / (fileSizeMB * 1e6)) + Math.ceil(2 ** 30 / (fileSizeMB * 1e6)) + 4,
    fileSizeMB,
    bufferMiB: 256,
    snaplen: 262144,
    warmupMs: o.seconds <= 2 ? 1000 : 10_000,
    inputs,
  };
}

export interface LiveTrial {
  tool: ToolName;
  condition: string;
  rep: number;
  startedAt: string;
  command: readonly string[];
  generator?: { command: string[]; exitCode: number | undefined; reportedPackets: number | undefined; output: string };
  /** Packets the sending veth transmitted while the generator ran. */
  offered?: number;
  offeredBytes?: number;
  /** Frames the sending veth could not hand over (receive backlog full); not offered. */
  senderDropped?: number;
  receiver?: LinkCounters;
  /** Frames the capture side itself sent (must be 0, or they inflate the written count). */
  reverseTx?: number;
  reported?: Reported;
  files?: { count: number; packets: number; frameBytes: number; fileBytes: number; trailingBytes: number; ringFull: boolean };
  /** Packets counted in the files. */
  written?: number;
  lost?: number;
  lossPct?: number;
  /** offered − written − what the tool says it dropped: losses no cause accounts for. */
  unaccounted?: number;
  /**
   * GNU time's user/sys/total cover the tool's whole life, including setting up a 256 MiB ring
   * (a large share of a short trial). windowS is the CPU the tool and its children used from the
   * start of traffic until it had drained, read from /proc the same way for every tool: the
   * per-packet figures use it, so start-up and shutdown do not count as packet work.
   */
  cpu?: {
    userS: number;
    sysS: number;
    totalS: number;
    windowS: number;
    /** The same window from schedstat (nanoseconds, live threads only): finer than ticks. */
    schedWindowS?: number;
    /** The helper process alone (tools with a helperComm), from schedstat. */
    helperWindowS?: number;
    perMpktWrittenHelperS?: number;
    perMpktWrittenS?: number;
    perMpktWrittenSchedS?: number;
    lifetimePerMpktWrittenS?: number;
    perMpktOfferedS?: number;
  };
  maxRssKiB?: number;
  wallS?: number;
  /** The tool went idle (had written out its backlog) before it was stopped. */
  drained?: boolean;
  killed?: boolean;
  exitCode?: number | undefined;
  signal?: string | undefined;
  loadAvg: { before: number[]; after?: number[] };
  error?: string;
  stderrTail?: string;
}

export interface LiveSummary {
  tool: ToolName;
  trials: number;
  failed: number;
  offered?: number;
  offeredMpps?: number;
  written?: number;
  lossPct?: number;
  reportedDropped?: number;
  unaccounted?: number;
  cpuPerMpktS?: number;
  cpuPerMpktSchedS?: number;
  cpuPerMpktHelperS?: number;
}

export function conditionLabel(c: LiveCondition): string {
  return `${c.profile === '64' ? '64 B' : c.profile === '1500' ? '1500 B' : 'IMIX'}, ${describeGenerator(c.generator)}`;
}

export async function runLiveTrial(tool: LiveTool, c: LiveCondition, rep: number, env: LiveEnv): Promise<LiveTrial> {
  const trial: LiveTrial = {
    tool: tool.name,
    condition: c.id,
    rep,
    startedAt: new Date().toISOString(),
    command: [],
    loadAvg: { before: loadavg() },
  };
  const dir = await mkdtemp(join(env.workDir, `${tool.name}-`));
  let proc: TimedProcess | undefined;
  try {
    const ctx = {
      iface: CAPTURE_IF,
      outDir: join(dir, 'out'),
      workDir: dir,
      ringFiles: env.ringFiles,
      fileSizeMB: env.fileSizeMB,
      bufferMiB: env.bufferMiB,
      snaplen: env.snaplen,
    };
    await mkdir(ctx.outDir);
    trial.command = await tool.command(ctx);
    const sockets = await packetSockets(env.ifindex);
    proc = TimedProcess.start(trial.command, { cpu: env.captureCpu, timeFile: join(dir, 'time.txt') });
    const armed = await waitUntil(async () => (await packetSockets(env.ifindex)) > sockets, 20_000, proc);
    if (!armed) throw new Error('the tool never opened a packet socket on the interface');
    await sleep(env.warmupMs);

    const senderBefore = await counters(GENERATOR_IF, NAMESPACE);
    const receiverBefore = await counters(CAPTURE_IF);
    const ticksBefore = await proc.treeCpuTicks();
    const nsBefore = await proc.treeCpuNs();
    const helperBefore = tool.helperComm ? await proc.treeCpuNs(tool.helperComm) : 0;
    let exitedEarly = false;
    void proc.done.then(() => (exitedEarly = true), () => (exitedEarly = true));
    const gen = await runGenerator(c.generator, env.inputs[c.profile], env.seconds, env.generatorCpu);
    const senderAfter = await counters(GENERATOR_IF, NAMESPACE);
    const receiverAfter = await counters(CAPTURE_IF);
    trial.generator = { ...gen, output: gen.output.split('\n').slice(-8).join('\n') };
    const sent = delta(senderBefore, senderAfter);
    trial.offered = sent.txPackets;
    trial.offeredBytes = sent.txBytes;
    trial.senderDropped = sent.txDropped;
    trial.receiver = delta(receiverBefore, receiverAfter);
    trial.reverseTx = trial.receiver.txPackets;

    if (exitedEarly) {
      const m = await proc.done;
      trial.stderrTail = tail(m.stderr, 1500);
      throw new Error(`the tool exited during the trial (exit code ${m.exitCode ?? m.signal})`);
    }
    // Every tool gets the chance to write out what it buffered before it is told to stop.
    trial.drained = await proc.waitIdle(1500, 60_000);
    if (tool.settleMs > 0) {
      await sleep(tool.settleMs);
      await proc.waitIdle(500, 10_000);
    }
    const windowTicks = (await proc.treeCpuTicks()) - ticksBefore;
    const windowNs = (await proc.treeCpuNs()) - nsBefore;
    const helperNs = tool.helperComm ? (await proc.treeCpuNs(tool.helperComm)) - helperBefore : undefined;
    const m = await proc.stop(tool.stopSignal, tool.stopGraceMs);
    trial.killed = m.killed;
    trial.exitCode = m.exitCode;
    trial.signal = m.signal;
    trial.wallS = round(m.wallS);
    trial.maxRssKiB = m.maxRssKiB;
    trial.stderrTail = tail(m.stderr, 600);
    const reported = await tool.reported(m, ctx);
    if (reported) trial.reported = reported;

    const files = await tool.count(ctx);
    trial.files = summarizeFiles(files, tool.ringFull(files, ctx));
    trial.written = trial.files.packets;
    trial.lost = trial.offered - trial.written;
    trial.lossPct = trial.offered > 0 ? (100 * trial.lost) / trial.offered : 0;
    if (reported?.dropped !== undefined) trial.unaccounted = trial.lost - reported.dropped;
    const totalS = m.cpuUserS + m.cpuSysS;
    const windowS = ticksToSeconds(windowTicks);
    trial.cpu = {
      userS: m.cpuUserS,
      sysS: m.cpuSysS,
      totalS: round(totalS, 3)!,
      windowS: round(windowS, 3)!,
      schedWindowS: round(windowNs / 1e9, 4)!,
      ...(helperNs !== undefined ? { helperWindowS: round(helperNs / 1e9, 4)! } : {}),
      ...(helperNs !== undefined && trial.written > 0 ? { perMpktWrittenHelperS: round(helperNs / 1e9 / (trial.written / 1e6), 4)! } : {}),
      ...(trial.written > 0
        ? {
            perMpktWrittenS: round(windowS / (trial.written / 1e6), 4)!,
            perMpktWrittenSchedS: round(windowNs / 1e9 / (trial.written / 1e6), 4)!,
            lifetimePerMpktWrittenS: round(totalS / (trial.written / 1e6), 4)!,
          }
        : {}),
      ...(trial.offered > 0 ? { perMpktOfferedS: round(windowS / (trial.offered / 1e6), 4)! } : {}),
    };
  } catch (err) {
    trial.error = err instanceof Error ? err.message : String(err);
    if (proc) {
      const m = await proc.stop('SIGKILL', 5000).catch(() => undefined);
      if (m && !trial.stderrTail) trial.stderrTail = tail(m.stderr, 1500);
    }
  } finally {
    trial.loadAvg.after = loadavg();
    await rm(dir, { recursive: true, force: true });
  }
  return trial;
}

function summarizeFiles(files: FileCount[], ringFull: boolean) {
  return {
    count: files.length,
    packets: files.reduce((s, f) => s + f.packets, 0),
    frameBytes: files.reduce((s, f) => s + f.frameBytes, 0),
    fileBytes: files.reduce((s, f) => s + f.fileBytes, 0),
    trailingBytes: files.reduce((s, f) => s + f.trailingBytes, 0),
    ringFull,
  };
}

async function waitUntil(cond: () => Promise<boolean>, timeoutMs: number, proc: TimedProcess): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  let exited = false;
  void proc.done.then(() => (exited = true), () => (exited = true));
  while (Date.now() < until && !exited) {
    if (await cond()) return true;
    await sleep(50);
  }
  return false;
}

function tail(s: string, n: number): string {
  return s.length <= n ? s : `…${s.slice(-n)}`;
}

export function summarizeLive(tool: ToolName, trials: readonly LiveTrial[], seconds: number): LiveSummary {
  const ok = trials.filter((t) => !t.error && t.written !== undefined);
  const pick = (f: (t: LiveTrial) => number | undefined) => median(ok.map(f).filter((x): x is number => x !== undefined));
  const offered = pick((t) => t.offered);
  return {
    tool,
    trials: trials.length,
    failed: trials.length - ok.length,
    ...def('offered', offered),
    ...def('offeredMpps', round(offered === undefined ? undefined : offered / seconds / 1e6, 4)),
    ...def('written', pick((t) => t.written)),
    ...def('lossPct', round(pick((t) => t.lossPct), 4)),
    ...def('reportedDropped', pick((t) => t.reported?.dropped)),
    ...def('unaccounted', pick((t) => t.unaccounted)),
    ...def('cpuPerMpktS', round(pick((t) => t.cpu?.perMpktWrittenS), 4)),
    ...def('cpuPerMpktSchedS', round(pick((t) => t.cpu?.perMpktWrittenSchedS), 4)),
    ...def('cpuPerMpktHelperS', round(pick((t) => t.cpu?.perMpktWrittenHelperS), 4)),
  };
}

function def<K extends string>(k: K, v: number | undefined): { [P in K]?: number } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: number };
}
