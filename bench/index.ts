// `npm run bench:index`: the index against a scan, tcpdump -r and Stenographer, in one run on one
// store of generated mixed traffic. Build cost (capture --read with the index on and off against
// cat, durability on both sides), three needle queries from a cold page cache, the same queries at
// half the store, index size per field, the command's start-up, and live: capture CPU with the
// index on and off, and how soon a packet sent is found. Method: docs/BENCHMARKS.md.

import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupAll, installSignalCleanup, onCleanup } from './capture/cleanup.js';
import { countStenotype } from './capture/count.js';
import { freeBytes, machineInfo } from './capture/machine.js';
import { CAPTURE_IF, createBench, ifindex } from './capture/netns.js';
import { run } from './capture/proc.js';
import { median, ratio, round } from './capture/stats.js';
import { DAEMON_CLI } from './capture/tools.js';
import { captureCost, findability } from './index/live.js';
import { USAGE, parseIndexOptions, type IndexBenchOptions } from './index/options.js';
import {
  QUERIES,
  dropCaches,
  extractCommand,
  runQuery,
  sameBytes,
  summarizeQueries,
  tcpdumpCommand,
  type QueryTool,
  type QueryTrial,
  type Range,
} from './index/query.js';
import { report, targets, targetsText, type Figures, type ImportSummary } from './index/report.js';
import { indexSizes } from './index/sizes.js';
import { flowSizeAtTarget } from './index/flow-size.js';
import { statsBench } from './index/stats.js';
import { ensureStenographer, replaySlice, startStenographer, stenoreadCommand, waitComplete } from './index/steno.js';
import { FILE_SIZE_MB, IMPORT_ROWS, emptyDir, importChunk, makeStore, storeFiles, timed, type ImportTrial, type Store } from './index/store.js';
import { apiExtractCommand, startApiDaemon, type ApiDaemon } from './index/api.js';
import { writeTraffic } from './index/traffic.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
// 2026-01-01T00:00:00Z; timestamps advance at this rate (a busy 10G link's share).
const START_NS = 1_767_225_600_000_000_000n;
const RATE_BPS = 2e9;

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

function isoBasic(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

const GB = (n: number) => `${(n / 1e9).toFixed(1)} GB`;

/**
 * What the run needs on the work filesystem: the store with its index, one chunk of input and one
 * copy of it (the no-index import or cat, emptied after each chunk), and for Stenographer its slice
 * three times (the slice file, our store of it, stenotype's files). Stenographer gets a slice, not
 * the whole traffic: its copy of a 20 GB store would need another 20 GB.
 */
function diskPlan(o: IndexBenchOptions) {
  const store = o.storeBytes * 1.03;
  const chunks = 2 * o.chunkBytes;
  const steno = o.steno ? 3 * o.chunkBytes + 256e6 : 0;
  // The live trials run last, after the store is emptied: they need their own room, not more.
  const live = o.live ? o.liveSeconds * o.livePps * 1600 + 2e9 : 0;
  const margin = 1e9;
  return { storeBytes: store, chunkBytes: chunks, stenoBytes: steno, liveBytes: live, marginBytes: margin, needBytes: Math.max(store + chunks + steno, live) + margin };
}

async function preflight(o: IndexBenchOptions): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: dropping the page cache, namespaces and packet capture need it');
  if (!existsSync(DAEMON_CLI)) throw new Error(`${DAEMON_CLI} does not exist: npm run build`);
  const cores = Number((await run('nproc', [])).stdout.trim());
  if (Math.max(o.generatorCpu, o.captureCpu) >= cores) throw new Error(`only ${cores} cores: check --gen-cpu/--capture-cpu`);
  for (const b of ['tcpdump', 'tcpreplay', 'cmp', '/usr/bin/time']) {
    if ((await run('sh', ['-c', `command -v ${b}`], { reject: false })).exitCode !== 0) throw new Error(`${b} not found (scripts/install-deps installs it)`);
  }
}

function rangeOf(firstNs: bigint, lastNs: bigint): Range {
  // Epoch seconds, one second wider on each side: every packet of the store is in range.
  return { from: String(firstNs / 1_000_000_000n - 1n), to: String(lastNs / 1_000_000_000n + 2n) };
}

async function queryRound(
  label: string,
  stores: { store: Store; files: string[]; api?: ApiDaemon },
  range: Range,
  tools: readonly QueryTool[],
  o: IndexBenchOptions,
  scratch: string,
): Promise<{ trials: QueryTrial[]; sameBytes: Record<string, boolean | undefined>; catalogRefreshS: number }> {
  const trials: QueryTrial[] = [];
  const same: Record<string, boolean | undefined> = {};
  // The first extract after the store changed refreshes the catalog cache (.qe-catalog.json): a
  // one-time cost (timed and kept) that would otherwise land on whichever query ran first.
  await dropCaches();
  const refresh = await timed([process.execPath, DAEMON_CLI, 'extract', '--config', stores.store.config, '--explain', '--from', range.from, '--to', range.to], o.captureCpu, scratch);
  log(`${label}: first extract after the store changed (catalog refresh), cold: ${refresh.wallS.toFixed(3)} s`);
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const q of QUERIES) {
      const order = tools.map((_, i) => tools[(i + rep - 1) % tools.length]!);
      const outs: Partial<Record<QueryTool, string>> = {};
      for (const tool of order) {
        const out = join(scratch, `${label}-${q.id}-${tool.replace(/\W+/g, '')}.pcap`);
        outs[tool] = out;
        const cmd =
          tool === 'tcpdump -r'
            ? await tcpdumpCommand(stores.files, q.filter, out, scratch)
            : tool === 'API (curl)'
              ? apiExtractCommand(stores.api!, range, q.filter, out)
              : extractCommand(stores.store, range, q.filter, out, tool === 'extract --no-index');
        const t = await runQuery(tool, cmd, q, rep, out, o.captureCpu, scratch);
        trials.push(t);
        log(`${label} ${q.id} ${tool} #${rep}: ${t.error ? `ERROR ${t.error} ${t.stderrTail ?? ''}` : `${t.packets} packets in ${t.wallS} s`}`);
      }
      if (rep === 1 && outs.extract && outs['extract --no-index']) same[q.id] = await sameBytes(outs.extract, outs['extract --no-index']);
      for (const out of Object.values(outs)) await rm(out, { force: true });
    }
  }
  return { trials, sameBytes: same, catalogRefreshS: round(refresh.wallS, 4)! };
}

/** `fn` with a daemon serving `store` over its API (api.ts), stopped after. */
async function withApi<T>(store: Store, capacity: number, o: IndexBenchOptions, scratch: string, fn: (api: ApiDaemon) => Promise<T>): Promise<T> {
  const api = await startApiDaemon(store, capacity, FILE_SIZE_MB, o.captureCpu, scratch);
  try {
    return await fn(api);
  } finally {
    await api.stop();
  }
}

async function startup(store: Store, range: Range, firstNs: bigint, o: IndexBenchOptions, scratch: string) {
  const reps = 5;
  const times = async (cmd: string[]) => {
    const w: number[] = [];
    for (let i = 0; i < reps; i++) w.push((await timed(cmd, o.captureCpu, scratch)).wallS);
    return round(median(w), 4);
  };
  const before = String(firstNs / 1_000_000_000n - 100n);
  const explain = [process.execPath, DAEMON_CLI, 'extract', '--config', store.config, '--explain', '--from', range.from, '--to', range.to, '--filter', QUERIES[0]!.filter];
  await dropCaches();
  const explainColdS = round((await timed(explain, o.captureCpu, scratch)).wallS, 4);
  return {
    method: `medians of ${reps} runs each, page cache warm (start-up is CPU: Node.js, the config, the catalog); --explain also once from a cold cache, first`,
    nodeS: await times([process.execPath, '-e', '0']),
    emptyRangeS: await times([process.execPath, DAEMON_CLI, 'extract', '--config', store.config, '--from', before, '--to', String(Number(before) + 1), '-w', '/dev/null']),
    explainS: await times(explain),
    explainColdS,
  };
}

async function main(): Promise<number> {
  installSignalCleanup();
  const o = parseIndexOptions(process.argv.slice(2));
  await preflight(o);
  const startedAt = new Date();
  const notes: string[] = [];
  const skipped: { part: string; reason: string }[] = [];
  const resultsDir = o.resultsDir ?? join(REPO, 'bench/results');
  await mkdir(o.workDir, { recursive: true });
  const plan = diskPlan(o);
  const free = await freeBytes(o.workDir);
  log(
    `disk: needs about ${GB(plan.needBytes)} free in ${o.workDir} (store and its index ${GB(plan.storeBytes)}, input chunk and ` +
      `its copy ${GB(plan.chunkBytes)}, Stenographer's slice ×3 ${GB(plan.stenoBytes)}, margin ${GB(plan.marginBytes)}; the live trials, ` +
      `run after the store is emptied, ${GB(plan.liveBytes)}); ${GB(free)} free`,
  );
  if (free < plan.needBytes) {
    throw new Error(
      `not enough disk: ${GB(free)} free in ${o.workDir}, about ${GB(plan.needBytes)} needed. ` +
        `Free space, use --work on a bigger filesystem, or a smaller --gb (the issue asks for 20)`,
    );
  }
  const workDir = await mkdtemp(join(o.workDir, 'qe-bench-index-'));
  onCleanup('remove work folder', () => rm(workDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }));
  await chmod(workDir, 0o755);
  const results: Record<string, unknown> = {
    schema: 'qe-packets/bench-index/1',
    startedAt: startedAt.toISOString(),
    machine: await machineInfo(workDir, REPO),
    parameters: { ...o, rateBps: RATE_BPS, startNs: String(START_NS) },
    diskPlan: {
      ...plan,
      freeBytes: free,
      stenographer: o.steno
        ? `Stenographer captures a ${GB(o.chunkBytes)} slice (the first chunk) replayed live, and is compared with a store of that same ` +
          `slice file, not with the ${GB(o.storeBytes)} store: its own copy of the whole traffic would need about ${GB(o.storeBytes * 1.1)} more ` +
          `(${free >= plan.needBytes + o.storeBytes * 1.1 ? 'which this disk has, but the bench does not use it' : 'which this disk does not have'})`
        : 'skipped (--skip-steno)',
    },
    notes,
    skipped,
  };
  let exitCode = 0;
  const figures: Partial<Figures> = {};
  try {
    const capacity = o.storeBytes * 3;
    const main = await makeStore(workDir, 'store', capacity);
    const scratchStores: Record<'no-index' | 'cat', Store> = {
      'no-index': await makeStore(workDir, 'store-noindex', capacity, [], false),
      cat: { dir: join(workDir, 'cat'), config: '' },
    };
    await mkdir(scratchStores.cat.dir, { recursive: true });
    const chunkDir = join(workDir, 'chunk');
    await mkdir(chunkDir);
    const scratch = join(workDir, 'scratch');
    await mkdir(scratch);

    // Before the store is built: its 2.4 GB of traffic and files need room the store then takes.
    log('flow table size at the target (IMIX, 100,000 concurrent flows, 1 GiB files)');
    const atTarget = await flowSizeAtTarget(scratch, START_NS);
    if (atTarget.error) notes.push(`flow table size at the target: ${atTarget.error}`);

    // Stenographer first (if asked): installing it must not happen in the middle of timed work.
    let stenoWhy: string | undefined;
    if (o.steno) {
      stenoWhy = await ensureStenographer(log);
      if (stenoWhy) {
        skipped.push({ part: 'stenographer', reason: stenoWhy });
        log(`\n!!!!!!!! SKIPPED Stenographer: ${stenoWhy}\n`);
      }
    }
    const withSteno = o.steno && !stenoWhy;

    // Build: one chunk at a time, each imported with the index, without, and copied by cat.
    const chunks = Math.ceil(o.storeBytes / o.chunkBytes);
    const half = Math.floor(chunks / 2);
    const imports: ImportTrial[] = [];
    const planted = { pair: 0, port: 0, vlan: 0 };
    let packets = 0;
    let ts = START_NS;
    let slice: { file: string; packets: number; bytes: number; planted: typeof planted } | undefined;
    let halfRound: Awaited<ReturnType<typeof queryRound>> | undefined;
    for (let i = 0; i < chunks; i++) {
      const t0 = Date.now();
      const r = writeTraffic({ dir: chunkDir, totalBytes: o.chunkBytes, fileBytes: o.chunkBytes + 1e6, seed: o.seed * 1000 + i, startNs: ts, rateBps: RATE_BPS, needles: i < half });
      ts = r.lastNs + 1000n;
      packets += r.packets;
      planted.pair += r.needles.pairPackets;
      planted.port += r.needles.portPackets;
      planted.vlan += r.needles.vlanPackets;
      const file = r.files[0]!;
      await run('sync', ['-f', file]);
      const genS = (Date.now() - t0) / 1000;
      const rows = IMPORT_ROWS.map((_, k) => IMPORT_ROWS[(k + i) % IMPORT_ROWS.length]!);
      const line: string[] = [];
      for (const row of rows) {
        const t = await importChunk(row, file, i, row === 'index' ? main : scratchStores[row], o.captureCpu, scratch);
        imports.push(t);
        if (t.error) throw new Error(`import of chunk ${i} (${row}) failed: ${t.error}`);
        line.push(`${row} ${t.wallS} s`);
      }
      log(`chunk ${i + 1}/${chunks} (${GB(r.bytes)}, ${r.packets.toLocaleString('en-US')} packets, generated in ${genS.toFixed(1)} s): ${line.join(', ')}`);
      if (i === 0 && withSteno) {
        slice = { file: join(workDir, 'slice.pcap'), packets: r.packets, bytes: r.bytes, planted: { pair: r.needles.pairPackets, port: r.needles.portPackets, vlan: r.needles.vlanPackets } };
        await rename(file, slice.file);
      } else await rm(file);
      if (i === half - 1) {
        const s = await storeFiles(main.dir);
        log(`half the store (${GB(s.pcapBytes)}): queries through the index`);
        halfRound = await withApi(main, capacity, o, scratch, (api) => queryRound('half', { store: main, files: s.pcaps, api }, rangeOf(START_NS, ts), ['extract', 'API (curl)'], o, scratch));
      }
    }
    const byRow = (row: string) => imports.filter((t) => t.row === row && !t.error);
    const importSummaries: ImportSummary[] = IMPORT_ROWS.map((row) => {
      const ts2 = byRow(row);
      const bytes = ts2.reduce((s, t) => s + t.bytes, 0);
      const wallS = ts2.reduce((s, t) => s + t.wallS, 0);
      return { row, bytes, wallS: round(wallS, 3)!, gbps: round((bytes * 8) / wallS / 1e9, 3)! };
    });
    const cat = importSummaries.find((s) => s.row === 'cat')!;
    for (const s of importSummaries) {
      const v = round(ratio(s.gbps, cat.gbps), 3);
      if (v !== undefined) s.vsCat = v;
    }
    figures.imports = importSummaries;
    results.build = { chunks, chunkBytes: o.chunkBytes, planted, trials: imports, summaries: importSummaries };

    const files = await storeFiles(main.dir);
    figures.storeBytes = files.pcapBytes;
    figures.storePackets = packets;
    const range = rangeOf(START_NS, ts);
    log(`full store (${GB(files.pcapBytes)} in ${files.pcaps.length} files, index ${(files.indexBytes / 1e6).toFixed(1)} MB): queries`);
    const full = await withApi(main, capacity, o, scratch, (api) => queryRound('full', { store: main, files: files.pcaps, api }, range, ['extract', 'API (curl)', 'extract --no-index', 'tcpdump -r'], o, scratch));
    figures.full = summarizeQueries(full.trials);
    figures.half = halfRound ? summarizeQueries(halfRound.trials) : undefined;
    figures.queries = QUERIES.map((q) => {
      const counts: Record<string, number | undefined> = {};
      for (const s of figures.full!.filter((x) => x.query === q.id)) counts[s.tool] = s.packets;
      const h = figures.half?.find((x) => x.query === q.id && x.tool === 'extract');
      if (h) counts['extract (half store)'] = h.packets;
      const values = Object.values(counts);
      return { id: q.id, planted: planted[q.id], counts, agree: values.every((v) => v !== undefined && v === values[0]), sameBytes: full.sameBytes[q.id] };
    });
    results.queries = {
      range,
      queries: QUERIES,
      method:
        'sync; echo 3 > /proc/sys/vm/drop_caches before every run; wall time of the whole command (extract: Node.js start included; API (curl): curl asking a daemon running on the store, as stenoread asks stenographer); tool order rotated each repetition',
      agreement: figures.queries,
      full: { summaries: figures.full, catalogRefreshS: full.catalogRefreshS, trials: full.trials },
      half: halfRound ? { summaries: figures.half, catalogRefreshS: halfRound.catalogRefreshS, trials: halfRound.trials } : undefined,
    };

    log('start-up');
    figures.startup = await startup(main, range, START_NS, o, scratch);
    results.startup = figures.startup;
    // Each chunk is one `capture --read` command: with small chunks Node.js's start weighs a lot.
    const startS = figures.startup.emptyRangeS;
    if (startS !== undefined) {
      for (const s of importSummaries) {
        if (s.row === 'cat') continue;
        const v = round(ratio((s.bytes * 8) / (s.wallS - chunks * startS) / 1e9, cat.gbps), 3);
        if (v !== undefined) s.vsCatWithoutStartup = v;
      }
    }

    log('index size per field');
    const sizes = await indexSizes(files.pcaps, Math.min(2e9, files.pcapBytes), scratch, o.captureCpu);
    figures.sizes = { rows: sizes.rows.map((r) => ({ fields: r.fields, pctOfPcap: r.pctOfPcap })), storeIndexPct: round((100 * files.indexBytes) / files.pcapBytes, 3) };
    results.indexSize = { store: { pcapBytes: files.pcapBytes, indexBytes: files.indexBytes, indexes: files.indexes, pctOfPcap: figures.sizes.storeIndexPct }, perField: sizes };

    log('flow tables and stats');
    const st = await withApi(main, capacity, o, scratch, (api) => statsBench(main, files.pcaps, range, o.reps, o.captureCpu, scratch, api));
    figures.flows = {
      tablePct: round((100 * files.flowBytes) / files.pcapBytes, 3),
      atTargetPct: atTarget.error ? undefined : atTarget.pctOfPcap,
      statsS: st.statsS,
      ...(st.apiS !== undefined ? { apiStatsS: st.apiS } : {}),
      tsharkS: st.tsharkS,
      speedup: st.speedup,
      agree: st.agree,
    };
    results.flows = { store: { pcapBytes: files.pcapBytes, flowBytes: files.flowBytes, flowTables: files.flowTables, pctOfPcap: figures.flows.tablePct }, atTarget, stats: st };

    if (withSteno || o.live) {
      await createBench();
    }
    if (withSteno && slice) {
      // Ours on the same slice file first: its answers are what stenoread must return.
      const sliceStore = await makeStore(workDir, 'store-slice', capacity);
      const imp = await run(process.execPath, [DAEMON_CLI, 'capture', '--read', slice.file, '--config', sliceStore.config], { reject: false });
      if (imp.exitCode !== 0) throw new Error(`importing the slice failed: ${imp.stderr.slice(-400)}`);
      const sf = await storeFiles(sliceStore.dir);
      const ours = await withApi(sliceStore, capacity, o, scratch, (api) => queryRound('slice', { store: sliceStore, files: sf.pcaps, api }, rangeOf(START_NS, ts), ['extract', 'API (curl)'], o, scratch));
      const oursSum = summarizeQueries(ours.trials);
      const expected: Record<string, number> = {};
      for (const q of QUERIES) expected[q.id] = oursSum.find((s) => s.query === q.id)?.packets ?? NaN;
      const stenoQueries = QUERIES.filter((q) => q.steno);
      const steno = await startStenographer(workDir, await ifindex(CAPTURE_IF), o.captureCpu);
      try {
        log(`replaying the ${GB(slice.bytes)} slice (${slice.packets.toLocaleString('en-US')} packets) to Stenographer at ${o.livePps} pps`);
        const gen = await replaySlice(slice.file, slice.packets, o.livePps, o.generatorCpu);
        const sentAt = Date.now();
        const wait = await waitComplete(steno, stenoQueries, expected, sentAt, o.stenoWaitS, scratch, log);
        const stenoTrials: QueryTrial[] = [];
        for (let rep = 1; rep <= o.reps; rep++) {
          for (const q of stenoQueries) {
            const out = join(scratch, `steno-${q.id}.pcap`);
            const t = await runQuery('stenoread', stenoreadCommand(steno, q, out), q, rep, out, o.captureCpu, scratch);
            stenoTrials.push(t);
            log(`stenoread ${q.id} #${rep}: ${t.error ? `ERROR ${t.error} ${t.stderrTail ?? ''}` : `${t.packets} packets in ${t.wallS} s`}`);
            await rm(out, { force: true });
          }
        }
        await steno.proc.stop('SIGINT', 5000);
        let stenoPackets = 0;
        for (const name of await readdir(join(steno.dir, 'packets'))) {
          stenoPackets += (await countStenotype(join(steno.dir, 'packets', name), 1 << 20).catch(() => ({ packets: 0 }))).packets;
        }
        figures.slice = {
          bytes: slice.bytes,
          ours: oursSum,
          steno: summarizeQueries(stenoTrials),
          completeAfterS: wait.completeAfterS,
          lostPackets: slice.packets - stenoPackets,
        };
        results.stenographer = {
          slice: { bytes: slice.bytes, packets: slice.packets, planted: slice.planted },
          replay: { ...gen, output: gen.output.split('\n').slice(-6).join('\n') },
          stenotypePackets: stenoPackets,
          completeAfterS: wait.completeAfterS,
          polls: wait.polls,
          ours: { summaries: oursSum, trials: ours.trials, sameBytesNote: 'ours on a store imported from the same slice file' },
          steno: { summaries: figures.slice.steno, trials: stenoTrials },
          notes: 'stenoread runs through the Stenographer server (HTTPS on localhost, then tcpdump -w); it cannot ask for a VLAN',
        };
      } finally {
        await steno.proc.stop('SIGKILL', 2000).catch(() => undefined);
        await emptyDir(sliceStore.dir);
        await rm(steno.dir, { recursive: true, force: true });
        await rm(slice.file, { force: true });
      }
    }
    if (o.live) {
      await emptyDir(main.dir);
      const idx = await ifindex(CAPTURE_IF);
      log('live: how soon a packet sent is found');
      const f = await findability({ workDir, ifindex: idx, probes: o.quick ? 2 : 5, bgPps: 20_000, generatorCpu: o.generatorCpu, captureCpu: o.captureCpu, seed: o.seed }, log);
      results.findable = f;
      figures.findableS = f.probes.map((p) => p.foundAfterS ?? Number.POSITIVE_INFINITY);
      log('live: capture cost with the index on and off');
      const c = await captureCost({ workDir, ifindex: idx, seconds: o.liveSeconds, pps: o.livePps, reps: o.quick ? 1 : o.reps, steno: withSteno, generatorCpu: o.generatorCpu, captureCpu: o.captureCpu, seed: o.seed }, log);
      results.captureCost = c;
      figures.capture = c.conditions.map((x) => ({
        profile: x.profile,
        onVsOff: x.onVsOff,
        withFlowsVsOff: x.withFlowsVsOff,
        onVsStenotype: x.onVsStenotype,
        loss: Object.fromEntries(x.summaries.map((s) => [s.row, s.lossPct])),
      }));
    } else skipped.push({ part: 'live', reason: '--skip-live' });

    const ts3 = targets(figures as Figures);
    results.targets = ts3;
    process.stdout.write(`${report(figures as Figures)}\n${targetsText(ts3)}\n`);
    for (const s of skipped) process.stdout.write(`\n!!! SKIPPED ${s.part}: ${s.reason}\n`);
  } catch (err) {
    results.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    log(`benchmark failed: ${results.error as string}`);
    exitCode = 1;
  } finally {
    results.figures = figures;
    results.finishedAt = new Date().toISOString();
    await mkdir(resultsDir, { recursive: true });
    const file = join(resultsDir, `index-${isoBasic(startedAt)}.json`);
    await writeFile(file, `${JSON.stringify(results, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v), 2)}\n`);
    process.stdout.write(`\nresults: ${file}\n`);
    await cleanupAll();
  }
  return exitCode;
}

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    log(err instanceof Error ? err.message : String(err));
    await cleanupAll();
    process.exit(1);
  },
);
