// `npm run bench:capture`: the capture benchmark of the issue. Same traffic, same run, one row per
// tool — this daemon, tcpdump -C/-W, dumpcap -b, netsniff-ng, stenotype — live on a veth pair
// (trafgen at full speed, tcpreplay at fixed rates; 64 B, IMIX, 1500 B) and offline (a multi-GB
// IMIX file against tcpdump -r -w and the cat/dd limit). Results: bench/results/capture-<time>.json
// and tables on stdout. See bench/README.md for the method.

import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writePcapFile, writeTrafgenConfig, type SizeProfile } from '../daemon/src/traffic/generate.js';
import { cleanupAll, installSignalCleanup, onCleanup } from './capture/cleanup.js';
import { describeGenerator, type GeneratorInputs } from './capture/generators.js';
import {
  conditionLabel,
  runLiveTrial,
  summarizeLive,
  type LiveCondition,
  type LiveEnv,
  type LiveTrial,
} from './capture/live.js';
import { healthReport, runHealth } from './capture/health.js';
import { elementsCost, elementsReport } from './capture/elements.js';
import { qualeventReport, runQualeventLatency } from './capture/qualevent.js';
import { freeBytes, machineInfo } from './capture/machine.js';
import { CAPTURE_IF, createBench, destroyBench, ifindex } from './capture/netns.js';
import {
  OFFLINE_ROWS,
  offlineAvailable,
  runOfflineTrial,
  summarizeOffline,
  type OfflineEnv,
  type OfflineRow,
  type OfflineTrial,
} from './capture/offline.js';
import { parseOptions, type BenchOptions } from './capture/options.js';
import { TimedProcess, run } from './capture/proc.js';
import { liveReport, offlineReport, targetsReport } from './capture/report.js';
import { round } from './capture/stats.js';
import { computeRatios, evaluateTargets, type LiveConditionResult } from './capture/targets.js';
import { LIVE_TOOLS, type LiveTool } from './capture/tools.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const FILE_SIZE_MB = 100;
const BUFFER_MIB = 256;
const SNAPLEN = 262144;
// The fastest a veth here delivers (1500 B frames, trafgen): rings are sized so that a whole trial
// at this rate fits without the ring overwriting files, which would hide written packets.
const MAX_BYTES_PER_SECOND = 2e9;
const TCPREPLAY_FRAMES = 60_000;
// A known number of packets at a rate every tool keeps up with: each tool's file count must come
// out exact, which checks the counting (Stenotype's block parsing above all) on every run.
const CALIBRATION: LiveCondition = {
  id: 'calibration',
  profile: 'imix',
  generator: { kind: 'tcpreplay', pps: 20_000, packets: 5_000 },
};

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

function loud(msg: string, notes: string[]): void {
  notes.push(msg);
  log(`\n!!!!!!!! ${msg}\n`);
}

function isoBasic(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

async function preflight(o: BenchOptions): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: namespaces, veths and packet capture need it');
  const time = await run('/usr/bin/time', ['--version'], { reject: false }).catch(() => undefined);
  if (!time || !/GNU/.test(`${time.stdout}${time.stderr}`)) throw new Error('/usr/bin/time must be GNU time (apt-get install time)');
  const cores = Number((await run('nproc', [])).stdout.trim());
  if (Math.max(o.generatorCpu, o.captureCpu) >= cores) throw new Error(`only ${cores} cores: check --gen-cpu/--capture-cpu`);
  if (o.live && o.generatorCpu === o.captureCpu) log('warning: generator and capture tool share one core');
}

async function availableTools(o: BenchOptions, notes: string[], skipped: { tool: string; reason: string }[]): Promise<LiveTool[]> {
  const tools: LiveTool[] = [];
  for (const name of o.tools) {
    const t = LIVE_TOOLS[name];
    const why = await t.unavailable();
    if (why) {
      skipped.push({ tool: name, reason: why });
      loud(`SKIPPED ${name}: ${why}. Its rows are missing and targets that need it are not judged.`, notes);
    } else {
      tools.push(t);
      if (t.notes) notes.push(`${name}: ${t.notes}`);
    }
  }
  return tools;
}

async function prepareInputs(dir: string, o: BenchOptions): Promise<Record<SizeProfile, GeneratorInputs>> {
  await mkdir(dir, { recursive: true });
  const inputs = {} as Record<SizeProfile, GeneratorInputs>;
  for (const profile of new Set<SizeProfile>([...o.profiles, CALIBRATION.profile])) {
    const trafgenConfig = join(dir, `${profile}.cfg`);
    const pcap = join(dir, `${profile}.pcap`);
    await writeTrafgenConfig(trafgenConfig, { profile, seed: o.seed });
    await writePcapFile(pcap, { profile, count: TCPREPLAY_FRAMES, seed: o.seed });
    inputs[profile] = { trafgenConfig, pcap };
  }
  return inputs;
}

async function runLive(o: BenchOptions, tools: LiveTool[], workDir: string, notes: string[]) {
  const ringFiles = Math.ceil((o.seconds * MAX_BYTES_PER_SECOND) / (FILE_SIZE_MB * 1e6)) + 4;
  const budget = ringFiles * FILE_SIZE_MB * 1e6;
  const free = await freeBytes(workDir);
  if (free < budget * 1.2) {
    loud(`only ${(free / 1e9).toFixed(1)} GB free in ${workDir}; a 1500 B trial may need up to ${(budget / 1e9).toFixed(1)} GB`, notes);
  }
  await createBench();
  const env: LiveEnv = {
    workDir,
    ifindex: await ifindex(CAPTURE_IF),
    generatorCpu: o.generatorCpu,
    captureCpu: o.captureCpu,
    seconds: o.seconds,
    ringFiles,
    fileSizeMB: FILE_SIZE_MB,
    bufferMiB: BUFFER_MIB,
    snaplen: SNAPLEN,
    warmupMs: o.warmup * 1000,
    inputs: await prepareInputs(join(workDir, 'inputs'), o),
  };
  const calibration = await calibrate(tools, env, notes);
  const conditions: LiveCondition[] = [];
  for (const profile of o.profiles) {
    for (const generator of o.generators) {
      conditions.push({ id: `${profile}/${describeGenerator(generator).replace(/\s+/g, '-')}`, profile, generator });
    }
  }
  const total = conditions.length * o.reps * tools.length;
  let n = 0;
  const results: LiveConditionResult[] = [];
  for (const c of conditions) {
    const label = conditionLabel(c);
    const trials: LiveTrial[] = [];
    for (let rep = 1; rep <= o.reps; rep++) {
      // Rotate the order each repetition so that no tool always runs first or last.
      const order = tools.map((_, i) => tools[(i + rep - 1) % tools.length]!);
      for (const tool of order) {
        n++;
        const t = await runLiveTrial(tool, c, rep, env);
        trials.push(t);
        log(
          `[${n}/${total}] ${label}, ${tool.name} #${rep}: ` +
            (t.error
              ? `ERROR ${t.error}`
              : `offered ${t.offered?.toLocaleString('en-US')}, in files ${t.written?.toLocaleString('en-US')} ` +
                `(lost ${t.lossPct?.toFixed(2)}%), tool says lost ${t.reported?.dropped ?? '?'}, ` +
                `CPU ${t.cpu?.perMpktWrittenS ?? '?'} s/Mpkt${t.drained ? '' : ', NOT DRAINED'}${t.killed ? ', killed' : ''}`),
        );
        if (t.files?.ringFull) loud(`${label}, ${tool.name} #${rep}: the ring may have wrapped; its file count is a lower bound`, notes);
        if (t.reverseTx) loud(`${label}, ${tool.name} #${rep}: the capture side sent ${t.reverseTx} frames itself`, notes);
      }
    }
    const summaries = tools.map((t) => summarizeLive(t.name, trials.filter((x) => x.tool === t.name), o.seconds));
    results.push({ condition: { ...c, label }, summaries, trials });
  }
  await destroyBench();
  return { ringFiles, calibration, conditions: results };
}

async function calibrate(tools: LiveTool[], env: LiveEnv, notes: string[]) {
  const expected = (CALIBRATION.generator as { packets: number }).packets;
  const checks = [];
  for (const tool of tools) {
    const t = await runLiveTrial(tool, CALIBRATION, 1, env);
    const exact = !t.error && t.offered === expected && t.written === expected;
    log(`calibration ${tool.name}: offered ${t.offered ?? '?'}, in files ${t.written ?? '?'} of ${expected}${exact ? '' : ' MISMATCH'}${t.error ? ` (${t.error})` : ''}`);
    if (!exact) {
      loud(`calibration: ${tool.name} left ${t.written ?? '?'} of ${expected} known packets in its files (offered ${t.offered ?? '?'}); its counts are suspect`, notes);
    }
    checks.push({ tool: tool.name, exact, trial: t });
  }
  return { packets: expected, checks };
}

async function runOffline(o: BenchOptions, workDir: string, notes: string[], skipped: { tool: string; reason: string }[]) {
  const rows: OfflineRow[] = [];
  for (const row of OFFLINE_ROWS) {
    if (row === 'daemon' && !o.tools.includes('daemon')) continue;
    if (row.startsWith('tcpdump') && !o.tools.includes('tcpdump')) continue;
    const why = offlineAvailable(row);
    if (why) {
      skipped.push({ tool: `offline ${row}`, reason: why });
      loud(`SKIPPED offline ${row}: ${why}. The offline targets are not judged.`, notes);
      continue;
    }
    rows.push(row);
  }
  const path = join(workDir, 'offline-imix.pcap');
  log(`generating ${(o.offlineBytes / 1e9).toFixed(2)} GB of IMIX for the offline trials…`);
  const t0 = process.hrtime.bigint();
  const gen = await writePcapFile(path, { profile: 'imix', maxBytes: o.offlineBytes, seed: o.seed });
  const generateS = Number(process.hrtime.bigint() - t0) / 1e9;
  // Read it once so every row starts from the page cache; the second read times reading alone.
  await run('sh', ['-c', 'cat "$1" > /dev/null', 'sh', path]);
  const warm = TimedProcess.start(['sh', '-c', 'exec cat "$1" > /dev/null', 'sh', path], {
    cpu: o.captureCpu,
    timeFile: join(workDir, 'warm-time.txt'),
  });
  const cachedReadS = (await warm.done).wallS;
  // One unmeasured copy first: right after the input is written, the first write into the page
  // cache ran several times slower whichever row came first (seen here: 2.9 vs 15-20 Gbps).
  const warmCopy = join(workDir, 'offline-warm-copy');
  await run('sh', ['-c', 'cat "$1" > "$2" && sync', 'sh', path, warmCopy]);
  await rm(warmCopy, { force: true });
  const env: OfflineEnv = {
    workDir,
    cpu: o.captureCpu,
    fileSizeMB: FILE_SIZE_MB,
    input: { path, packets: gen.packets, fileBytes: gen.bytes, frameBytes: gen.frameBytes, generateS: round(generateS, 2)!, cachedReadS: round(cachedReadS, 3)! },
  };
  const trials: OfflineTrial[] = [];
  const total = rows.length * o.reps;
  let n = 0;
  for (let rep = 1; rep <= o.reps; rep++) {
    const order = rows.map((_, i) => rows[(i + rep - 1) % rows.length]!);
    for (const row of order) {
      n++;
      const t = await runOfflineTrial(row, rep, env);
      trials.push(t);
      log(
        `[${n}/${total}] offline ${row} #${rep}: ` +
          (t.error ? `ERROR ${t.error}` : `${t.fileGbps} Gbps of file, ${t.imixGbps} Gbps of IMIX frames${t.complete ? '' : ', OUTPUT INCOMPLETE'}`),
      );
    }
  }
  await rm(path, { force: true });
  return { input: { ...env.input, readGbps: round((gen.bytes * 8) / cachedReadS / 1e9, 2) }, trials, summaries: summarizeOffline(trials) };
}

async function main(): Promise<number> {
  installSignalCleanup();
  const o = parseOptions(process.argv.slice(2));
  await preflight(o);
  const startedAt = new Date();
  const notes: string[] = [];
  const skipped: { tool: string; reason: string }[] = [];
  const resultsDir = o.resultsDir ?? join(REPO, 'bench/results');
  const workDir = await mkdtemp(join(o.workDir, 'qe-bench-'));
  // Retries: after Ctrl-C a trial may still be creating files in it while this runs.
  onCleanup('remove work folder', () => rm(workDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }));
  // Stenotype runs as its own user and must be able to reach its folder below this one.
  await chmod(workDir, 0o755);

  const results: Record<string, unknown> = {
    schema: 'qe-packets/bench-capture/1',
    startedAt: startedAt.toISOString(),
    machine: await machineInfo(workDir, REPO),
    parameters: {
      ...o,
      generators: o.generators.map(describeGenerator),
      fileSizeMB: FILE_SIZE_MB,
      bufferMiB: BUFFER_MIB,
      snaplen: SNAPLEN,
      tcpreplayFrames: TCPREPLAY_FRAMES,
      method:
        'Generator in namespace qe-bench-gen pinned to --gen-cpu, tool on the root-namespace veth end pinned to ' +
        '--capture-cpu, IPv6 off on both ends. Offered = sender veth tx_packets delta. Each tool drains until its ' +
        'CPU is idle, then is signalled; written = packets counted in its files. CPU per packet = user+sys of the ' +
        'tool and its descendants from /proc over traffic + drain; GNU time gives the whole-life figure too. ' +
        'Offline: input in page cache, `sync` before each row, rate = bytes / wall time. See bench/README.md.',
    },
    notes,
    skipped,
  };
  let exitCode = 0;
  try {
    const tools = o.live ? await availableTools(o, notes, skipped) : [];
    let live: Awaited<ReturnType<typeof runLive>> | undefined;
    let offline: Awaited<ReturnType<typeof runOffline>> | undefined;
    if (o.live) {
      if (tools.length === 0) loud('no capture tool can run: no live trials', notes);
      else live = await runLive(o, tools, workDir, notes);
      if (live) results.live = live;
    }
    if (o.offline) {
      offline = await runOffline(o, workDir, notes, skipped);
      results.offline = offline;
    }
    if (o.health) {
      const health = await runHealth(
        { workDir, memoryMinutes: o.healthMinutes, cpuWindowSeconds: o.quick ? 10 : 30, burstScrapes: o.quick ? 200 : 1000, pps: 20_000, generatorCpu: o.generatorCpu, captureCpu: o.captureCpu, seed: o.seed },
        log,
      );
      results.health = health;
      process.stdout.write(`${healthReport(health)}\n`);
    }
    if (o.qualevent) {
      const q = await runQualeventLatency({ workDir, elements: 50, changes: o.quick ? 20 : 100, spacingMs: 100, bursts: o.quick ? 2 : 5 }, log);
      results.qualevent = q;
      process.stdout.write(`${qualeventReport(q)}\n`);
    }
    if (o.elements) {
      await createBench();
      const e = await elementsCost(
        { workDir, ifindex: await ifindex(CAPTURE_IF), seconds: o.seconds, pps: 100_000, reps: o.reps, elements: 50, generatorCpu: o.generatorCpu, captureCpu: o.captureCpu, seed: o.seed },
        log,
      );
      results.elements = e;
      process.stdout.write(`${elementsReport(e)}\n`);
    }
    results.targets = evaluateTargets(live?.conditions, offline?.summaries);
    results.ratios = computeRatios(live?.conditions, offline?.summaries);
    if (live) process.stdout.write(`${liveReport(live.conditions, o.seconds)}\n`);
    if (offline) process.stdout.write(`${offlineReport(offline.summaries, offline.input.fileBytes)}\n`);
    process.stdout.write(`${targetsReport(results.targets as ReturnType<typeof evaluateTargets>)}\n`);
    for (const s of skipped) process.stdout.write(`\n!!! SKIPPED ${s.tool}: ${s.reason}\n`);
  } catch (err) {
    results.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    log(`benchmark failed: ${results.error as string}`);
    exitCode = 1;
  } finally {
    results.finishedAt = new Date().toISOString();
    await mkdir(resultsDir, { recursive: true });
    const file = join(resultsDir, `capture-${isoBasic(startedAt)}.json`);
    await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
    process.stdout.write(`\nresults: ${file}\n`);
    await cleanupAll();
  }
  return exitCode;
}

if (!existsSync('/proc/net/packet')) {
  log('this benchmark needs Linux packet sockets');
  process.exit(2);
}
main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    log(err instanceof Error ? err.message : String(err));
    await cleanupAll();
    process.exit(1);
  },
);
