// Collects the figures of a running capture from the supervisor's once-a-second helper reports and
// the retention ledger. Nothing here runs per packet, and reading the figures (a scrape, a status
// request) costs the same whatever the packet rate.
import { COUNTER_NAMES, type CaptureSupervisor, type Counters } from '../capture/supervisor.js';
import type { Config } from '../config/config.js';
import { filesystemFree } from '../store/free-space.js';
import type { StoreRetention } from '../store/retention.js';
import { packageVersion } from '../util/version.js';
import { evaluateHealth } from './evaluate.js';
import type { Figures, IndexFigures, InterfaceFigures, QualeventFigures, StatusReport } from './figures.js';

interface Sample {
  at: number;
  counters: Counters;
}

interface Track {
  samples: Sample[];
  filesWritten: number;
  lastStatsAt?: number;
  downSince?: number;
  openFirstNs?: bigint;
}


const delta = (a: Counters, b: Counters, n: (typeof COUNTER_NAMES)[number]) => Math.max(0, b[n] - a[n]);

export class CaptureMonitor {
  private tracks = new Map<string, Track>();
  private freeBytes = 0;
  private timer?: NodeJS.Timeout;
  readonly startedAt = Date.now();
  readonly version = packageVersion();

  constructor(
    private config: Config,
    private readonly sup: CaptureSupervisor,
    private readonly retention: StoreRetention,
    private readonly index?: () => IndexFigures,
    /** Set by the daemon while it reports to Qe-Server. */
    public qualevent?: () => QualeventFigures | undefined,
  ) {
    sup.on('stats', (iface) => {
      const t = this.track(iface);
      const now = Date.now();
      t.lastStatsAt = now;
      t.samples.push({ at: now, counters: sup.totals(iface) });
      // One sample a second: keep the window and one more to measure across it.
      const keepFrom = now - this.config.health.windowMs - 1000;
      while (t.samples.length > 2 && t.samples[1]!.at <= keepFrom) t.samples.shift();
    });
    sup.on('capturing', (iface) => {
      const t = this.track(iface);
      t.downSince = undefined;
      // The starting point of the window: what happens before the helper's first report counts too.
      t.samples.push({ at: Date.now(), counters: sup.totals(iface) });
    });
    sup.on('down', (iface) => {
      this.track(iface).downSince ??= Date.now();
    });
    sup.on('message', (m) => {
      if (m.type === 'file_opened') this.track(m.iface).openFirstNs = m.first_ns;
    });
    sup.on('file_closed', (f) => {
      const t = this.track(f.iface);
      t.filesWritten++;
      t.openFirstNs = undefined;
    });
    sup.on('helper_exit', (iface) => {
      this.track(iface).openFirstNs = undefined;
    });
  }

  private track(iface: string): Track {
    let t = this.tracks.get(iface);
    if (!t) {
      t = { samples: [], filesWritten: 0, downSince: Date.now() };
      this.tracks.set(iface, t);
    }
    return t;
  }

  /** Free space is read every few seconds, not at each scrape. */
  async start(): Promise<void> {
    const refresh = async () => {
      this.freeBytes = await filesystemFree(this.config.storage.paths).catch(() => this.freeBytes);
    };
    await refresh();
    this.timer = setInterval(() => void refresh(), 5000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  reload(next: Config): void {
    this.config = next;
  }

  figures(): Figures {
    const now = Date.now();
    const byName = new Map(this.sup.interfaces().map((s) => [s.name, s]));
    const interfaces: InterfaceFigures[] = this.config.capture.interfaces.map(({ name }) => {
      const s = byName.get(name);
      const t = this.track(name);
      const counters = this.sup.totals(name);
      const first = t.samples[0];
      const last = t.samples[t.samples.length - 1];
      const seconds = first && last && last.at > first.at ? (last.at - first.at) / 1000 : 0;
      const d = (n: (typeof COUNTER_NAMES)[number]) => (first && last ? delta(first.counters, last.counters, n) : 0);
      const up = s?.capturing ?? false;
      return {
        name,
        up,
        ...(up || t.downSince === undefined ? {} : { downSince: t.downSince }),
        restarts: s?.restarts ?? 0,
        ...(s?.lastError ? { lastError: s.lastError } : {}),
        counters,
        filesWritten: t.filesWritten,
        ...(t.lastStatsAt ? { lastStatsAt: t.lastStatsAt } : {}),
        window: {
          seconds,
          packetsPerSecond: seconds ? d('written') / seconds : 0,
          bitsPerSecond: seconds ? (d('written_bytes') * 8) / seconds : 0,
          offered: d('received') + d('kernel_drops') + d('if_drops'),
          dropped: d('kernel_drops') + d('if_drops') + d('writer_drops'),
          storeFullDrops: d('store_full_drops'),
          writeErrors: d('write_errors'),
        },
      };
    });
    const r = this.retention.state();
    const qualevent = this.qualevent?.();
    let oldestNs = r.oldestNs;
    for (const t of this.tracks.values()) if (t.openFirstNs !== undefined && (oldestNs === undefined || t.openFirstNs < oldestNs)) oldestNs = t.openFirstNs;
    const retentionSeconds = oldestNs === undefined ? undefined : Math.max(0, now / 1000 - Number(oldestNs) / 1e9);
    return {
      at: now,
      version: this.version,
      startedAt: this.startedAt,
      interfaces,
      store: {
        mode: r.mode,
        paths: this.config.storage.paths,
        capacityBytes: r.capacityBytes,
        usedBytes: r.usedBytes,
        freeBytes: this.freeBytes,
        full: r.full,
        filesDeleted: r.filesDeleted,
        bytesDeleted: r.bytesDeleted,
        ...(oldestNs !== undefined ? { oldestNs, retentionSeconds: retentionSeconds! } : {}),
        ...(this.config.health.retentionTargetMs ? { retentionTargetSeconds: this.config.health.retentionTargetMs / 1000 } : {}),
        ...(r.unreadable ? { unreadable: r.unreadable } : {}),
      },
      ...(this.index ? { index: this.index() } : {}),
      ...(qualevent ? { qualevent } : {}),
    };
  }

  report(): StatusReport {
    const figures = this.figures();
    return { ...evaluateHealth(figures, this.config.health), figures };
  }
}
