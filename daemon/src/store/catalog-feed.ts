// Keeps the catalog caches current while the daemon captures: each file the helper closes goes into
// its directory's cache from the helper's own report (catalog.ts rememberClosedFiles), a few
// seconds later and in batches (a cache of 40,000 files is rewritten whole each time), so no query
// reads a closed file back to learn its span. Without it the first query after a quiet week walked
// every file captured since, from disk.
import type { FileClosedMessage } from '../capture/protocol.js';
import { rememberClosedFiles, type ClosedFileFacts } from './catalog.js';

export const CATALOG_FEED_DELAY_MS = 5000;

/** The facts of a `file_closed` message, when it has them (not after a failed write in the file). */
export function closedFileFacts(m: FileClosedMessage): ClosedFileFacts | undefined {
  if (m.min_ns === undefined || m.max_ns === undefined || m.sorted === undefined) return undefined;
  return { path: m.path, packets: m.packets, size: m.bytes, minNs: m.min_ns, maxNs: m.max_ns, lastNs: m.last_ns, sorted: m.sorted };
}

export class CatalogFeed {
  private pending: ClosedFileFacts[] = [];
  private timer: NodeJS.Timeout | undefined;
  private warned = false;

  constructor(
    private readonly log: (level: 'warn', text: string) => void,
    private readonly delayMs = CATALOG_FEED_DELAY_MS,
  ) {}

  add(m: FileClosedMessage): void {
    const f = closedFileFacts(m);
    if (!f) return; // a write failed in it: the next scan reads it
    this.pending.push(f);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.delayMs);
      this.timer.unref();
    }
  }

  /** Writes what is pending now (the daemon's stop, a test). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const files = this.pending.splice(0);
    if (!files.length) return;
    const problems = rememberClosedFiles(files);
    // Said once: a cache that cannot be written only makes the next query read the files.
    if (problems.length && !this.warned) {
      this.warned = true;
      this.log('warn', `catalog cache: ${problems[0]!.path}: ${problems[0]!.message} (queries read such files to learn their span; said once)`);
    }
  }
}
