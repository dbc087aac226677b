// Where the supervisor's helpers find the elements to count: the config's elements as the helper
// needs them (filters only), written to a private file the helpers are pointed at.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { writeElementsFile, type HelperElement } from './helper-file.js';

/** The part of a configured element the helper reads (the config's `elements:` list). */
interface ConfiguredElement {
  filter: string;
  indicators?: { custom_share?: { filter: string }; customShare?: { filter: string } };
}

/**
 * The config's elements as the helper counts them, in config order (the `elements` message's
 * order). An element's `custom_share` filter is its custom filter 0.
 */
export function helperElements(config: Config): HelperElement[] {
  const list = (config as Config & { elements?: ConfiguredElement[] }).elements ?? [];
  return list.map((e) => {
    const custom = e.indicators?.custom_share ?? e.indicators?.customShare;
    return { filter: e.filter, custom: custom ? [custom.filter] : [] };
  });
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
