// Shows nanosecond timestamps to people: ISO 8601 in UTC with all nine digits, so a time printed
// by Qe-Packets can be pasted back into --from/--to and means exactly the same instant.

export function formatIsoNs(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const base = new Date(ms).toISOString().slice(0, 19); // 2024-05-01T10:00:00
  return `${base}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`;
}

/**
 * The last nanosecond of the current millisecond: the clock only gives milliseconds, and `--to now`
 * must not leave out a packet captured earlier in the same millisecond.
 */
export function nowNs(): bigint {
  return (BigInt(Date.now()) + 1n) * 1_000_000n - 1n;
}

/** A span for people, two units at most: 3d 4h, 12m 5s, 800ms. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const units: [string, number][] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];
  const parts: string[] = [];
  let left = Math.floor(ms);
  for (const [name, size] of units) {
    const n = Math.floor(left / size);
    if (n > 0 || parts.length) {
      if (n > 0) parts.push(`${n}${name}`);
      left -= n * size;
      if (parts.length === 2 || (parts.length && n === 0)) break;
    }
  }
  return parts.join(' ');
}
