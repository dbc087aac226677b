// The daemon's indexing of the closed files that need it (repaired after a crash, imported before
// the index was on, a changed index.fields): once capture has started, in the background, at low
// priority (run-qe-index.ts), newest files first (the ones an incident asks about), one run at a
// time on the store (the lock `qe-packets index` takes too). A run that finds the lock held, or
// fails, tries again later; a reload that changes index.fields starts a new run.
import type { Config } from '../config/config.js';
import type { IndexFigures } from '../health/figures.js';
import { scanCatalog } from '../store/catalog.js';
import { describeNeeds, lockIndexing, planIndexing, runIndexing } from '../store/index-backfill.js';


type Log = (level: 'info' | 'warn' | 'error', text: string) => void;

const RETRY_MS = 60_000;

export class BackgroundIndexer {
  private figs: IndexFigures;
  private running?: Promise<void>;
  private again = false;
  private abort?: AbortController;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private config: Config,
    private readonly log: Log,
  ) {
    this.figs = { fields: [...config.index.fields], running: false, pendingFiles: 0, pendingBytes: 0, indexedFiles: 0, failedFiles: 0 };
  }

  figures(): IndexFigures {
    return { ...this.figs, fields: [...this.figs.fields] };
  }

  /** Starts a run, or asks the one running for another after it. Never two at once. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.run().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  reload(next: Config): void {
    const changed = JSON.stringify(next.index) !== JSON.stringify(this.config.index) || next.flows.enabled !== this.config.flows.enabled;
    this.config = next;
    this.figs.fields = [...next.index.fields];
    if (changed) {
      // The run under way builds what the old config asked for: stop it and start over.
      this.abort?.abort();
      this.kick();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort?.abort();
    await this.running;
  }

  private retryLater(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), RETRY_MS);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    const config = this.config;
    const want = { fields: config.index.fields, blockSizeBytes: config.index.blockSizeBytes, flows: config.flows.enabled };
    if (!want.fields.length && !want.flows) return;
    let lock;
    try {
      lock = lockIndexing(config.storage.paths);
    } catch (e) {
      this.figs.lastError = (e as Error).message;
      this.log('warn', `index: ${this.figs.lastError}; trying again in ${RETRY_MS / 1000}s`);
      return this.retryLater();
    }
    if (!lock) {
      this.log('info', `index: another indexing run (\`qe-packets index\`) holds the store; trying again in ${RETRY_MS / 1000}s`);
      return this.retryLater();
    }
    const abort = (this.abort = new AbortController());
    this.figs.running = true;
    try {
      const catalog = await scanCatalog(config.storage.paths);
      const plan = await planIndexing([...catalog.entries].reverse(), want, { verify: 'headers' });
      if (abort.signal.aborted) return;
      for (const r of plan.refused) this.log('warn', `index: ${r.entry.path}: ${describeNeeds({ ...r, needs: { index: false, flows: false } })}: newer than this qe-packets reads, left alone (extraction scans it)`);
      if (!plan.todo.length) return;
      this.figs.pendingFiles = plan.todo.length;
      this.figs.pendingBytes = plan.bytes;
      this.log('info', `index: ${plan.todo.length} of ${plan.considered} closed files need an index (${plan.todo.filter((t) => (t.needs.index && t.state.state !== 'missing') || (t.needs.flows && t.flowState.state !== 'missing')).length} out of date or damaged); indexing them in the background`);
      let done = 0;
      const s = await runIndexing(plan, want, {
        signal: abort.signal,
        onProgress: (bytes) => {
          this.figs.pendingBytes = Math.max(0, plan.bytes - bytes);
        },
        onIndexed: () => {
          this.figs.indexedFiles++;
          this.figs.pendingFiles = plan.todo.length - ++done;
        },
        onFailed: (f) => {
          this.figs.failedFiles++;
          this.figs.pendingFiles = plan.todo.length - ++done;
          this.figs.lastError = `${f.path}: ${f.message}`;
          this.log('warn', `index: ${f.path}: ${f.message}`);
        },
      });
      if (!abort.signal.aborted) this.log('info', `index: ${s.indexed} files indexed in the background, ${s.failed} failed`);
    } catch (e) {
      this.figs.lastError = e instanceof Error ? e.message : String(e);
      this.log('warn', `index: background indexing stopped: ${this.figs.lastError}; trying again in ${RETRY_MS / 1000}s`);
      this.retryLater();
    } finally {
      this.figs.running = false;
      this.figs.pendingFiles = 0;
      this.figs.pendingBytes = 0;
      lock.release();
    }
  }
}
