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
