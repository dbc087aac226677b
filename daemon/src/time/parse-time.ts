// Reads the times people type for an extraction into nanoseconds since the epoch.
//
// Accepted:
//   ISO 8601   2024-05-01T10:00:00Z, 2024-05-01T12:00:00.123456789+02:00, 2024-05-01 10:00,
//              2024-05-01 (midnight), and the basic form the store's file names use
//              (20240501T100000.123456789Z), so a name can be pasted.
//   epoch      1714557600 or 1714557600.5 (seconds; all digits always means epoch seconds)
//   now
//   relative   15m ago, 2h ago, 1d ago, 1h30m ago, 90s ago, 1.5h ago
//              (units: ns us ms s m h d w, and their long spellings)
//
// An ISO time without a zone is read in the zone the caller names. The CLI uses the local zone
// (the TZ of the machine running the command), as tcpdump, editcap and Wireshark do when they show
// or read times, so a time copied from their output means the same thing here. Write `Z` or an
// offset to be exact anywhere.

export type TimeZoneRule = 'local' | 'utc';

export interface ParseTimeOptions {
  nowNs: bigint;
  /** How to read an ISO time that names no zone (default 'local'). */
  zone?: TimeZoneRule;
}

export class TimeParseError extends Error {}

export const TIME_FORMS =
  'ISO 8601 (2024-05-01T10:00:00Z, 2024-05-01 10:00), epoch seconds (1714557600), "now", or "15m ago" (s m h d w)';

const NS_PER_S = 1_000_000_000n;
// pcap stores seconds in 32 unsigned bits: nothing before 1970 or after 2106 can be in a capture.
const MAX_NS = (2n ** 32n - 1n) * NS_PER_S + (NS_PER_S - 1n);

const UNIT_NS: Record<string, bigint> = {};
for (const [ns, names] of [
  [1n, ['ns', 'nanosecond', 'nanoseconds']],
  [1_000n, ['us', 'µs', 'microsecond', 'microseconds']],
  [1_000_000n, ['ms', 'millisecond', 'milliseconds']],
  [NS_PER_S, ['s', 'sec', 'secs', 'second', 'seconds']],
  [60n * NS_PER_S, ['m', 'min', 'mins', 'minute', 'minutes']],
  [3600n * NS_PER_S, ['h', 'hr', 'hrs', 'hour', 'hours']],
  [86_400n * NS_PER_S, ['d', 'day', 'days']],
  [7n * 86_400n * NS_PER_S, ['w', 'week', 'weeks']],
] as const) {
  for (const n of names) UNIT_NS[n] = ns;
}

const EXTENDED =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;
const BASIC = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(?:(\d{2})(?:[.,](\d{1,9}))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;
const EPOCH = /^(\d+)(?:\.(\d{1,9}))?$/;
const RELATIVE = /^((?:\d+(?:\.\d+)?\s*[a-zµ]+\s*)+)\s+ago$/i;
const RELATIVE_PART = /(\d+(?:\.\d+)?)\s*([a-zµ]+)/gi;

export function parseTime(text: string, opts: ParseTimeOptions): bigint {
  const t = text.trim();
  if (t === '') throw new TimeParseError(`empty time: use ${TIME_FORMS}`);
  let ns: bigint;
  if (t.toLowerCase() === 'now') ns = opts.nowNs;
  else if (EPOCH.test(t)) ns = parseEpoch(t);
  else if (RELATIVE.test(t)) ns = opts.nowNs - parseDuration(t.replace(/\s+ago$/i, ''), t);
  else {
    const m = EXTENDED.exec(t) ?? BASIC.exec(t);
    if (!m) throw new TimeParseError(`cannot read "${text}" as a time: use ${TIME_FORMS}`);
    ns = parseIso(m, t, opts.zone ?? 'local');
  }
  if (ns < 0n || ns > MAX_NS) {
    throw new TimeParseError(`"${text}" is outside what a pcap file can hold (1970-01-01 to 2106-02-07 UTC)`);
  }
  return ns;
}

function parseEpoch(t: string): bigint {
  const [, sec, frac] = EPOCH.exec(t)!;
  return BigInt(sec!) * NS_PER_S + BigInt((frac ?? '').padEnd(9, '0'));
}

function parseDuration(spec: string, whole: string): bigint {
  let total = 0n;
  for (const [, num, unit] of spec.matchAll(RELATIVE_PART)) {
    const perUnit = UNIT_NS[unit!.toLowerCase()];
    if (perUnit === undefined) {
      throw new TimeParseError(`unknown unit "${unit}" in "${whole}": use ns, us, ms, s, m, h, d or w (e.g. "15m ago")`);
    }
    total += decimalTimes(num!, perUnit);
  }
  return total;
}

/** `1.5` × unit without going through a float (1.5h is exactly 5400 s). */
function decimalTimes(num: string, unitNs: bigint): bigint {
  const [int, frac = ''] = num.split('.');
  const scale = 10n ** BigInt(frac.length);
  return (BigInt(int! + frac) * unitNs) / scale;
}

function parseIso(m: RegExpExecArray, t: string, zone: TimeZoneRule): bigint {
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', tz] = m;
  const year = +y!;
  const month = +mo!;
  const day = +d!;
  const hour = +h;
  const minute = +mi;
  const second = +s;
  const bad = (field: string, value: number, range: string) =>
    new TimeParseError(`"${t}": ${field} ${value} is out of range (${range})`);
  if (month < 1 || month > 12) throw bad('month', month, '01-12');
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day < 1 || day > daysInMonth) throw bad('day', day, `01-${daysInMonth} in ${y}-${mo}`);
  if (hour > 23) throw bad('hour', hour, '00-23');
  if (minute > 59) throw bad('minute', minute, '00-59');
  if (second > 59) throw bad('second', second, '00-59');

  let ms: number;
  if (tz !== undefined || zone === 'utc') {
    ms = Date.UTC(year, month - 1, day, hour, minute, second);
    ms -= offsetMinutes(tz) * 60_000;
  } else {
    // Date resolves the local zone, DST included; a time skipped by a DST change moves forward.
    const local = new Date(year, month - 1, day, hour, minute, second);
    local.setFullYear(year); // years 0-99 would otherwise mean 1900-1999
    ms = local.getTime();
  }
  return BigInt(ms) * 1_000_000n + BigInt(frac.padEnd(9, '0'));
}

function offsetMinutes(tz: string | undefined): number {
  if (tz === undefined || tz === 'Z' || tz === 'z') return 0;
  const sign = tz[0] === '-' ? -1 : 1;
  const digits = tz.slice(1).replace(':', '');
  const hours = +digits.slice(0, 2);
  const minutes = digits.length > 2 ? +digits.slice(2, 4) : 0;
  if (hours > 23 || minutes > 59) throw new TimeParseError(`zone offset "${tz}" is out of range (-23:59 to +23:59)`);
  return sign * (hours * 60 + minutes);
}
