// Picks the catalog files an extraction has to read and groups them into streams for qe-extract:
// each stream is a chain of files whose time spans follow one another, so the extractor only
// keeps one file per stream open and a k-way merge over the streams yields timestamp order.
import type { CatalogEntry } from './catalog.js';

export interface ExtractStream {
  iface: string;
  /** In time order; no file starts before the previous one ends. */
  files: CatalogEntry[];
}

export interface Selection {
  streams: ExtractStream[];
  files: number;
  /** Size on disk of the selected files (what a progress bar counts through). */
  size: number;
}

export interface SelectCriteria {
  fromNs: bigint;
  /** Inclusive. */
  toNs: bigint;
  /** Only these interfaces (all when absent or empty). */
  ifaces?: readonly string[];
}

export function selectFiles(entries: readonly CatalogEntry[], c: SelectCriteria): Selection {
  const only = c.ifaces && c.ifaces.length > 0 ? new Set(c.ifaces) : undefined;
  const byIface = new Map<string, CatalogEntry[]>();
  for (const e of entries) {
    if (only && !only.has(e.iface)) continue;
    if (!mayHoldRange(e, c.fromNs, c.toNs)) continue;
    let list = byIface.get(e.iface);
    if (!list) byIface.set(e.iface, (list = []));
    list.push(e);
  }

  const streams: ExtractStream[] = [];
  let files = 0;
  let size = 0;
  for (const iface of [...byIface.keys()].sort()) {
    const list = byIface.get(iface)!.sort(byStart);
    // Files of one interface normally follow one another; one that overlaps (two helpers on the
    // same interface, a clock stepped back) opens a stream of its own rather than break the order.
    const chains: CatalogEntry[][] = [];
    for (const e of list) {
      const chain = chains.find((ch) => {
        const last = ch[ch.length - 1]!;
        return !last.partial && last.lastNs <= e.firstNs;
      });
      if (chain) chain.push(e);
      else chains.push([e]);
      files++;
      size += e.size;
    }
    for (const ch of chains) streams.push({ iface, files: ch });
  }
  return { streams, files, size };
}

/** Interfaces asked for that no file in the catalog belongs to (most likely a typo). */
export function unknownInterfaces(entries: readonly CatalogEntry[], ifaces: readonly string[]): string[] {
  const seen = new Set(entries.map((e) => e.iface));
  return ifaces.filter((i) => !seen.has(i));
}

/** Whether file `e` may hold records of [fromNs, toNs]: the rule of a selection, and of which files a scan must look at (catalog.ts). */
export function mayHoldRange(e: Pick<CatalogEntry, 'firstNs' | 'lastNs' | 'partial' | 'packets'>, fromNs: bigint, toNs: bigint): boolean {
  if (e.firstNs > toNs) return false;
  // A part file is still growing: its records so far say nothing about where it will end.
  if (e.partial) return true;
  return e.packets > 0 && e.lastNs >= fromNs;
}

function byStart(a: CatalogEntry, b: CatalogEntry): number {
  if (a.firstNs !== b.firstNs) return a.firstNs < b.firstNs ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
