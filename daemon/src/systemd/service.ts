// The daemon's side of the systemd contract (Type=notify): READY=1 once every configured interface
// captures, WATCHDOG=1 while capture really advances, STATUS= a one-line summary, STOPPING=1.
import type { Config } from '../config/config.js';
import { formatSize } from '../config/units.js';
import type { StatusReport } from '../health/figures.js';
import { formatDuration } from '../time/format-time.js';
import { log } from '../util/log.js';
import type { Notifier } from './notify.js';
import { WatchdogGate } from './watchdog-gate.js';

export function statusLine(r: StatusReport): string {
  const f = r.figures;
  const ifaces = f.interfaces.map((i) => {
    if (!i.up) return `${i.name} DOWN`;
    const drops = i.window.offered ? ((i.window.dropped / i.window.offered) * 100).toFixed(3) : '0.000';
    return `${i.name} ${Math.round(i.window.packetsPerSecond)} pps ${(i.window.bitsPerSecond / 1e9).toFixed(2)} Gbit/s drops ${drops}%`;
  });
  const s = f.store;
  const used = s.capacityBytes ? `${((s.usedBytes / s.capacityBytes) * 100).toFixed(0)}% of ${formatSize(s.capacityBytes)}` : formatSize(s.usedBytes);
  const retention = s.retentionSeconds === undefined ? 'empty' : `retention ${formatDuration(s.retentionSeconds * 1000)}`;
  const head = r.state === 'ok' ? 'ok' : `${r.state} (${r.reasons.map((x) => x.code).join(', ')})`;
  return `${head}; ${ifaces.join('; ')}; store ${used}${s.full ? ' FULL' : ''}, ${retention}`;
}

export class SystemdService {
  private timers: NodeJS.Timeout[] = [];
  private readySent = false;
  private withheld?: string;
  private gate = new WatchdogGate();

  constructor(
    private readonly notifier: Notifier,
    private readonly report: () => StatusReport,
    private config: Config,
  ) {}

  reload(next: Config): void {
    this.config = next;
  }

  /** Every interface captures and the store was found writable: tell systemd once. */
  ready(): void {
    if (this.readySent) return;
    this.readySent = true;
    this.notifier.status(statusLine(this.report()));
    this.notifier.ready();
  }

  start(): void {
    const interval = this.notifier.watchdogIntervalMs();
    if (interval > 0) {
      // Twice per interval, as sd_watchdog_enabled(3) advises, so one late tick is not fatal.
      const t = setInterval(() => this.tick(), Math.max(100, Math.floor(interval / 2)));
      this.timers.push(t);
    }
    if (this.notifier.active) this.timers.push(setInterval(() => this.notifier.status(statusLine(this.report())), 5000));
  }

  private tick(): void {
    const r = this.report();
    const v = this.gate.check(r.figures, this.config.capture.filter !== '');
    if (v.alive) {
      if (this.withheld) log('info', 'watchdog: capture advances again');
      this.withheld = undefined;
      this.notifier.watchdog();
      return;
    }
    if (this.withheld !== v.why) log('error', `watchdog: not telling systemd we are alive: ${v.why}`);
    this.withheld = v.why;
  }

  stopping(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.notifier.status('stopping: closing files');
    this.notifier.stopping();
  }
}
