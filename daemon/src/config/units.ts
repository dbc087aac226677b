// Sizes and durations as people write them in config files. Popular size parsers (bytes, xbytes)
// treat "KB" as 1024 or lack TB/TiB distinctions, and a 10 TB appliance cannot be off by 10%,
// so sizes are parsed here: SI units are powers of 1000, IEC units powers of 1024.
import ms from 'ms';

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, pb: 1e15,
  k: 1e3, m: 1e6, g: 1e9, t: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, pib: 2 ** 50,
};

export const SIZE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*([kKmMgGtTpP]i?[bB]?|[bB])?\\s*$';
const SIZE_RE = new RegExp(SIZE_PATTERN);
export const SIZE_HELP = 'a number with a unit, e.g. 512MiB, 1GiB, 10TB (SI: kB MB GB TB; IEC: KiB MiB GiB TiB)';

/** Bytes for "10TB", "20TiB", "1.5GiB", 4096; undefined when it is not a size. */
export function parseSize(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (!SIZE_RE.test(v)) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v)!;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.floor(Number(m[1]) * unit);
}

const FORMAT_UNITS = {
  iec: { step: 1024, names: ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] },
  si: { step: 1000, names: ['B', 'kB', 'MB', 'GB', 'TB', 'PB'] },
};

/** The one way sizes are shown: three significant digits, written as config.yaml takes them
 *  ("1.5GiB", "20TB", "209MB"), so a size read in a message can be pasted into the config. */
export function formatSize(bytes: number, units: keyof typeof FORMAT_UNITS = 'iec'): string {
  const { step, names } = FORMAT_UNITS[units];
  let v = bytes;
  let i = 0;
  while (v >= step && i < names.length - 1) {
    v /= step;
    i++;
  }
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${Number(v.toFixed(digits))}${names[i]}`;
}

/**
 * A count with thousands separators, as `toLocaleString('en-US')` writes it: 1234567 → "1,234,567".
 * `digits` decimals, fixed, or at most that many with `trim` (2.50 → "2.5", 2.00 → "2"). By hand
 * because a process's first toLocaleString loads ICU's number formatting, about 20 ms that every
 * query command paid before printing its one line (test/units.test.ts holds it to ICU's output).
 */
export function formatCount(n: number, digits = 0, trim = false): string {
  if (!Number.isFinite(n)) return String(n);
  let [int = '', frac = ''] = Math.abs(n).toFixed(digits).split('.');
  if (trim) frac = frac.replace(/0+$/, '');
  const sign = n < 0 ? '-' : '';
  return `${sign}${int.replace(/\B(?=(\d{3})+$)/g, ',')}${frac ? `.${frac}` : ''}`;
}

/** Disks and filesystems are sold in SI units and shown by tools in IEC units: both. */
export function formatSizeBoth(bytes: number): string {
  return `${formatSize(bytes, 'si')} (${formatSize(bytes)})`;
}

export const DURATION_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)?\\s*$';
const DURATION_RE = new RegExp(DURATION_PATTERN);
export const DURATION_HELP = 'a number with a unit, e.g. 500ms, 1s, 5m, 1h, 1d';

/** Milliseconds for "1s", "5m", "1h"; a bare number is seconds. Undefined when it is not a duration. */
export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return v >= 0 ? v * 1000 : undefined;
  if (!DURATION_RE.test(v)) return undefined;
  const t = v.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const out = ms(t as ms.StringValue);
  return typeof out === 'number' && Number.isFinite(out) ? out : undefined;
}

export const PERCENT_RE = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/;
