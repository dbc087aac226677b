import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { capacityBytes, checkEnvironment } from '../config/check-environment.js';
import type { Config } from '../config/config.js';
import { loadConfigFile } from '../config/load.js';
import { formatSize } from '../config/units.js';
import { Helper, helperArgs } from '../capture/helper.js';
import { ImportSource } from '../capture/import-source.js';
import type { FileClosedMessage } from '../capture/protocol.js';
import { CaptureSupervisor, countersOf, zeroCounters, type Counters } from '../capture/supervisor.js';
import { scanCatalog } from '../store/catalog.js';
import { repairStore } from '../store/repair.js';
import { StoreRetention, type RetentionState } from '../store/retention.js';
import { StoreUnreadableError } from '../store/usage.js';
import { DaemonUnreachable, fetchStatus } from '../control/client.js';
import { serveControl } from '../control/server.js';
import { CaptureMonitor } from '../health/monitor.js';
import { systemdNotifier } from '../systemd/notify.js';
import { SystemdService } from '../systemd/service.js';
import { toJson } from '../util/json.js';
import type { Server } from 'node:http';
import { log } from '../util/log.js';
import { EXIT, loadConfigOrReport, reportError } from './common.js';

export const captureHelp = `usage: qe-packets capture [--config FILE] [--summary FILE]
       qe-packets capture --read FILE [--iface LABEL] [--config FILE] [--summary FILE]

Captures the configured interfaces into the store until SIGTERM or SIGINT (files are closed
cleanly); SIGHUP reloads the config (filter, file size and duration, flush interval, interfaces)
without stopping capture. With --read, sends an existing pcap or pcapng file through the same
write path (BPF filter, snaplen, rotation) and exits when done.

  --config FILE    configuration (default /etc/qe-packets/config.yaml)
  --read FILE      import FILE instead of capturing live
  --iface LABEL    interface label in the names of imported files (default: import)
  --summary FILE   at the end, write per-interface counters and the files written as JSON`;

export interface CaptureSummary {
  interfaces: Record<string, Counters>;
  files: FileClosedMessage[];
  store?: RetentionState;
}

async function writeSummary(path: string | undefined, summary: CaptureSummary): Promise<void> {
  if (path) await writeFile(path, `${toJson(summary)}\n`);
}

function describe(name: string, c: Counters): string {
  const lost = c.kernel_drops + c.if_drops + c.writer_drops;
  return `${name}: ${c.written} packets (${formatSize(c.written_bytes)}) written, ${lost} lost (kernel ${c.kernel_drops}, interface ${c.if_drops}, writer ${c.writer_drops})`;
}

async function readFileIntoStore(config: Config, file: string, label: string, summaryPath?: string): Promise<number> {
  // Files other writers (a daemon, another import) have open are locked and left alone by repair.
  const retention = await openStore(config);
  const helper = new Helper([...helperArgs(config, { file, label }), ...(await retention.argsFor(label))]);
  retention.attach(new ImportSource(helper, label));
  let last = zeroCounters();
  let fatal: string | undefined;
  const files: FileClosedMessage[] = [];
  const started = process.hrtime.bigint();
  helper.on('message', (m) => {
    if (m.type === 'stats') last = countersOf(m);
    else if (m.type === 'file_closed') files.push(m);
    else if (m.type === 'error') {
      if (m.fatal) fatal = m.message;
      else log('warn', m.message);
    }
  });
  const stop = () => void helper.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const { code } = await helper.exited;
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  await retention.stop();
  await writeSummary(summaryPath, { interfaces: { [label]: last }, files, store: retention.state() });
  if (code !== 0) {
    process.stderr.write(`error: ${fatal ?? `reading ${file} failed (exit ${code})`}\n`);
    return code === 2 ? EXIT.config : EXIT.failure;
  }
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const gbps = (last.written_bytes * 8) / secs / 1e9;
  log('info', `${basename(file)}: ${last.received} packets read, ${last.filtered} filtered out, ${last.written} written (${formatSize(last.written_bytes)}) into ${files.length} file(s) in ${secs.toFixed(2)}s (${gbps.toFixed(2)} Gbit/s)`);
  const rs = retention.state();
  if (rs.filesDeleted) log('info', `circular retention deleted ${rs.filesDeleted} older files (${formatSize(rs.bytesDeleted)}) to make room`);
  if (last.store_full_drops) {
    log('error', `the store is full (linear mode, ${formatSize(rs.capacityBytes)}): ${last.store_full_drops} packets of ${basename(file)} were not imported`);
    return EXIT.failure;
  }
  return EXIT.ok;
}

/** Before any helper starts: crashed files repaired and kept, retention measured from the store. */
async function openStore(config: Config): Promise<StoreRetention> {
  for (const r of repairStore(config.storage.paths)) {
    if (r.outcome === 'repaired') log('warn', `repaired ${r.finalPath ?? r.path}: kept ${r.packets} packets, cut ${r.cutBytes} bytes of a torn last record (${r.reason})`);
    else if (r.outcome === 'removed') log('warn', `removed ${r.path}: it held no whole packet (${r.reason})`);
    else if (r.outcome === 'busy') log('info', `left ${r.path} alone: ${r.reason}`);
    else log('warn', `left ${r.path} alone: ${r.reason}`);
  }
  const retention = new StoreRetention(config, await capacityBytes(config));
  retention.on('log', (level, text) => log(level, text));
  await retention.prepare();
  return retention;
}

/** The control socket and /metrics; an error names the setting to change. */
async function openEndpoints(config: Config, monitor: CaptureMonitor): Promise<Server[]> {
  const servers: Server[] = [];
  const socket = config.control.socket;
  // Any answer is a live daemon, one of another version (a reply this one cannot read) included:
  // only a socket nobody answers on may be replaced.
  const other = await fetchStatus(socket, 1000).then(() => true, (e) => !(e instanceof DaemonUnreachable));
  if (other)
    throw new Error(`control.socket ${socket}: another qe-packets daemon is running and answers there; stop it first (two daemons must not share a store), or give this one its own control.socket and storage.paths`);
  try {
    servers.push(await serveControl(socket, () => monitor.report()));
  } catch (e) {
    throw new Error(`control.socket ${socket}: cannot listen (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); choose a path in a writable directory, e.g. /run/qe-packets/control.sock`);
  }
  const listen = config.metrics.listen;
  if (listen) {
    // prom-client loads only where metrics are served: an import or a check starts faster.
    const [{ createMetrics }, { serveMetrics }] = await Promise.all([import('../metrics/registry.js'), import('../metrics/server.js')]);
    const metrics = createMetrics(() => monitor.report());
    try {
      const server = await serveMetrics(metrics, listen);
      servers.push(server);
      const addr = server.address();
      const port = addr && typeof addr === 'object' ? addr.port : listen.port;
      const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
      log('info', `metrics: http://${host}:${port}/metrics`);
    } catch (e) {
      for (const s of servers) s.close();
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'EADDRINUSE' ? 'the port is in use' : code === 'EADDRNOTAVAIL' ? 'no interface has this address' : (code ?? (e as Error).message);
      throw new Error(`metrics.listen ${listen.host}:${listen.port}: cannot listen (${why}); choose a free port or an address of this machine, or set metrics.listen: false`);
    }
  }
  return servers;
}

async function captureLive(config: Config, configPath: string | undefined, summaryPath?: string): Promise<number> {
  const retention = await openStore(config);
  const st = retention.state();
  log('info', `store: ${config.storage.paths.join(', ')} (${config.storage.mode}, ${formatSize(st.usedBytes)} of ${formatSize(st.capacityBytes)} used)`);
  const sup = new CaptureSupervisor(config, retention.argsFor);
  sup.keepClosedFiles = summaryPath !== undefined;
  retention.attach(sup);
  const monitor = new CaptureMonitor(config, sup, retention);
  await monitor.start();
  let servers: Server[];
  try {
    servers = await openEndpoints(config, monitor);
  } catch (e) {
    monitor.stop();
    await retention.stop();
    reportError(e);
    return EXIT.config;
  }
  const systemd = new SystemdService(systemdNotifier(), () => monitor.report(), config);
  sup.on('log', (level, text) => log(level, text));
  sup.on('file_closed', (f) => log('info', `${f.iface}: closed ${f.path} (${f.packets} packets, ${formatSize(f.bytes)})`));
  let current = config;
  sup.on('capturing', () => {
    const up = new Set(sup.interfaces().filter((i) => i.capturing).map((i) => i.name));
    // The store was found writable before any helper started (checkEnvironment).
    if (current.capture.interfaces.every((i) => up.has(i.name))) systemd.ready();
  });
  sup.start();
  systemd.start();
  // The catalog cache is refreshed in the background so extraction starts fast; capture does not wait.
  void scanCatalog(config.storage.paths).then(
    (c) => log('info', `catalog: ${c.entries.length} files (${c.stats.cached} from cache) in ${c.stats.elapsedMs} ms`),
    (e: unknown) => log('warn', `catalog scan failed: ${e instanceof Error ? e.message : String(e)}`),
  );

  let reloading = Promise.resolve();
  const onHup = () => {
    reloading = reloading.then(async () => {
      try {
        const next = await loadConfigFile(configPath ?? config.source);
        await checkEnvironment(next, { needInterfaces: true });
        const restart = await sup.reload(next);
        if (JSON.stringify(next.metrics) !== JSON.stringify(current.metrics)) restart.push('metrics.listen');
        if (next.control.socket !== current.control.socket) restart.push('control.socket');
        current = next;
        monitor.reload(next);
        systemd.reload(next);
        log('info', `configuration reloaded${restart.length ? `; takes effect at the next restart: ${restart.join(', ')}` : ''}`);
      } catch (e) {
        log('error', `reload refused, capture goes on with the previous configuration:\n${e instanceof Error ? e.message : String(e)}`);
      }
    });
  };
  process.on('SIGHUP', onHup);

  const status = setInterval(() => {
    for (const s of sup.interfaces()) log('info', describe(s.name, sup.totals(s.name)));
  }, 60_000);
  status.unref();

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  log('info', 'stopping: closing files');
  systemd.stopping();
  clearInterval(status);
  process.off('SIGHUP', onHup);
  await reloading;
  await sup.stop();
  await retention.stop();
  monitor.stop();
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  const rs = retention.state();
  log('info', `store: ${formatSize(rs.usedBytes)} of ${formatSize(rs.capacityBytes)} used; ${rs.filesDeleted} files (${formatSize(rs.bytesDeleted)}) deleted by circular retention this run`);
  const interfaces: Record<string, Counters> = {};
  for (const s of sup.interfaces()) {
    interfaces[s.name] = sup.totals(s.name);
    log('info', describe(s.name, interfaces[s.name]!));
  }
  await writeSummary(summaryPath, { interfaces, files: sup.closedFiles, store: rs });
  return EXIT.ok;
}

export async function captureCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      read: { type: 'string', short: 'r' },
      iface: { type: 'string' },
      summary: { type: 'string' },
    },
  });
  const config = await loadConfigOrReport(values.config);
  if (!config) return EXIT.config;
  try {
    await checkEnvironment(config, { needInterfaces: !values.read });
  } catch (e) {
    reportError(e);
    return EXIT.config;
  }
  if (values.read) {
    const label = values.iface ?? 'import';
    if (!/^[A-Za-z0-9.@:+-][A-Za-z0-9._@:+-]*$/.test(label)) {
      process.stderr.write(`error: --iface ${JSON.stringify(label)}: a label is letters, digits and . _ @ : + - (it becomes part of file names)\n`);
      return EXIT.config;
    }
  }
  try {
    return values.read ? await readFileIntoStore(config, values.read, values.iface ?? 'import', values.summary) : await captureLive(config, values.config, values.summary);
  } catch (e) {
    // Before any helper started: nothing is granted from a store that could not be counted.
    if (!(e instanceof StoreUnreadableError)) throw e;
    reportError(e);
    return EXIT.failure;
  }
}
