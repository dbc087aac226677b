// A one-line progress bar for a terminal: redrawn in place with \r, cleared before other messages
// so they do not land in the middle of it. Callers create one only when stderr is a TTY.

import { formatCount, formatSize } from '../config/units.js';

export interface ProgressBarOptions {
  /** Bytes to go through (the selected files' size); progress past it shows as 100%. */
  total: number;
  columns?: number;
}

export class ProgressBar {
  private readonly started = performance.now();
  private drawn = false;
  private last = { done: 0, packets: 0 };

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly opts: ProgressBarOptions,
  ) {}

  update(done: number, packets: number): void {
    this.last = { done, packets };
    this.draw(false);
  }

  /** Writes a message on its own line and redraws the bar under it. */
  message(text: string): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.out.write(text.endsWith('\n') ? text : `${text}\n`);
    if (this.drawn) this.draw(false);
  }

  /** Draws the finished bar and leaves it on its line. */
  finish(): void {
    this.draw(true);
    this.out.write('\n');
  }

  private draw(complete: boolean): void {
    const { done, packets } = this.last;
    const total = Math.max(this.opts.total, 1);
    const fraction = complete ? 1 : Math.min(done / total, 1);
    const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
    const secs = Math.round((performance.now() - this.started) / 1000);
    const info = ` ${pct}  ${formatSize(complete ? Math.max(done, this.opts.total) : done)} of ${formatSize(this.opts.total)}  ${formatCount(packets)} packets  ${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;
    const width = Math.max(10, Math.min(40, (this.opts.columns ?? 80) - info.length - 3));
    const filled = Math.round(fraction * width);
    this.out.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]${info}\x1b[K`);
    this.drawn = true;
  }
}
