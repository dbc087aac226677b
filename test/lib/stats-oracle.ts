// The statistics written plainly from merged Flow objects, by the rules in daemon/src/flows/stats.ts's
// header: what qe-flowstat's rows are held to.
import { addressText } from '../../daemon/src/flows/address.js';
import type { Flow } from '../../daemon/src/flows/merge.js';
import { protoLabel } from '../../daemon/src/flows/render.js';
import type { StatsBy, StatsRow } from '../../daemon/src/flows/stats.js';

type F = Pick<Flow, 'iface' | 'ipVersion' | 'proto' | 'sport' | 'dport' | 'vlan' | 'src' | 'dst' | 'packets' | 'packetsRev' | 'bytes' | 'bytesRev'>;

const ORDER = new Intl.Collator('en', { numeric: true });

export function oracleRows(flows: Iterable<F>, by: StatsBy, top?: number): StatsRow[] {
  const rows = new Map<string | number, StatsRow>();
  const add = (key: string | number, f: F, flow: boolean) => {
    const r = rows.get(key) ?? { key, packets: 0, bytes: 0, flows: 0 };
    r.packets += f.packets + f.packetsRev;
    r.bytes += Number(f.bytes) + Number(f.bytesRev);
    if (flow) r.flows++;
    rows.set(key, r);
  };
  for (const f of flows) {
    const ip = f.ipVersion !== 0;
    const s = addressText(f.src);
    const d = addressText(f.dst);
    if (by === 'host' && ip) {
      add(s, f, true);
      add(d, f, d !== s);
    } else if (by === 'src' && ip) add(s, f, true);
    else if (by === 'dst' && ip) add(d, f, true);
    else if (by === 'conversation' && ip) {
      const [lo, hi] = Buffer.compare(f.src, f.dst) <= 0 ? [s, d] : [d, s];
      add(`${lo} <-> ${hi}`, f, true);
    } else if (by === 'port' && ip && [6, 17, 132].includes(f.proto)) add(f.dport, f, true);
    else if (by === 'proto') add(protoLabel(f), f, true);
    else if (by === 'vlan') add(f.vlan.length ? f.vlan.join('.') : 'untagged', f, true);
    else if (by === 'iface') add(f.iface, f, true);
  }
  const sorted = [...rows.values()].sort((a, b) => b.bytes - a.bytes || b.packets - a.packets || ORDER.compare(String(a.key), String(b.key)));
  return top === undefined ? sorted : sorted.slice(0, top);
}
