// The figures every health consumer reads (metrics, `status`, the systemd STATUS line and
// watchdog): written once here so they can never disagree.
import type { Counters } from '../capture/supervisor.js';
import type { StorageMode } from '../config/config.js';
import type { ElementState } from '../elements/types.js';

export interface InterfaceFigures {
  name: string;
  /** A helper is running and has said it captures. */
  up: boolean;
  /** Since when it has been down (ms since the epoch), while it is. */
  downSince?: number;
  restarts: number;
  lastError?: string;
  /** Totals across helper restarts. */
  counters: Counters;
  filesWritten: number;
  /** When its helper last reported (ms since the epoch). */
  lastStatsAt?: number;
  /** Over the health window (or as much of it as there is). */
  window: {
    seconds: number;
    packetsPerSecond: number;
    bitsPerSecond: number;
    /** Packets that reached the interface or the kernel ring in the window. */
    offered: number;
    /** Of those, lost to the kernel ring, the interface or the writer (store_full not included). */
    dropped: number;
    storeFullDrops: number;
    writeErrors: number;
  };
}

export interface StoreFigures {
  mode: StorageMode;
  paths: string[];
  capacityBytes: number;
  usedBytes: number;
  /** Free bytes on the store's filesystems, each counted once. */
  freeBytes: number;
  full: boolean;
  filesDeleted: number;
  bytesDeleted: number;
  /** Timestamp of the oldest packet kept (ns since the epoch), when there is one. */
  oldestNs?: bigint;
  /** Age of the oldest packet kept. */
  retentionSeconds?: number;
  /** health.retention_target, when set. */
  retentionTargetSeconds?: number;
  /** Why a store directory could not be read at the last measurement (path and errno). */
  unreadable?: string;
}

/** The daemon's background indexing of closed files (daemon/background-index.ts). */
export interface IndexFigures {
  /** index.fields in force; empty when the index is off. */
  fields: string[];
  /** Checking the store's indexes, or building them. */
  running: boolean;
  /** Closed files this run has still to index (0 when none is running). */
  pendingFiles: number;
  pendingBytes: number;
  /** Since the daemon started. */
  indexedFiles: number;
  failedFiles: number;
  lastError?: string;
}

/** Reports to Qe-Server (daemon/src/qualevent/), when qualevent.url is set. */
export interface QualeventFigures {
  url: string;
  applianceId: string;
  /** Events in the outbox, not yet delivered; and the bytes they hold against outboxLimitBytes. */
  outboxEvents: number;
  outboxBytes: number;
  outboxLimitBytes: number;
  /** Since the daemon started. */
  sent: number;
  /** Dropped because the outbox was full (snapshots first). */
  dropped: number;
  /** Refused by the server (a 4xx) and set aside in parkedPath. */
  parked: number;
  parkedPath: string;
  /** ms since the epoch. */
  lastDeliveryAt?: number;
  /** First failed attempt since the last delivery (cleared by a delivery). */
  failingSince?: number;
  lastError?: string;
  lastRejectedAt?: number;
  lastRejection?: string;
  /** When the next attempt is due, while waiting (backoff or Retry-After). */
  nextAttemptAt?: number;
}

export interface Figures {
  /** When these were taken (ms since the epoch). */
  at: number;
  version: string;
  startedAt: number;
  interfaces: InterfaceFigures[];
  store: StoreFigures;
  index?: IndexFigures;
  /** Where the API answers (absent when api.listen is false). */
  api?: ApiFigures;
  /** Absent when qualevent.url is not set. */
  qualevent?: QualeventFigures;
  /** Every configured element's state, in config order (absent when none is configured). */
  elements?: ElementState[];
}

export interface ApiFigures {
  /** http://127.0.0.1:8443 or https://host:8443 (the bound port when the config says 0). */
  url: string;
  /** SHA-256 of the TLS certificate (DER), AB:CD:…; null over plain HTTP. */
  fingerprint: string | null;
}

export type HealthLevel = 'ok' | 'warning' | 'critical';

export interface HealthReason {
  level: Exclude<HealthLevel, 'ok'>;
  /** Stable identifier for scripts: capture_down, drops, write_errors, store_full, store_unreadable, retention, store_nearly_full,
   *  qualevent_unreachable, qualevent_rejected. */
  code: string;
  interface?: string;
  message: string;
}

export interface Health {
  state: HealthLevel;
  reasons: HealthReason[];
}

/** What `qe-packets status --json` prints and the control socket serves. */
export interface StatusReport extends Health {
  figures: Figures;
}

export const HEALTH_VALUE: Record<HealthLevel, number> = { ok: 0, warning: 1, critical: 2 };
