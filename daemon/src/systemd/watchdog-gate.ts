// Decides whether the daemon may tell systemd it is alive (WATCHDOG=1). Not a bare timer: capture
// must really advance. A helper that stops reporting, or that reports but stops taking packets
// while its link keeps receiving, withholds the ping, and systemd restarts the service.
// An interface that is down while others capture does not: the supervisor retries it, and a restart
// of the whole service could not bring the link back but would interrupt the healthy ones. If no
// interface at all has captured for `allDownMs`, the ping stops too.
import { rxPackets } from '../util/sys-class-net.js';
import type { Figures } from '../health/figures.js';

export type LinkRx = (iface: string) => number | undefined;

/** The kernel's receive counter of an interface: it advances whenever the link carries packets. */
export const sysfsRxPackets: LinkRx = (iface) => rxPackets(iface);

interface Progress {
  offered: number;
  rx?: number;
  lastProgressAt: number;
}

export interface GateVerdict {
  alive: boolean;
  why?: string;
}

export class WatchdogGate {
  private progress = new Map<string, Progress>();

  constructor(
    private readonly stallMs = 5000,
    private readonly allDownMs = 60_000,
    private readonly linkRx: LinkRx = sysfsRxPackets,
  ) {}

  /**
   * `kernelFilter`: a BPF filter runs in the kernel, so the link may carry packets the helper never
   * sees; only the helper's own reports can tell then.
   */
  check(f: Figures, kernelFilter = false): GateVerdict {
    const now = f.at;
    const up = f.interfaces.filter((i) => i.up);
    if (!up.length && f.interfaces.length) {
      const since = Math.min(...f.interfaces.map((i) => i.downSince ?? now));
      if (now - since > this.allDownMs) return { alive: false, why: `no interface has captured for ${Math.round((now - since) / 1000)}s` };
    }
    for (const i of up) {
      if (i.lastStatsAt === undefined || now - i.lastStatsAt > this.stallMs)
        return { alive: false, why: `${i.name}: no report from its capture helper for ${Math.round((now - (i.lastStatsAt ?? f.startedAt)) / 1000)}s` };
      const offered = i.counters.received + i.counters.kernel_drops + i.counters.if_drops;
      const rx = kernelFilter ? undefined : this.linkRx(i.name);
      const p = this.progress.get(i.name);
      if (!p || offered !== p.offered || rx === undefined || rx === p.rx) {
        // Counters moved, or the link is idle (or its counter unreadable): capture keeps up.
        this.progress.set(i.name, { offered, ...(rx !== undefined ? { rx } : {}), lastProgressAt: now });
        continue;
      }
      p.rx = rx;
      if (now - p.lastProgressAt > this.stallMs)
        return { alive: false, why: `${i.name}: the link receives packets but capture has not advanced for ${Math.round((now - p.lastProgressAt) / 1000)}s` };
    }
    return { alive: true };
  }
}
