// The control socket's reply (`GET /status`) as read by `qe-packets status` and by a second daemon
// checking the socket: validated where it is read, with its nanosecond timestamps (decimal strings
// on the wire, see util/json.ts) turned back into bigints here and nowhere else.
import { z } from 'zod';
import { COUNTER_NAMES, type Counters } from '../capture/supervisor.js';
import type { StorageMode } from '../config/config.js';
import { ELEMENT_LEVELS } from '../elements/types.js';
import type { StatusReport } from '../health/figures.js';
import { wireNs } from '../util/json.js';

const num = z.number();
const counters = z.strictObject(Object.fromEntries(COUNTER_NAMES.map((n) => [n, num])) as Record<keyof Counters, typeof num>);

const interfaceFigures = z.strictObject({
  name: z.string(),
  up: z.boolean(),
  downSince: num.optional(),
  restarts: num,
  lastError: z.string().optional(),
  counters,
  filesWritten: num,
  lastStatsAt: num.optional(),
  window: z.strictObject({
    seconds: num,
    packetsPerSecond: num,
    bitsPerSecond: num,
    offered: num,
    dropped: num,
    storeFullDrops: num,
    writeErrors: num,
  }),
});

const storageMode = z.enum(['circular', 'linear'] satisfies StorageMode[]);

const storeFigures = z.strictObject({
  mode: storageMode,
  paths: z.array(z.string()),
  capacityBytes: num,
  usedBytes: num,
  freeBytes: num,
  full: z.boolean(),
  filesDeleted: num,
  bytesDeleted: num,
  oldestNs: wireNs.optional(),
  retentionSeconds: num.optional(),
  retentionTargetSeconds: num.optional(),
  unreadable: z.string().optional(),
});

const indexFigures = z.strictObject({
  fields: z.array(z.string()),
  running: z.boolean(),
  pendingFiles: num,
  pendingBytes: num,
  indexedFiles: num,
  failedFiles: num,
  lastError: z.string().optional(),
});

const qualeventFigures = z.strictObject({
  url: z.string(),
  applianceId: z.string(),
  outboxEvents: num,
  outboxBytes: num,
  outboxLimitBytes: num,
  sent: num,
  dropped: num,
  parked: num,
  parkedPath: z.string(),
  lastDeliveryAt: num.optional(),
  failingSince: num.optional(),
  lastError: z.string().optional(),
  lastRejectedAt: num.optional(),
  lastRejection: z.string().optional(),
  nextAttemptAt: num.optional(),
});

const elementLevel = z.enum(ELEMENT_LEVELS);
const elementState = z.strictObject({
  element: z.string(),
  name: z.string().optional(),
  state: elementLevel,
  previous: elementLevel.nullable(),
  since: z.string(),
  reasons: z.array(
    z.strictObject({ indicator: z.string(), value: num, threshold: num, level: z.enum(['warning', 'critical']), unit: z.enum(['%', 'ms', 's']) }),
  ),
  figures: z.record(z.string(), num.nullable()),
  window_seconds: num,
});

export const statusReport = z.strictObject({
  state: z.enum(['ok', 'warning', 'critical']),
  reasons: z.array(
    z.strictObject({
      level: z.enum(['warning', 'critical']),
      code: z.string(),
      interface: z.string().optional(),
      message: z.string(),
    }),
  ),
  figures: z.strictObject({
    at: num,
    version: z.string(),
    startedAt: num,
    interfaces: z.array(interfaceFigures),
    store: storeFigures,
    index: indexFigures.optional(),
    api: z.strictObject({ url: z.string(), fingerprint: z.string().nullable() }).optional(),
    qualevent: qualeventFigures.optional(),
    elements: z.array(elementState).optional(),
  }),
});

// The schema and the in-memory type must describe the same thing, both ways: a field added to one
// and not the other stops the build here.
type Read = z.output<typeof statusReport>;
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const sameShape: Same<Read, StatusReport> = true;
void sameShape;

/** Throws an Error naming the first field that is not what the daemon serves. */
export function parseStatusReport(body: string): StatusReport {
  const r = statusReport.safeParse(JSON.parse(body));
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`${i.path.join('.') || 'the reply'}: ${i.message}`);
  }
  return r.data;
}
