// The JSON wire form of the daemon's messages, both ways: nanosecond timestamps (bigint in memory)
// travel as decimal strings, as they do not fit a JavaScript number. Written by toJson, read back
// by wireNs; nothing else converts them.
import { z } from 'zod';

export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent);
}

/** A nanosecond timestamp on the wire: a decimal string, read as a bigint. */
export const wireNs = z.string().regex(/^\d+$/, 'a decimal string of nanoseconds').transform((s) => BigInt(s));
