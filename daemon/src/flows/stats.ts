// What the statistics are: totals and top-N tables by host, source, destination, conversation,
// port (the destination's: the side that did not send first, the service), protocol, VLAN stack
// or interface, counted from merged flows. A flow's packets and bytes are both directions' (a
// host's: sent plus received; a host talking to itself counts the packets twice and the flow
// once, as tshark's endpoints). Frames that are not IP are in the totals and in the `proto` (by
// EtherType: arp, lldp...), `vlan` and `iface` tables; they have no address or port, so the host,
// src, dst, conversation and port tables leave them out (as they leave out ICMP and other
// portless protocols in `port`). Rows are ordered by bytes, then packets, then key as people read
// them (10.0.0.9 before 10.0.0.10). qe-flowstat counts them (native-stats.ts drives it).
import type { Flow } from './merge.js';

export const STATS_BY = ['host', 'src', 'dst', 'conversation', 'port', 'proto', 'vlan', 'iface'] as const;
export type StatsBy = (typeof STATS_BY)[number];

export interface StatsRow {
  key: string | number;
  packets: number;
  bytes: number;
  flows: number;
}

export interface StatsTotal {
  packets: number;
  bytes: number;
  flows: number;
}

export function totalsOf(flows: Iterable<Pick<Flow, 'packets' | 'packetsRev' | 'bytes' | 'bytesRev'>>): StatsTotal {
  const t = { packets: 0, bytes: 0, flows: 0 };
  for (const f of flows) {
    t.packets += f.packets + f.packetsRev;
    t.bytes += Number(f.bytes + f.bytesRev);
    t.flows++;
  }
  return t;
}
