// The health part of `npm run bench:capture` (issue 5): what scraping /metrics once a second costs
// the daemon in CPU, and whether its resident memory stays flat over a long capture with scrapes.
// The daemon captures IMIX from tcpreplay on the bench veth throughout. Reference in the same run:
// prometheus-node-exporter (the exporter every appliance also runs), scraped the same way.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { writePcapFile } from '../../daemon/src/traffic/generate.js';
import { onCleanup } from './cleanup.js';
import { CAPTURE_IF, GENERATOR_IF, NAMESPACE, createBench, namespaceExists } from './netns.js';
import { freePort, run, sleep, ticksToSeconds } from './proc.js';
import { median, round } from './stats.js';

const DAEMON_CLI = fileURLToPath(new URL('../../daemon/src/cli.js', import.meta.url));

export interface HealthOptions {
  workDir: string;
  /** Length of the memory trial. */
  memoryMinutes: number;
  /** Length of each CPU window (without, then with, scrapes once a second). */
  cpuWindowSeconds: number;
  burstScrapes: number;
  pps: number;
  generatorCpu: number;
  captureCpu: number;
  seed: number;
}

async function cpuSeconds(pid: number): Promise<number> {
  // Fields 14 and 15 of /proc/PID/stat (after the parenthesised name): user and system ticks.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ticksToSeconds(Number(f[11]) + Number(f[12]));
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

/** The daemon's heap right after a full collection (a heap snapshot forces one). */
async function heapAfterGc(pid: number, url: string, dir: string): Promise<number> {
  const before = new Set(await readdir(dir));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 600; i++) {
    await sleep(100);
    const fresh = (await readdir(dir)).filter((f) => !before.has(f));
    // Node writes the snapshot synchronously; the process answers scrapes again once it is done.
    if (fresh.length && (await fetch(url).then((r) => r.ok, () => false))) {
      const text = await (await fetch(url)).text();
      for (const f of fresh) await rm(join(dir, f), { force: true });
      return Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)![1]);
    }
  }
  throw new Error('no heap snapshot from the daemon within 60 s');
}

async function scrape(url: string): Promise<number> {
  const res = await fetch(url);
  return (await res.text()).length;
}

/** CPU a process spends per scrape: a burst of back-to-back scrapes, minus its idle rate. */
async function perScrapeCpu(pid: number, url: string, n: number, idleCpuPerSecond: number): Promise<number> {
  const c0 = await cpuSeconds(pid);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await scrape(url);
  const wall = (performance.now() - t0) / 1000;
  const used = (await cpuSeconds(pid)) - c0 - idleCpuPerSecond * wall;
  return Math.max(0, used) / n;
}

async function cpuRate(pid: number, seconds: number, scrapeUrl?: string): Promise<number> {
  const c0 = await cpuSeconds(pid);
  const t0 = performance.now();
  for (let s = 0; s < seconds; s++) {
    if (scrapeUrl) await scrape(scrapeUrl);
    await sleep(Math.max(0, t0 + (s + 1) * 1000 - performance.now()));
  }
  return ((await cpuSeconds(pid)) - c0) / ((performance.now() - t0) / 1000);
}

async function waitForLine(proc: ChildProcess, output: { text: string }, re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(output.text);
    if (m) return m;
    if (proc.exitCode !== null || Date.now() > until) throw new Error(`daemon: no ${re} in its output:\n${output.text}`);
    await sleep(100);
  }
}

export async function runHealth(o: HealthOptions, log: (m: string) => void): Promise<Record<string, unknown>> {
  if (!(await namespaceExists())) await createBench();
  const dir = join(o.workDir, `qe-bench-health-${process.pid}`);
  const store = join(dir, 'store');
  await mkdir(store, { recursive: true });
  onCleanup('remove health bench files', () => run('rm', ['-rf', dir], { reject: false }).then(() => {}));

  const input = join(dir, 'imix.pcap');
  await writePcapFile(input, { profile: 'imix', maxBytes: 20e6, seed: o.seed });
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    stringify({
      capture: { interfaces: [CAPTURE_IF], buffer: '64MiB' },
      storage: { paths: [store], capacity: '2GB', file_size: '100MB', mode: 'circular' },
      metrics: { listen: '127.0.0.1:0' },
      api: { listen: false },
      control: { socket: join(tmpdir(), `qe-bench-health-${process.pid}.sock`) },
    }),
  );

  const output = { text: '' };
  // --heapsnapshot-signal: a snapshot forces a full garbage collection first, so the heap can be
  // read with nothing collectable left in it (RSS alone moves with the collector's timing).
  const snapshots = join(dir, 'snapshots');
  await mkdir(snapshots, { recursive: true });
  const daemon = spawn('taskset', ['-c', String(o.captureCpu), process.execPath, '--heapsnapshot-signal=SIGUSR2', DAEMON_CLI, 'capture', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: snapshots,
  });
  const keep = (d: Buffer) => (output.text = (output.text + d.toString()).slice(-50_000));
  daemon.stdout!.on('data', keep);
  daemon.stderr!.on('data', keep);
  const stopDaemon = onCleanup('stop health daemon', async () => {
    if (daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
    }
  });
  const url = (await waitForLine(daemon, output, /metrics: (http:\S+)/))[1]!;
  await waitForLine(daemon, output, /capturing \(link type/);
  const pid = daemon.pid!; // taskset execs the daemon in place

  const gen = spawn('ip', ['netns', 'exec', NAMESPACE, 'taskset', '-c', String(o.generatorCpu), 'tcpreplay', '-q', '--loop=0', `--pps=${o.pps}`, '-i', GENERATOR_IF, input], { stdio: 'ignore' });
  const stopGen = onCleanup('stop health traffic', async () => {
    if (gen.exitCode === null) {
      gen.kill('SIGINT');
      await new Promise((r) => gen.once('exit', r));
    }
  });
  await sleep(10_000); // files open, first rotation, JIT warm

  log(`health: daemon CPU without scrapes, ${o.cpuWindowSeconds}s…`);
  const idle = await cpuRate(pid, o.cpuWindowSeconds);
  log(`health: daemon CPU with one scrape a second, ${o.cpuWindowSeconds}s…`);
  const scraped = await cpuRate(pid, o.cpuWindowSeconds, url);
  log(`health: ${o.burstScrapes} back-to-back scrapes…`);
  const perScrape = await perScrapeCpu(pid, url, o.burstScrapes, idle);
  const bodyBytes = await scrape(url);

  let exporter: Record<string, unknown> | undefined;
  if (existsSync('/usr/bin/prometheus-node-exporter')) {
    const port = await freePort();
    const ne = spawn('taskset', ['-c', String(o.captureCpu), '/usr/bin/prometheus-node-exporter', `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
    const stopNe = onCleanup('stop node exporter', async () => {
      if (ne.exitCode === null) ne.kill('SIGTERM');
    });
    const neUrl = `http://127.0.0.1:${port}/metrics`;
    for (let i = 0; i < 50; i++) if (await scrape(neUrl).then(() => true, () => false)) break; else await sleep(100);
    const neIdle = await cpuRate(ne.pid!, 5);
    const nePer = await perScrapeCpu(ne.pid!, neUrl, o.burstScrapes, neIdle);
    exporter = { tool: 'prometheus-node-exporter', cpuPerScrapeMs: round(nePer * 1000, 3), percentOfCoreAt1Hz: round(nePer * 100, 3), bodyBytes: await scrape(neUrl) };
    await stopNe();
  }

  log(`health: memory over ${o.memoryMinutes} min of capture with one scrape a second…`);
  const samples: { t: number; rss: number }[] = [];
  const heapStart = await heapAfterGc(pid, url, snapshots);
  const t0 = performance.now();
  for (let s = 0; s < o.memoryMinutes * 60; s++) {
    await scrape(url);
    if (s % 5 === 0) samples.push({ t: (performance.now() - t0) / 1000, rss: await rssBytes(pid) });
    await sleep(Math.max(0, t0 + (s + 1) * 1000 - performance.now()));
  }
  const heapEnd = await heapAfterGc(pid, url, snapshots);
  const status = JSON.parse((await run(process.execPath, [DAEMON_CLI, 'status', '--json', '--socket', join(tmpdir(), `qe-bench-health-${process.pid}.sock`)], { reject: false })).stdout || '{}') as {
    figures?: { interfaces: { counters: Record<string, number> }[]; store: Record<string, number> };
  };
  await stopGen();
  await stopDaemon();

  const minute = Math.min(60, (o.memoryMinutes * 60) / 4);
  const end = samples.at(-1)!.t;
  const early = median(samples.filter((x) => x.t >= minute && x.t < 2 * minute).map((x) => x.rss))!;
  const late = median(samples.filter((x) => x.t >= end - minute).map((x) => x.rss))!;
  const growth = late - early;
  const scrapeShare = perScrape * 100; // one scrape a second: CPU seconds per second, in % of a core
  // A leak keeps what it holds through a full collection: the heap after one must not grow.
  const heapGrowth = heapEnd - heapStart;
  const flat = heapGrowth <= 2 ** 20;
  const counters = status.figures?.interfaces[0]?.counters;
  return {
    method:
      `Daemon pinned to core ${o.captureCpu}, tcpreplay IMIX at ${o.pps} pps on core ${o.generatorCpu}. CPU = utime+stime of the daemon ` +
      `(Node.js) process from /proc. Per-scrape CPU from ${o.burstScrapes} back-to-back scrapes minus the idle rate; at one scrape ` +
      'a second that is the share of one core. Memory: VmRSS every 5 s, reported; flat = the V8 heap right after a full ' +
      'collection (forced by a heap snapshot, --heapsnapshot-signal) grows by at most 1 MiB from the start of the trial to its end.',
    pps: o.pps,
    metricsBodyBytes: bodyBytes,
    cpu: {
      withoutScrapesPercentOfCore: round(idle * 100, 3),
      withScrapesPercentOfCore: round(scraped * 100, 3),
      perScrapeMs: round(perScrape * 1000, 3),
      scrapeAt1HzPercentOfCore: round(scrapeShare, 3),
    },
    reference: exporter ?? { skipped: 'prometheus-node-exporter is not installed (apt-get install prometheus-node-exporter)' },
    memory: {
      minutes: o.memoryMinutes,
      samples: samples.map((x) => [round(x.t, 1), x.rss]),
      earlyMedianBytes: early,
      lateMedianBytes: late,
      maxBytes: Math.max(...samples.map((x) => x.rss)),
      growthBytes: growth,
      heapAfterGcStartBytes: heapStart,
      heapAfterGcEndBytes: heapEnd,
      heapAfterGcGrowthBytes: heapGrowth,
    },
    capture: counters ?? null,
    targets: [
      { target: 'scraping /metrics once a second costs under 1% of one core', value: `${round(scrapeShare, 3)}%`, met: scrapeShare < 1 },
      {
        target: `memory flat over a ${o.memoryMinutes}-minute capture (heap after a full collection)`,
        value: `heap ${(heapStart / 2 ** 20).toFixed(2)} → ${(heapEnd / 2 ** 20).toFixed(2)} MiB; RSS ${(early / 2 ** 20).toFixed(1)} → ${(late / 2 ** 20).toFixed(1)} MiB`,
        met: flat,
      },
    ],
  };
}

export function healthReport(h: Record<string, unknown>): string {
  const cpu = h.cpu as Record<string, number>;
  const ref = h.reference as Record<string, unknown>;
  const mem = h.memory as Record<string, number>;
  const lines = [
    '\n== Health: /metrics scrape cost and daemon memory ==',
    `daemon CPU at ${String(h.pps)} pps: ${cpu.withoutScrapesPercentOfCore}% of a core without scrapes, ${cpu.withScrapesPercentOfCore}% with one a second`,
    `one scrape: ${cpu.perScrapeMs} ms CPU (${String(h.metricsBodyBytes)} bytes) → ${cpu.scrapeAt1HzPercentOfCore}% of a core at 1/s` +
      (ref.cpuPerScrapeMs !== undefined ? `; node_exporter: ${String(ref.cpuPerScrapeMs)} ms (ratio ${((cpu.perScrapeMs ?? 0) / Number(ref.cpuPerScrapeMs)).toFixed(2)}×)` : ''),
    `RSS over ${mem.minutes} min: ${(mem.earlyMedianBytes! / 2 ** 20).toFixed(1)} MiB (2nd minute) → ${(mem.lateMedianBytes! / 2 ** 20).toFixed(1)} MiB (last minute), max ${(mem.maxBytes! / 2 ** 20).toFixed(1)} MiB; ` +
      `heap after a full collection ${(mem.heapAfterGcStartBytes! / 2 ** 20).toFixed(2)} → ${(mem.heapAfterGcEndBytes! / 2 ** 20).toFixed(2)} MiB`,
  ];
  for (const t of h.targets as { target: string; value: string; met: boolean }[]) lines.push(`${t.met ? 'MET    ' : 'NOT MET'} ${t.target}: ${t.value}`);
  return lines.join('\n');
}
