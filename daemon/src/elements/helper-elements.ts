// Where the supervisor's helpers find the elements to count: the config's elements as the helper
// needs them (filters only), written to a private file the helpers are pointed at.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { writeElementsFile, type HelperElement } from './helper-file.js';

/**
 * The config's elements as the helper counts them, in config order (the `elements` message's
 * order). The filters of an element's filter-taking indicators (custom_share) are its custom
 * filters, in its indicators' order: the state engine reads their counters in that order.
 */
export function helperElements(config: Config): HelperElement[] {
  return config.elements.map((e) => ({ filter: e.filter, custom: e.indicators.flatMap((x) => (x.filter === undefined ? [] : [x.filter])) }));
}

/**
 * The elements file of this daemon's helpers: in the service's private runtime directory
 * (systemd's RuntimeDirectory=), else in a private directory of its own, removed at exit.
 */
export class ElementsFile {
  readonly path: string;
  private text = '';
  private readonly dir?: string;

  constructor() {
    const runtime = process.env.RUNTIME_DIRECTORY?.split(':')[0];
    if (!runtime) this.dir = mkdtempSync(join(tmpdir(), 'qe-elements-'));
    this.path = join(runtime ?? this.dir!, `elements-${process.pid}`);
    process.once('exit', () => this.remove());
  }

  /** Writes the list; true when it differs from what was written before (helpers must re-read). */
  update(elements: readonly HelperElement[]): boolean {
    const text = JSON.stringify(elements);
    if (text === this.text) return false;
    writeElementsFile(this.path, elements);
    this.text = text;
    return true;
  }

  remove(): void {
    rmSync(this.path, { force: true });
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
