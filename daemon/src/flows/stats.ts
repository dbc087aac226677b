// Statistics from merged flows: totals and top-N tables by host, source, destination,
// conversation, port, protocol, VLAN stack or interface. A flow's packets and bytes are both
// directions' (a host's: sent plus received). Frames that are not IP are in the totals and in the `proto` (by EtherType: arp,
// lldp...), `vlan` and `iface` tables; they have no address or port, so the host, src, dst,
// conversation and port tables leave them out (as they leave out ICMP and other portless
// protocols in `port`).
import { addressText } from './address.js';
import type { Flow } from './merge.js';
import { protoLabel } from './render.js';

export const STATS_BY = ['host', 'src', 'dst', 'conversation', 'port', 'proto', 'vlan', 'iface'] as const;
export type StatsBy = (typeof STATS_BY)[number];

export interface StatsRow {
  key: string | number;
  packets: number;
  bytes: number;
  flows: number;
}

/** What the statistics read of a flow (FlowMerger.forStats() yields these without making Flow objects). */
export type StatsFlow = Pick<Flow, 'iface' | 'ipVersion' | 'proto' | 'sport' | 'dport' | 'vlan' | 'src' | 'dst' | 'packets' | 'packetsRev' | 'bytes' | 'bytesRev'>;

export interface StatsTotal {
  packets: number;
  bytes: number;
  flows: number;
}

const PORTS = new Set([6, 17, 132]);
const KEY_ORDER = new Intl.Collator('en', { numeric: true });

type HostBy = 'host' | 'src' | 'dst';
const isHostBy = (by: StatsBy): by is HostBy => by === 'host' || by === 'src' || by === 'dst';

/** The keys a flow counts under for `by` (none where it has no such thing); hosts: hostRows. */
function keysOf(f: StatsFlow, by: Exclude<StatsBy, HostBy>): (string | number)[] {
  const ip = f.ipVersion !== 0;
  switch (by) {
    case 'conversation': {
      if (!ip) return [];
      const [lo, hi] = Buffer.compare(f.src, f.dst) <= 0 ? [f.src, f.dst] : [f.dst, f.src];
      return [`${addressText(lo)} <-> ${addressText(hi)}`];
    }
    case 'port':
      // The destination's: the side that did not send first, the service.
      return ip && PORTS.has(f.proto) ? [f.dport] : [];
    case 'proto':
      return [protoLabel(f)];
    case 'vlan':
      return [f.vlan.length ? f.vlan.join('.') : 'untagged'];
    case 'iface':
      return [f.iface];
  }
}

export function totalsOf(flows: Iterable<StatsFlow>): StatsTotal {
  const t = { packets: 0, bytes: 0, flows: 0 };
  for (const f of flows) {
    t.packets += f.packets + f.packetsRev;
    t.bytes += Number(f.bytes + f.bytesRev);
    t.flows++;
  }
  return t;
}

// A host while counting: an IPv4 address as its 32-bit number, made text once per row at the end
// rather than once per flow (a store's millions of flows have tens of thousands of hosts).
const hostKey = (b: Buffer): number | string => (b.length === 4 ? b.readUInt32BE(0) : addressText(b));
const v4Text = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

/** The rows by host (what a host sent plus what it received, as tshark's endpoints count: a packet
 * a host sent to itself counts twice in its row, its flow once), source or destination. */
function hostRows(flows: Iterable<StatsFlow>, by: HostBy): Map<string | number, StatsRow> {
  const rows = new Map<string | number, StatsRow>();
  for (const f of flows) {
    if (f.ipVersion === 0) continue;
    const packets = f.packets + f.packetsRev;
    const bytes = f.bytes + f.bytesRev;
    const s = by === 'dst' ? undefined : hostKey(f.src);
    if (s !== undefined) count(rows, s, packets, bytes, true);
    if (by !== 'src') {
      const d = hostKey(f.dst);
      count(rows, d, packets, bytes, d !== s);
    }
  }
  for (const r of rows.values()) if (typeof r.key === 'number') r.key = v4Text(r.key);
  return rows;
}

/** A flow's packets and bytes into the row of `key` (and the flow itself, when `flow`). */
function count(rows: Map<string | number, StatsRow>, key: string | number, packets: number, bytes: number, flow: boolean): void {
  let r = rows.get(key);
  if (!r) rows.set(key, (r = { key, packets: 0, bytes: 0, flows: 0 }));
  r.packets += packets;
  r.bytes += bytes;
  if (flow) r.flows++;
}

/** Every row for `by`, largest first (bytes, then packets, then key); `top` keeps the first N. */
export function statsRows(flows: Iterable<StatsFlow>, by: StatsBy, top?: number): StatsRow[] {
  if (isHostBy(by)) return sortRows(hostRows(flows, by), top);
  const rows = new Map<string | number, StatsRow>();
  for (const f of flows) {
    const packets = f.packets + f.packetsRev;
    const bytes = Number(f.bytes + f.bytesRev);
    const keys = keysOf(f, by);
    keys.forEach((key, i) => count(rows, key, packets, bytes, keys.indexOf(key) === i));
  }
  return sortRows(rows, top);
}

function sortRows(rows: Map<string | number, StatsRow>, top: number | undefined): StatsRow[] {
  // Ties in the order people read them (10.0.0.9 before 10.0.0.10): one collator, made once (a
  // localeCompare with options makes one per call, and a store has hundreds of thousands of hosts).
  const sorted = [...rows.values()].sort((a, b) => b.bytes - a.bytes || b.packets - a.packets || KEY_ORDER.compare(String(a.key), String(b.key)));
  return top === undefined ? sorted : sorted.slice(0, top);
}
