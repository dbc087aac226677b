// The capture daemon as an object: start, reload, stop. The command (commands/capture.ts) wires it
// to signals; tests drive it directly, with fake helpers where reload is what they look at.
import type { Server } from 'node:http';
import { launchProcess, type HelperLauncher } from '../capture/helper.js';
import type { FileClosedMessage } from '../capture/protocol.js';
import { CaptureSupervisor, type Counters } from '../capture/supervisor.js';
import { capacityBytes, checkEnvironment } from '../config/check-environment.js';
import type { Config } from '../config/config.js';
import { configWarnings, loadConfigFile } from '../config/load.js';
import { formatSize } from '../config/units.js';
import { DaemonUnreachable, fetchStatus } from '../control/client.js';
import { ElementEngine } from '../elements/engine.js';
import type { ElementStateSource } from '../elements/types.js';
import { serveControl } from '../control/server.js';
import type { IndexFigures, StatusReport } from '../health/figures.js';
import type { ApiServer } from '../api/server.js';
import { History } from '../api/history.js';
import { auditLogPath, tokensPath } from '../util/paths.js';
import { packageVersion } from '../util/version.js';
import { CaptureMonitor } from '../health/monitor.js';
import { reuseUnchangedScans, scanCatalog } from '../store/catalog.js';
import { CatalogFeed } from '../store/catalog-feed.js';
import { removeOrphanIndexes, repairStore } from '../store/repair.js';
import { StoreRetention, type RetentionState } from '../store/retention.js';
import { systemdNotifier, type Notifier } from '../systemd/notify.js';
import { SystemdService } from '../systemd/service.js';
import { log } from '../util/log.js';
import { qualeventDir } from '../util/paths.js';
import type { QualeventReporter } from '../qualevent/reporter.js';
import { BackgroundIndexer } from './background-index.js';

export interface CaptureSummary {
  interfaces: Record<string, Counters>;
  files: FileClosedMessage[];
  store?: RetentionState;
}

export function describeCounters(name: string, c: Counters): string {
  const lost = c.kernel_drops + c.if_drops + c.writer_drops;
  return `${name}: ${c.written} packets (${formatSize(c.written_bytes)}) written, ${lost} lost (kernel ${c.kernel_drops}, interface ${c.if_drops}, writer ${c.writer_drops})`;
}

/** Before any helper starts: crashed files repaired and kept, retention measured from the store. */
export async function openStore(config: Config): Promise<StoreRetention> {
  for (const r of repairStore(config.storage.paths)) {
    if (r.outcome === 'repaired') log('warn', `repaired ${r.finalPath ?? r.path}: kept ${r.packets} packets, cut ${r.cutBytes} bytes of a torn last record (${r.reason})`);
    else if (r.outcome === 'removed') log('warn', `removed ${r.path}: it held no whole packet (${r.reason})`);
    else if (r.outcome === 'busy') log('info', `left ${r.path} alone: ${r.reason}`);
    else log('warn', `left ${r.path} alone: ${r.reason}`);
  }
  for (const p of removeOrphanIndexes(config.storage.paths)) log('warn', `removed ${p}: an index whose capture file is gone`);
  const retention = new StoreRetention(config, await capacityBytes(config));
  retention.on('log', (level, text) => log(level, text));
  await retention.prepare();
  return retention;
}

/** What the API needs of the daemon besides the figures. */
interface ApiHooks {
  configPath: string;
  config: () => Config;
  reload: () => Promise<ReloadOutcome>;
  history: History;
}

/** The control socket, /metrics and the API; an error names the setting to change. */
async function openEndpoints(config: Config, report: () => StatusReport, apiHooks: ApiHooks): Promise<{ servers: Server[]; api?: ApiServer }> {
  const servers: Server[] = [];
  const socket = config.control.socket;
  // Any answer is a live daemon, one of another version (a reply this one cannot read) included:
  // only a socket nobody answers on may be replaced.
  const other = await fetchStatus(socket, 1000).then(() => true, (e) => !(e instanceof DaemonUnreachable));
  if (other)
    throw new Error(`control.socket ${socket}: another qe-packets daemon is running and answers there; stop it first (two daemons must not share a store), or give this one its own control.socket and storage.paths`);
  try {
    servers.push(await serveControl(socket, report));
  } catch (e) {
    throw new Error(`control.socket ${socket}: cannot listen (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); choose a path in a writable directory, e.g. /run/qe-packets/control.sock`);
  }
  const listen = config.metrics.listen;
  if (listen) {
    // prom-client loads only where metrics are served: an import or a check starts faster.
    const [{ createMetrics }, { serveMetrics }] = await Promise.all([import('../metrics/registry.js'), import('../metrics/server.js')]);
    const metrics = createMetrics(report);
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
  let api: ApiServer | undefined;
  if (config.api.listen) {
    const a = config.api.listen;
    try {
      api = await openApi(config, apiHooks, report);
      servers.push(api.server);
      log('info', `api: ${api.url}${api.fingerprint ? ` (certificate SHA-256 ${api.fingerprint})` : ''}`);
    } catch (e) {
      for (const s of servers) s.close();
      const code = (e as NodeJS.ErrnoException).code;
      if (!code) throw e; // the certificate or key: the message names the key already
      const why = code === 'EADDRINUSE' ? 'the port is in use' : code === 'EADDRNOTAVAIL' ? 'no interface has this address' : code;
      throw new Error(`api.listen ${a.host}:${a.port}: cannot listen (${why}); choose a free port or an address of this machine, or set api.listen: false`);
    }
  }
  return { servers, ...(api ? { api } : {}) };
}

async function openApi(config: Config, hooks: ApiHooks, report: () => StatusReport): Promise<ApiServer> {
  // Loaded only where the API is served, as prom-client for /metrics.
  const [{ serveApi, readTls }, { TokenStore }, { AuditLog }, { ExtractionSlots }] = await Promise.all([
    import('../api/server.js'),
    import('../api/tokens.js'),
    import('../api/audit.js'),
    import('../api/extraction.js'),
  ]);
  const tls = readTls(config.api.tls);
  return serveApi(config.api.listen!, tls, new TokenStore(tokensPath()), {
    config: hooks.config,
    report,
    reload: hooks.reload,
    history: hooks.history,
    audit: new AuditLog(auditLogPath()),
    slots: new ExtractionSlots(() => hooks.config().api.maxExtractions),
    version: packageVersion(),
  });
}

/** The control socket or /metrics could not be opened: a configuration error (its cause names the key). */
export class EndpointError extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** What the daemon takes from the outside world; each defaults to the real one. */
export interface DaemonDeps {
  launchHelper?: HelperLauncher;
  /** Reads the configuration a reload applies. */
  loadConfig?: (path: string) => Promise<Config>;
  /** Checks a reloaded configuration against this machine (interfaces, store directories). */
  checkEnvironment?: (config: Config) => Promise<void>;
  notifier?: Notifier;
  /** The element states reported to Qe-Server; the state engine's when it runs. */
  elementSource?: ElementStateSource;
}

/** Until the element state engine runs: no element, so no event. */
const NO_ELEMENTS: ElementStateSource = { current: () => [], onChange: () => () => undefined };

export type ReloadOutcome = { applied: true; restartNeeded: string[] } | { applied: false; error: string };

export class CaptureDaemon {
  private current: Config;
  private retention?: StoreRetention;
  private sup?: CaptureSupervisor;
  private monitor?: CaptureMonitor;
  private systemd?: SystemdService;
  private servers: Server[] = [];
  private statusTimer?: NodeJS.Timeout;
  private indexer?: BackgroundIndexer;
  private catalogFeed?: CatalogFeed;
  private api?: ApiServer;
  private history?: History;
  private engine?: ElementEngine;
  private reloading: Promise<unknown> = Promise.resolve();
  private readonly deps: Required<Omit<DaemonDeps, 'elementSource'>>;
  /** What Qualevent reports: the state engine once started (or a test's source). */
  private elementSource?: ElementStateSource;
  private qualevent?: { reporter: QualeventReporter; key: string };

  constructor(
    config: Config,
    /** The file SIGHUP re-reads. */
    private readonly configPath: string,
    /** Keep every closed file for the summary (--summary): a daemon running for months closes millions. */
    private readonly keepClosedFiles = false,
    deps: DaemonDeps = {},
  ) {
    this.current = config;
    this.deps = {
      launchHelper: deps.launchHelper ?? launchProcess,
      loadConfig: deps.loadConfig ?? loadConfigFile,
      checkEnvironment: deps.checkEnvironment ?? ((c) => checkEnvironment(c, { needInterfaces: true })),
      notifier: deps.notifier ?? systemdNotifier(),
    };
    this.elementSource = deps.elementSource;
  }

  /**
   * Starts (or restarts, when its settings or credentials changed) the reports to Qe-Server. Never
   * stops capture: an outbox that cannot open is logged and reported, capture goes on.
   */
  private async applyQualevent(config: Config): Promise<void> {
    const q = config.qualevent;
    const { readQualeventCredentials } = await import('../qualevent/credentials.js');
    const { credentials } = q.url ? await readQualeventCredentials(q) : { credentials: {} };
    const key = q.url ? JSON.stringify([q, credentials]) : '';
    if (key === (this.qualevent?.key ?? '')) return;
    if (this.qualevent) {
      await this.qualevent.reporter.stop();
      this.qualevent = undefined;
      this.monitor!.qualevent = undefined;
    }
    if (!q.url) return;
    const { QualeventReporter } = await import('../qualevent/reporter.js');
    const reporter = new QualeventReporter({ ...q, url: q.url }, this.elementSource ?? NO_ELEMENTS, { dir: qualeventDir(), log, ...credentials });
    try {
      await reporter.start();
    } catch (e) {
      const why = (e as Error).message;
      log('error', `qualevent: not reporting to ${q.url}: ${why}`);
      // Said by status and, after a minute, by the qualevent_unreachable warning, not only the log.
      const since = Date.now();
      await reporter.stop().catch(() => {});
      this.monitor!.qualevent = () => ({ ...reporter.figures(), failingSince: since, lastError: why });
      return;
    }
    this.qualevent = { reporter, key };
    this.monitor!.qualevent = () => reporter.figures();
  }

  /** The configuration in force (the last one a reload applied). */
  get config(): Config {
    return this.current;
  }

  /** The background indexing's figures (also in the status report). */
  indexFigures(): IndexFigures {
    if (!this.indexer) throw new Error('the daemon has not started');
    return this.indexer.figures();
  }

  /** The elements' states (the API, metrics and the Qualevent reporter read them). */
  get elementStates(): ElementStateSource {
    if (!this.engine) throw new Error('the daemon has not started');
    return this.engine;
  }

  get supervisor(): CaptureSupervisor {
    if (!this.sup) throw new Error('the daemon has not started');
    return this.sup;
  }

  /**
   * Store measured, helpers started, endpoints open. Throws StoreUnreadableError before any helper
   * starts, and EndpointError (everything already started stopped again) when a socket cannot open.
   */
  async start(): Promise<void> {
    const config = this.current;
    const retention = (this.retention = await openStore(config));
    const st = retention.state();
    log('info', `store: ${config.storage.paths.join(', ')} (${config.storage.mode}, ${formatSize(st.usedBytes)} of ${formatSize(st.capacityBytes)} used)`);
    const sup = (this.sup = new CaptureSupervisor(config, retention.argsFor, this.deps.launchHelper));
    sup.keepClosedFiles = this.keepClosedFiles;
    retention.attach(sup);
    const indexer = (this.indexer = new BackgroundIndexer(config, log));
    const monitor = (this.monitor = new CaptureMonitor(config, sup, retention, () => indexer.figures()));
    await monitor.start();
    // Element states from the helpers' once-a-second counters; listening before any helper starts.
    const engine = (this.engine = new ElementEngine(config.elements));
    sup.on('elements', (_iface, m) => engine.ingest(m));
    sup.on('helper_exit', (iface) => engine.helperExited(iface));
    engine.start();
    this.elementSource ??= engine;
    // The report every endpoint serves: the monitor's figures and where the API answers.
    const report = (): StatusReport => {
      const r = monitor.report();
      if (this.api) r.figures.api = { url: this.api.url, fingerprint: this.api.fingerprint };
      if (this.current.elements.length) r.figures.elements = engine.current();
      return r;
    };
    const history = (this.history = new History(report));
    try {
      const endpoints = await openEndpoints(config, report, { configPath: this.configPath, config: () => this.current, reload: () => this.reload(), history });
      this.servers = endpoints.servers;
      this.api = endpoints.api;
    } catch (e) {
      monitor.stop();
      engine.stop();
      await retention.stop();
      throw new EndpointError(e);
    }
    history.start();
    for (const w of configWarnings(config)) log('warn', w);
    await this.applyQualevent(config);
    const systemd = (this.systemd = new SystemdService(this.deps.notifier, () => monitor.report(), config));
    sup.on('log', (level, text) => log(level, text));
    sup.on('file_closed', (f) => log('info', `${f.iface}: closed ${f.path} (${f.packets} packets, ${formatSize(f.bytes)})`));
    const feed = (this.catalogFeed = new CatalogFeed((level, text) => log(level, text)));
    sup.on('file_closed', (f) => feed.add(f));
    sup.on('capturing', () => {
      const up = new Set(sup.interfaces().filter((i) => i.capturing).map((i) => i.name));
      // The store was found writable before any helper started (checkEnvironment).
      if (this.current.capture.interfaces.every((i) => up.has(i.name))) systemd.ready();
    });
    sup.start();
    systemd.start();
    // Indexing reads the store: it waits until capture has started (or could not), so it never
    // delays it, and runs at low priority.
    const startIndexing = () => {
      clearTimeout(indexAfter);
      sup.off('capturing', startIndexing);
      indexer.kick();
    };
    const indexAfter = setTimeout(startIndexing, 10_000);
    indexAfter.unref();
    sup.on('capturing', startIndexing);
    // The daemon answers queries for as long as it runs: it may reuse its last scan of a store
    // directory that has not changed since (catalog.ts).
    reuseUnchangedScans(true);
    // The catalog cache is refreshed in the background so extraction starts fast; capture does not wait.
    void scanCatalog(config.storage.paths).then(
      (c) => log('info', `catalog: ${c.entries.length} files (${c.stats.cached} from cache) in ${c.stats.elapsedMs} ms`),
      (e: unknown) => log('warn', `catalog scan failed: ${e instanceof Error ? e.message : String(e)}`),
    );
    this.statusTimer = setInterval(() => {
      for (const s of sup.interfaces()) log('info', describeCounters(s.name, sup.totals(s.name)));
    }, 60_000);
    this.statusTimer.unref();
  }

  /**
   * Re-reads the configuration and applies what can change without stopping capture. A
   * configuration that does not load or does not fit this machine is refused whole: capture goes
   * on with the previous one. Reloads run one at a time, in the order asked.
   */
  reload(): Promise<ReloadOutcome> {
    const run = this.reloading.then(() => this.applyReload());
    this.reloading = run;
    return run;
  }

  private async applyReload(): Promise<ReloadOutcome> {
    const sup = this.supervisor;
    try {
      const next = await this.deps.loadConfig(this.configPath);
      await this.deps.checkEnvironment(next);
      // Before the helpers are told to re-read their elements: any line of the old generation
      // arriving from now on is known to be about the old elements.
      this.engine!.reconfigure(next);
      const restart = await sup.reload(next).catch((e: unknown) => {
        this.engine!.reconfigure(this.current);
        throw e;
      });
      if (JSON.stringify(next.metrics) !== JSON.stringify(this.current.metrics)) restart.push('metrics.listen');
      if (next.control.socket !== this.current.control.socket) restart.push('control.socket');
      // api.max_extractions is read per request; where the API listens and with what certificate, at start.
      if (JSON.stringify(next.api.listen) !== JSON.stringify(this.current.api.listen) || JSON.stringify(next.api.tls) !== JSON.stringify(this.current.api.tls)) restart.push('api.listen');
      this.current = next;
      this.monitor!.reload(next);
      this.indexer!.reload(next);
      this.systemd!.reload(next);
      for (const w of configWarnings(next)) log('warn', w);
      await this.applyQualevent(next);
      log('info', `configuration reloaded${restart.length ? `; takes effect at the next restart: ${restart.join(', ')}` : ''}`);
      return { applied: true, restartNeeded: restart };
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      log('error', `reload refused, capture goes on with the previous configuration:\n${error}`);
      return { applied: false, error };
    }
  }

  /** Helpers stopped (files closed and renamed), the store measured a last time; what this run did. */
  async stop(): Promise<CaptureSummary> {
    const sup = this.supervisor;
    log('info', 'stopping: closing files');
    this.systemd!.stopping();
    clearInterval(this.statusTimer);
    await this.reloading;
    await this.indexer!.stop();
    await this.qualevent?.reporter.stop();
    await sup.stop();
    this.catalogFeed?.flush();
    await this.retention!.stop();
    this.monitor!.stop();
    this.engine!.stop();
    this.history?.stop();
    for (const s of this.servers) {
      s.closeAllConnections();
      s.close();
    }
    const rs = this.retention!.state();
    log('info', `store: ${formatSize(rs.usedBytes)} of ${formatSize(rs.capacityBytes)} used; ${rs.filesDeleted} files (${formatSize(rs.bytesDeleted)}) deleted by circular retention this run`);
    const interfaces: Record<string, Counters> = {};
    for (const s of sup.interfaces()) {
      interfaces[s.name] = sup.totals(s.name);
      log('info', describeCounters(s.name, interfaces[s.name]!));
    }
    return { interfaces, files: sup.closedFiles, store: rs };
  }
}
