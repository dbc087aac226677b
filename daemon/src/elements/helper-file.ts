// The elements file qe-capture reads (`--elements PATH`, `set elements PATH`) and the numbers its
// counters are read by: the TypeScript copy of daemon/native/element-format.h (the format is
// described there), held to it by test/element-format.test.ts.
import { chmodSync, renameSync, writeFileSync } from 'node:fs';

export const ELEM_FILE_MAGIC = 'qe-elements';
export const ELEM_FILE_VERSION = 1;
export const ELEM_MAX = 256;
export const ELEM_MAX_CUSTOM = 8;
export const ELEM_FILTER_MAX = 8192;
export const ELEM_SYN_TIMEOUT_MS = 3000;
export const ELEM_RTT_BUCKETS = 96;
export const ELEM_RTT_PER_DOUBLING = 4;
export const ELEM_RTT_Q1 = 77936;
export const ELEM_RTT_Q2 = 92682;
export const ELEM_RTT_Q3 = 110218;

/** What the helper needs of one element: its filter, and the filters of its custom shares. */
export interface HelperElement {
  filter: string;
  /** In the order the `custom` counters of the `elements` message come back. */
  custom: string[];
}

/** Why an elements list cannot be written (the config check refuses it first; this is the last guard). */
export class ElementsFileError extends Error {}

const oneLine = (f: string) => f.replace(/[\r\n]+/g, ' ');

function checkFilter(where: string, f: string): string {
  const line = oneLine(f);
  if (Buffer.byteLength(line) > ELEM_FILTER_MAX)
    throw new ElementsFileError(`${where}: the filter is ${Buffer.byteLength(line)} bytes; the capture helper takes at most ${ELEM_FILTER_MAX} bytes per element filter: shorten it`);
  return line;
}

/** The file's text (element-format.h). A filter's line breaks are only whitespace to libpcap. */
export function elementsFileText(elements: readonly HelperElement[]): string {
  if (elements.length > ELEM_MAX) throw new ElementsFileError(`elements: ${elements.length} elements; the capture helper takes at most ${ELEM_MAX}: remove some`);
  const lines = [`${ELEM_FILE_MAGIC} ${ELEM_FILE_VERSION}`];
  elements.forEach((e, i) => {
    lines.push(`element ${i} ${checkFilter(`elements[${i}].filter`, e.filter)}`);
    if (e.custom.length > ELEM_MAX_CUSTOM) throw new ElementsFileError(`elements[${i}]: ${e.custom.length} custom filters; at most ${ELEM_MAX_CUSTOM} per element`);
    e.custom.forEach((c, k) => lines.push(`custom ${i} ${k} ${checkFilter(`elements[${i}] custom filter ${k}`, c)}`));
  });
  return `${lines.join('\n')}\n`;
}

/**
 * Writes the file whole or not at all (a temporary name renamed over it): a helper told to re-read
 * it never reads half a file. Mode 0600: the filters name the hosts an operator watches.
 */
export function writeElementsFile(path: string, elements: readonly HelperElement[]): void {
  const text = elementsFileText(elements);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600); // an older file of that name keeps its mode through writeFileSync
  renameSync(tmp, path);
}

/** The histogram bucket of a round trip of `us` microseconds (the integer rule of element-format.h). */
export function rttBucket(us: number): number {
  const v = BigInt(Math.max(1, Math.floor(us)));
  const msb = v.toString(2).length - 1;
  const m = Number((v << 16n) >> BigInt(msb));
  const b = ELEM_RTT_PER_DOUBLING * msb + (m >= ELEM_RTT_Q1 ? 1 : 0) + (m >= ELEM_RTT_Q2 ? 1 : 0) + (m >= ELEM_RTT_Q3 ? 1 : 0);
  return Math.min(b, ELEM_RTT_BUCKETS - 1);
}

/** The geometric middle of a bucket, in microseconds: within 9% of every value the bucket holds. */
export const rttBucketMiddleUs = (b: number): number => 2 ** ((b + 0.5) / ELEM_RTT_PER_DOUBLING);

/**
 * The p-th percentile (0 < p ≤ 1, 0.95 for tcp_handshake_rtt) of a histogram given as [bucket,
 * count] pairs (the `rtt_hist` of the helper's message, or a window's differences of it), in
 * milliseconds; null when it holds no round trip.
 */
export function rttPercentileMs(hist: ReadonlyArray<readonly [number, number]>, p = 0.95): number | null {
  const sorted = hist.filter(([, n]) => n > 0).sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((s, [, n]) => s + n, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (const [b, n] of sorted) {
    seen += n;
    if (seen >= rank) return rttBucketMiddleUs(b) / 1000;
  }
  return rttBucketMiddleUs(sorted[sorted.length - 1]![0]) / 1000;
}

/** Differences of two cumulative histograms (`now` minus `before`), the empty buckets left out. */
export function rttHistDelta(now: ReadonlyArray<readonly [number, number]>, before: ReadonlyArray<readonly [number, number]>): Array<[number, number]> {
  const prev = new Map(before.map(([b, n]) => [b, n]));
  return now.map(([b, n]): [number, number] => [b, n - (prev.get(b) ?? 0)]).filter(([, n]) => n > 0);
}
