// Keeps the store within its capacity while capture runs, through the space ledger: helpers get
// byte quotas; circular mode deletes the oldest whole files to make room ahead of need, linear
// mode stops granting at the capacity. The store is re-measured from disk every
// storage.rescan_interval, so nothing done behind the daemon's back misleads it.
import { EventEmitter } from 'node:events';
import { helperCommand, type HelperCommand } from '../capture/protocol.js';
import type { SupervisorEvents } from '../capture/supervisor.js';
import type { Config } from '../config/config.js';
import { outsideStore } from './filename.js';
import { filesystemFree } from './free-space.js';
import { indexBytesOf } from './index-files.js';
import { StoreLedger } from './ledger.js';
import { StoreUnreadableError, measureStore, type StoreUsage, type StoredFile } from './usage.js';

export interface RetentionState {
  mode: Config['storage']['mode'];
  capacityBytes: number;
  usedBytes: number;
  full: boolean;
  filesDeleted: number;
  bytesDeleted: number;
  oldestNs?: bigint;
  /** Why the store could not be measured at the last attempt (figures are the last good ones). */
  unreadable?: string;
}

/** What retention listens to: the supervisor of live helpers, or one import's helper. */
export type HelperSource = EventEmitter<SupervisorEvents> & { command(iface: string, line: HelperCommand): void };

export interface RetentionEvents {
  deleted: [StoredFile];
  log: ['info' | 'warn' | 'error', string];
}

export class StoreRetention extends EventEmitter<RetentionEvents> {
  private ledger: StoreLedger;
  private queue: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private fullReported = false;
  private diskRoomReportedAt = 0;
  private unreadable?: StoreUnreadableError;
  /** Names already reported as skipped: each is said once, not at every rescan. */
  private reported = new Set<string>();

  constructor(
    private config: Config,
    private capacityBytes: number,
  ) {
    super();
    this.ledger = new StoreLedger(
      config.storage.mode === 'circular',
      capacityBytes,
      config.storage.fileSizeBytes,
      (f) => this.emit('deleted', f),
      () => this.physicalFree(),
      (f, e) => this.logOnce(`undeletable ${f.path}`, 'error', `retention cannot delete ${f.path} (${e.code ?? e.message}): skipped, older files go first; remove it by hand`),
    );
  }

  private logOnce(key: string, level: 'info' | 'warn' | 'error', text: string): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.emit('log', level, text);
  }

  /** Measures the store before any helper starts. Throws StoreUnreadableError: no grant from an unread store. */
  async prepare(): Promise<void> {
    this.applyMeasurement(await measureStore(this.config.storage.paths));
  }

  private applyMeasurement(u: StoreUsage): void {
    for (const s of u.skipped) this.logOnce(`skipped ${s.path}`, 'warn', `${s.path}: ${s.kind}, not a regular file: not counted, never deleted by retention`);
    this.ledger.measured(u.closed, u.totalBytes);
  }

  /** Helper arguments at each (re)start: its first quota. */
  argsFor = async (iface: string): Promise<string[]> => ['--quota', String(await this.serial(() => this.ledger.open(iface)))];

  private sup?: HelperSource;

  attach(sup: HelperSource): void {
    this.sup = sup;
    sup.on('message', (m) => {
      if (m.type === 'error' && m.code === 'disk_full') void this.serial(() => this.onDiskFull(sup, m.iface));
      if (m.type === 'file_opened') this.refuseOutside(m.iface, m.path, true);
    });
    sup.on('file_closed', (f) => {
      // Retention deletes what it is given: never a path the helper (which parses hostile input)
      // names outside the store.
      if (this.refuseOutside(f.iface, f.path, false)) return;
      // Its index was written before the helper reported the close: retention frees both.
      this.ledger.fileClosed(f.iface, { path: f.path, firstNs: f.first_ns, size: f.bytes + indexBytesOf(f.path) });
    });
    sup.on('stats', (iface, s) => {
      void this.serial(async () => {
        const quota = await this.ledger.update(iface, s.appended_bytes, s.buffered_bytes);
        if (quota !== undefined) sup.command(iface, helperCommand.quota(quota));
        if (this.config.storage.mode === 'circular') {
          const deleted = await this.ledger.keepDiskRoom();
          // Grants count against the capacity only: this is the disk itself running short.
          if (deleted && Date.now() - this.diskRoomReportedAt > 60_000) {
            this.diskRoomReportedAt = Date.now();
            this.emit('log', 'warn', `the store's filesystem is fuller than its capacity allows (other data?): deleted the ${deleted} oldest capture file(s) to keep room for capture`);
          }
        }
      });
      if (s.store_full && !this.fullReported && this.config.storage.mode === 'linear') {
        this.fullReported = true;
        this.emit('log', 'warn', `store full (linear mode, capacity ${this.capacityBytes} bytes): packets are counted, not written`);
      }
    });
    sup.on('helper_exit', (iface) => {
      // Its whole grant stays reserved until the store is measured: measure now, or a helper that
      // restarts again and again (an interface that comes and goes) would reserve a grant each
      // time, and circular mode would delete the other interfaces' files to make that room.
      this.ledger.close(iface);
      void this.serial(() => this.remeasure());
    });
    this.timer = setInterval(() => void this.serial(() => this.remeasure()), this.config.storage.rescanIntervalMs);
    this.timer.unref();
  }

  private refuseOutside(iface: string, path: string, partial: boolean): boolean {
    const why = outsideStore(this.config.storage.paths, path, { partial });
    if (why) this.emit('log', 'error', `${iface}: the helper reported ${JSON.stringify(path)}, which is ${why}: refused, never deleted by retention`);
    return why !== undefined;
  }

  private async onDiskFull(sup: HelperSource, iface: string): Promise<void> {
    if (this.config.storage.mode === 'circular') {
      this.emit('log', 'warn', `${iface}: the filesystem is full; deleting the oldest files to make room`);
      await this.remeasure();
      await this.ledger.diskFull();
    } else {
      sup.command(iface, helperCommand.quota(0));
      this.emit('log', 'error', `${iface}: the filesystem is full (linear mode): writing stopped, packets are counted as store_full`);
    }
  }

  private physicalFree(): Promise<number> {
    return filesystemFree(this.config.storage.paths);
  }

  private async remeasure(): Promise<void> {
    let u: StoreUsage;
    try {
      u = await measureStore(this.config.storage.paths);
    } catch (e) {
      if (!(e instanceof StoreUnreadableError)) throw e;
      // The ledger keeps its last measurement and what helpers reported since; nothing new is
      // granted from a measurement that did not happen.
      if (this.unreadable?.message !== e.message) this.emit('log', 'error', e.message);
      this.unreadable = e;
      return;
    }
    if (this.unreadable) this.emit('log', 'info', `store directory ${this.unreadable.path} can be read again`);
    this.unreadable = undefined;
    this.applyMeasurement(u);
    for (const [iface, quota] of await this.ledger.regrant()) this.sup?.command(iface, helperCommand.quota(quota));
    if (!this.ledger.full) this.fullReported = false;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.then(
      () => {},
      (e: unknown) => {
        this.emit('log', 'error', `retention: ${e instanceof Error ? e.message : String(e)}`);
      },
    );
    return run;
  }

  state(): RetentionState {
    const oldestNs = this.ledger.oldestNs;
    return {
      mode: this.config.storage.mode,
      capacityBytes: this.ledger.capacity,
      usedBytes: this.ledger.usedBytes,
      full: this.ledger.full,
      filesDeleted: this.ledger.deletedFiles,
      bytesDeleted: this.ledger.deletedBytes,
      ...(oldestNs !== undefined ? { oldestNs } : {}),
      ...(this.unreadable ? { unreadable: this.unreadable.message } : {}),
    };
  }

  /** After the helpers have stopped: a last measurement, so the final figures are the disk's. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.queue;
    await this.serial(() => this.remeasure());
  }
}
