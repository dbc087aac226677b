// The JSON wire form of the daemon's messages, both ways: nanosecond timestamps (bigint in memory)
// travel as decimal strings, as they do not fit a JavaScript number. Written by toJson, read back
// by wireNs (readWireNs where a schema per value costs too much); nothing else converts them.
import { z } from 'zod';

export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent);
}

const WIRE_NS = /^\d+$/;

/** A nanosecond timestamp on the wire: a decimal string, read as a bigint. */
export const wireNs = z.string().regex(WIRE_NS, 'a decimal string of nanoseconds').transform((s) => BigInt(s));

/** wireNs without zod, for tens of thousands of values at once (a store's catalog cache): undefined when not one. */
export function readWireNs(v: unknown): bigint | undefined {
  return typeof v === 'string' && WIRE_NS.test(v) ? BigInt(v) : undefined;
}
