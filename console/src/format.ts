// Numbers with units and thousands separators, times in UTC (the store's, the CLI's) with the
// browser's local time on hover.
import { html } from './html.js';

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const dec = (digits: number) => new Intl.NumberFormat('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export const num = (n: number): string => int.format(n);

function scaled(n: number, step: number, units: readonly string[]): string {
  let v = n;
  let i = 0;
  while (Math.abs(v) >= step && i < units.length - 1) {
    v /= step;
    i++;
  }
  const digits = i === 0 || Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${dec(digits).format(v)} ${units[i]}`;
}

/** Storage sizes, as the CLI prints them (IEC). */
export const bytes = (n: number): string => scaled(n, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']);
/** Line rates, as links are sold (SI). */
export const bitRate = (n: number): string => scaled(n, 1000, ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s']);
export const pktRate = (n: number): string => `${n < 10 && n > 0 ? dec(1).format(n) : num(n)} pkt/s`;
export const percent = (part: number, whole: number): string => (whole > 0 ? `${dec(part / whole < 0.001 && part > 0 ? 3 : 1).format((100 * part) / whole)} %` : '–');

export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const parts: [number, string][] = [
    [Math.floor(s / 86400), 'd'],
    [Math.floor((s % 86400) / 3600), 'h'],
    [Math.floor((s % 3600) / 60), 'min'],
  ];
  const first = parts.findIndex(([v]) => v > 0);
  return parts
    .slice(first, first + 2)
    .filter(([v]) => v > 0)
    .map(([v, u]) => `${v} ${u}`)
    .join(' ');
}

/** ms since the epoch from the API's ISO 8601 (nine fraction digits, which Date does not take) or ms. */
export function toMs(t: string | number): number {
  if (typeof t === 'number') return t;
  return Date.parse(t.replace(/(\.\d{3})\d+/, '$1'));
}

/** Nanoseconds since the epoch as a decimal string (bigint on the wire) to ms. */
export const nsToMs = (ns: string): number => Number(BigInt(ns) / 1_000_000n);

/** `2026-12-06 10:09:31 UTC`: how times are typed into the range fields too. */
export function utc(t: string | number, seconds = true): string {
  const d = new Date(toMs(t));
  if (Number.isNaN(d.getTime())) return String(t);
  return `${d.toISOString().slice(0, seconds ? 19 : 16).replace('T', ' ')} UTC`;
}

/** The ISO form the API reads (UTC, no zone letter needed). */
export const isoUtc = (ms: number): string => new Date(ms).toISOString().replace(/\.000Z$/, 'Z');

export function Time({ t, seconds = true }: { t: string | number; seconds?: boolean }) {
  const ms = toMs(t);
  const local = Number.isNaN(ms) ? '' : `local time: ${new Date(ms).toLocaleString()}`;
  return html`<time datetime=${Number.isNaN(ms) ? undefined : new Date(ms).toISOString()} title=${local}>${utc(t, seconds)}</time>`;
}
