// The Qualevent reporter: element states from an ElementStateSource into the outbox (one event per
// change, a snapshot of every element each snapshot_interval), and out of it to Qe-Server, oldest
// first, one batch at a time, so each element's events arrive in the order they were made.
import type { Config } from '../config/config.js';
import type { ElementState, ElementStateSource } from '../elements/types.js';
import type { QualeventFigures } from '../health/figures.js';
import { stateEvent, type StateEvent } from './events.js';
import { Outbox, type OutboxEntry } from './outbox.js';
import { postBatch, postTarget, type PostTarget, type Verdict } from './post.js';

type Log = (level: 'info' | 'warn' | 'error', text: string) => void;

export const BATCH_MAX_EVENTS = 500;
export const BATCH_MAX_BYTES = 1024 * 1024;
/** Backoff after the n-th failure in a row: base × 2^n, at most the cap, with jitter. */
export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_CAP_MS = 60_000;

export interface ReporterOptions {
  /** The outbox's directory (stateDir()/qualevent on a box). */
  dir: string;
  log: Log;
  token?: string;
  ca?: string;
  /** [0, 1); Math.random unless a test pins it. */
  random?: () => number;
}

type Settings = Config['qualevent'] & { url: string };

/** Equal jitter: half the exponential delay, plus a random share of the other half, so retries from
 *  many appliances after a server restart spread out without any retrying at once. */
export function backoffMs(failures: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(failures - 1, 30));
  return ceiling / 2 + random() * (ceiling / 2);
}

export class QualeventReporter {
  private outbox?: Outbox;
  private readonly target: PostTarget;
  private unsubscribe?: () => void;
  private snapshotTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private pumping = false;
  private stopped = false;
  private abort = new AbortController();
  /** Events of a refused batch, sent one by one to find the ones the server refuses. */
  private readonly isolate = new Set<string>();
  private failures = 0;
  private nextAttemptAt = 0;
  private sent = 0;
  private parked = 0;
  private lastDeliveryAt?: number;
  private failingSince?: number;
  private lastError?: string;
  private lastRejectedAt?: number;
  private lastRejection?: string;
  /** Stores in flight, in order: the sender waits for them so it never reads half an add. */
  private storing: Promise<void> = Promise.resolve();
  private unstored: { kind: 'change' | 'snapshot'; event: StateEvent }[] = [];

  constructor(
    private readonly settings: Settings,
    private readonly source: ElementStateSource,
    private readonly opts: ReporterOptions,
  ) {
    this.target = postTarget(settings.url, opts.token, opts.ca);
  }

  async start(): Promise<void> {
    this.outbox = await Outbox.open(this.opts.dir, this.settings.outboxSizeBytes, this.opts.log);
    this.unsubscribe = this.source.onChange((s) => this.store([s], 'change'));
    this.opts.log('info', `qualevent: reporting ${this.source.current().length} elements to ${this.settings.url} as qe-packets/${this.settings.applianceId}`);
    // A snapshot at start: the server learns at once what this run sees.
    this.snapshot();
    this.snapshotTimer = setInterval(() => this.snapshot(), this.settings.snapshotIntervalMs);
    this.snapshotTimer.unref();
    this.pump();
  }

  private snapshot(): void {
    this.store(this.source.current(), 'snapshot');
  }

  private store(states: ElementState[], kind: 'change' | 'snapshot'): void {
    const outbox = this.outbox;
    if (this.stopped || !outbox || !states.length) return;
    const now = Date.now();
    // Numbered here, synchronously, in the order the changes came: the journal keeps that order.
    for (const s of states)
      this.unstored.push({ kind, event: stateEvent(this.settings.applianceId, s, kind === 'change' ? outbox.nextSequence(s.element) : outbox.lastSequence(s.element), kind, now) });
    // Changes made in one turn of the event loop (an engine tick changing many elements) share one
    // write and one fsync.
    if (this.unstored.length === states.length) queueMicrotask(() => this.storeNow());
  }

  private storeNow(): void {
    const events = this.unstored.splice(0);
    if (!events.length) return;
    const stored = this.outbox!.add(events).then(
      () => this.pump(),
      (e: unknown) => this.opts.log('error', `qualevent outbox: cannot write (${(e as Error).message}); ${events.length} events are kept in memory only until it can`),
    );
    this.storing = this.storing.then(() => stored);
  }

  /** Resolves when every event made so far is on disk (fsync'd). */
  async flushed(): Promise<void> {
    await Promise.resolve();
    this.storeNow();
    await this.storing;
  }

  /** Sends while there is something to send and the server takes it; schedules the next try otherwise. */
  private pump(): void {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    void this.run().finally(() => {
      this.pumping = false;
    });
  }

  private async run(): Promise<void> {
    const outbox = this.outbox!;
    while (!this.stopped) {
      const wait = this.nextAttemptAt - Date.now();
      if (wait > 0) {
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.pump(), wait);
        this.retryTimer.unref();
        return;
      }
      await this.flushed();
      const first = outbox.pending(1, BATCH_MAX_BYTES);
      if (!first.length) return;
      const batch = this.isolate.has(first[0]!.id) ? first : outbox.pending(BATCH_MAX_EVENTS, BATCH_MAX_BYTES);
      for (const e of batch) outbox.busy.add(e.id);
      let verdict: Verdict;
      try {
        verdict = await postBatch(
          this.target,
          batch.map((e) => e.json),
          this.abort.signal,
        );
      } finally {
        for (const e of batch) outbox.busy.delete(e.id);
      }
      if (this.stopped) return;
      await this.settle(batch, verdict);
    }
  }

  private async settle(batch: OutboxEntry[], v: Verdict): Promise<void> {
    const outbox = this.outbox!;
    const now = Date.now();
    if (v.outcome === 'delivered') {
      await outbox.remove(
        batch.map((e) => e.id),
        'sent',
      );
      for (const e of batch) this.isolate.delete(e.id);
      this.sent += batch.length;
      this.lastDeliveryAt = now;
      if (this.failingSince !== undefined) this.opts.log('info', `qualevent: ${this.settings.url} takes events again`);
      this.failingSince = undefined;
      this.failures = 0;
      return;
    }
    if (v.outcome === 'refused') {
      if (batch.length > 1) {
        // One bad event must not sink the batch: each is sent alone, and only the refused ones park.
        for (const e of batch) this.isolate.add(e.id);
        return;
      }
      await outbox.park(batch, v.status, v.why);
      this.isolate.delete(batch[0]!.id);
      this.parked += batch.length;
      this.lastRejectedAt = now;
      this.lastRejection = v.why;
      this.opts.log('warn', `qualevent: ${this.settings.url} refused event ${batch[0]!.id} (${batch[0]!.kind} of ${batch[0]!.element}): ${v.why}; parked in ${outbox.parkedPath}`);
      return;
    }
    this.failures++;
    this.failingSince ??= now;
    this.lastError = v.why;
    const delay = v.retryAfterMs ?? backoffMs(this.failures, this.opts.random);
    this.nextAttemptAt = now + delay;
    if (this.failures === 1) this.opts.log('warn', `qualevent: ${this.settings.url} did not take ${batch.length} events (${v.why}); retrying, ${outbox.count} wait in the outbox`);
  }

  figures(): QualeventFigures {
    const o = this.outbox;
    const now = Date.now();
    return {
      url: this.settings.url,
      applianceId: this.settings.applianceId,
      outboxEvents: o?.count ?? 0,
      outboxBytes: o?.bytes ?? 0,
      outboxLimitBytes: this.settings.outboxSizeBytes,
      sent: this.sent,
      dropped: o?.dropped ?? 0,
      parked: this.parked,
      parkedPath: o?.parkedPath ?? '',
      ...(this.lastDeliveryAt !== undefined ? { lastDeliveryAt: this.lastDeliveryAt } : {}),
      ...(this.failingSince !== undefined ? { failingSince: this.failingSince } : {}),
      ...(this.lastError !== undefined && this.failingSince !== undefined ? { lastError: this.lastError } : {}),
      ...(this.lastRejectedAt !== undefined ? { lastRejectedAt: this.lastRejectedAt, lastRejection: this.lastRejection! } : {}),
      ...(this.nextAttemptAt > now ? { nextAttemptAt: this.nextAttemptAt } : {}),
    };
  }

  /** Stops sending; what is in the outbox stays there for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearInterval(this.snapshotTimer);
    clearTimeout(this.retryTimer);
    this.abort.abort();
    this.storeNow();
    await this.storing;
    await this.outbox?.close();
    this.target.agent.destroy();
  }
}
