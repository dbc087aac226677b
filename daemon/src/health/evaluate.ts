// The one place where the figures become ok / warning / critical, with the reasons why.
import type { Config } from '../config/config.js';
import { formatDuration } from '../time/format-time.js';
import type { Figures, Health, HealthReason } from './figures.js';

/** Nothing delivered for this long while events wait: qualevent_unreachable. */
export const QUALEVENT_UNREACHABLE_MS = 60_000;
/** A refusal stays a warning this long: parked events need a person, and a later delivery does not mend them. */
export const QUALEVENT_REJECTED_HOLD_MS = 3600_000;

const pct = (f: number) => `${(f * 100).toFixed(f < 0.01 ? 3 : 1)}%`;

export function evaluateHealth(f: Figures, t: Config['health']): Health {
  const reasons: HealthReason[] = [];
  for (const i of f.interfaces) {
    if (!i.up) {
      reasons.push({ level: 'critical', code: 'capture_down', interface: i.name, message: `${i.name}: not capturing${i.lastError ? ` (${i.lastError})` : ''}` });
      continue;
    }
    const w = i.window;
    if (w.offered > 0 && w.dropped > 0) {
      const share = w.dropped / w.offered;
      const over = share > t.dropsCritical ? 'critical' : share > t.dropsWarning ? 'warning' : undefined;
      if (over)
        reasons.push({
          level: over,
          code: 'drops',
          interface: i.name,
          message: `${i.name}: ${pct(share)} of packets dropped in the last ${Math.round(w.seconds)}s (${over} above ${pct(over === 'critical' ? t.dropsCritical : t.dropsWarning)})`,
        });
    }
    if (w.writeErrors > 0)
      reasons.push({ level: 'critical', code: 'write_errors', interface: i.name, message: `${i.name}: ${w.writeErrors} write errors in the last ${Math.round(w.seconds)}s` });
    if (w.storeFullDrops > 0)
      reasons.push({ level: 'critical', code: 'store_full', interface: i.name, message: `${i.name}: ${w.storeFullDrops} packets not written because the store is full` });
  }
  const s = f.store;
  // Its figures are the last ones read: the store may hold more than they say.
  if (s.unreadable) reasons.push({ level: 'critical', code: 'store_unreadable', message: s.unreadable });
  const used = s.capacityBytes > 0 ? s.usedBytes / s.capacityBytes : 0;
  if (s.mode === 'linear') {
    if (s.full) reasons.push({ level: 'critical', code: 'store_full', message: `store full (linear mode): new packets are counted, not written` });
    else if (used > t.storeFullWarning)
      reasons.push({ level: 'warning', code: 'store_nearly_full', message: `store ${pct(used)} full (linear mode; warning above ${pct(t.storeFullWarning)})` });
  }
  // Before the store reaches its capacity, retention is bounded by uptime, not by space: no alarm.
  if (t.retentionTargetMs > 0 && s.mode === 'circular' && s.filesDeleted > 0 && s.retentionSeconds !== undefined && s.retentionSeconds * 1000 < t.retentionTargetMs)
    reasons.push({
      level: 'warning',
      code: 'retention',
      message: `retention ${formatDuration(s.retentionSeconds * 1000)} is below the target of ${formatDuration(t.retentionTargetMs)}`,
    });
  reasons.push(...qualeventReasons(f));
  const state = reasons.some((r) => r.level === 'critical') ? 'critical' : reasons.length ? 'warning' : 'ok';
  return { state, reasons };
}

function qualeventReasons(f: Figures): HealthReason[] {
  const q = f.qualevent;
  if (!q) return [];
  const out: HealthReason[] = [];
  if (q.failingSince !== undefined && f.at - q.failingSince >= QUALEVENT_UNREACHABLE_MS)
    out.push({
      level: 'warning',
      code: 'qualevent_unreachable',
      message: `Qe-Server ${q.url}: nothing delivered for ${formatDuration(f.at - q.failingSince)}${q.lastError ? ` (${q.lastError})` : ''}; ${q.outboxEvents} events wait in the outbox`,
    });
  if (q.lastRejectedAt !== undefined && f.at - q.lastRejectedAt < QUALEVENT_REJECTED_HOLD_MS)
    out.push({
      level: 'warning',
      code: 'qualevent_rejected',
      message: `Qe-Server ${q.url} refused ${q.parked} events since start (last: ${q.lastRejection ?? 'unknown'}); they are kept in ${q.parkedPath}`,
    });
  return out;
}
