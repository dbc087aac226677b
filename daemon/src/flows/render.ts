// A merged flow as people and tools read it: the `--json` object (the keys of issue #18, in that
// order), a CSV row of the same keys, or a line for the terminal.
import { formatCount, formatSize } from '../config/units.js';
import { formatIsoNs } from '../time/format-time.js';
import { addressText } from './address.js';
import { ICMP, ICMP6, communityId } from './community-id.js';
import { FLOW_RF } from './format.js';
import type { Flow } from './merge.js';

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'ipv6-icmp' };
// Frames that are not IP have no protocol number: they are named by EtherType.
const ETHERTYPE_NAMES: Record<number, string> = { 0x0806: 'arp', 0x8035: 'rarp', 0x88cc: 'lldp', 0x888e: 'eapol', 0x88f7: 'ptp', 0x8809: 'slow' };

/** `tcp`, `udp`, `icmp`, `ipv6-icmp` or the IP protocol number; for a non-IP record the EtherType's name (`arp`, `lldp`...) or `ethertype-0x88b5`. */
export function protoLabel(f: { ipVersion: number; proto: number; sport: number }): string | number {
  if (f.ipVersion === 0) return ETHERTYPE_NAMES[f.sport] ?? `ethertype-0x${f.sport.toString(16).padStart(4, '0')}`;
  return PROTO_NAMES[f.proto] ?? f.proto;
}

const TCP_FLAG_LETTERS = 'FSRPAUEC'; // bit 0 (FIN) upwards

/** The TCP flags seen in either direction, as letters from the highest bit down (nfdump's order): "APRSF". */
export function tcpFlagsText(bits: number): string {
  let s = '';
  for (let i = 7; i >= 0; i--) if (bits & (1 << i)) s += TCP_FLAG_LETTERS[i];
  return s;
}

export interface FlowJson {
  community_id: string | null;
  iface: string;
  vlan: number[];
  proto: string | number;
  src: string | null;
  sport: number | null;
  dst: string | null;
  dport: number | null;
  first: string;
  last: string;
  packets: number;
  bytes: number;
  packets_rev: number;
  bytes_rev: number;
  tcp_flags: string | null;
  syn: number;
  synack: number;
  fin: number;
  rst: number;
  rtt_ms: number | null;
}

const PORTED = new Set([6, 17, 132, ICMP, ICMP6]);

export function flowJson(f: Flow): FlowJson {
  const ip = f.ipVersion !== 0;
  const ported = ip && PORTED.has(f.proto);
  return {
    // The spec covers IP flows only; a frame that is not IP has none.
    community_id: ip ? communityId(f) : null,
    iface: f.iface,
    vlan: f.vlan,
    proto: protoLabel(f),
    src: ip ? addressText(f.src) : null,
    sport: ported ? f.sport : null,
    dst: ip ? addressText(f.dst) : null,
    dport: ported ? f.dport : null,
    first: formatIsoNs(f.firstNs),
    last: formatIsoNs(f.lastNs),
    packets: f.packets,
    bytes: Number(f.bytes),
    packets_rev: f.packetsRev,
    bytes_rev: Number(f.bytesRev),
    tcp_flags: f.proto === 6 && ip ? tcpFlagsText(f.tcpFlagsFwd | f.tcpFlagsRev) : null,
    syn: f.syn,
    synack: f.synack,
    fin: f.fin,
    rst: f.rst,
    rtt_ms: f.flags & FLOW_RF.rtt ? f.rttUs / 1000 : null,
  };
}

export const CSV_KEYS: (keyof FlowJson)[] = ['community_id', 'iface', 'vlan', 'proto', 'src', 'sport', 'dst', 'dport', 'first', 'last', 'packets', 'bytes', 'packets_rev', 'bytes_rev', 'tcp_flags', 'syn', 'synack', 'fin', 'rst', 'rtt_ms'];

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = Array.isArray(v) ? v.join('.') : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function flowCsv(j: FlowJson): string {
  return CSV_KEYS.map((k) => csvCell(j[k])).join(',');
}

function end(addr: string | null, port: number | null): string {
  if (addr === null) return '-';
  const a = addr.includes(':') ? `[${addr}]` : addr;
  return port === null ? a : `${a}:${port}`;
}

/** One line for the terminal: when, where, who to whom, how much each way, and how it went. */
export function flowLine(j: FlowJson): string {
  const vlan = j.vlan.length ? ` vlan ${j.vlan.join('.')}` : '';
  const extra = [j.tcp_flags ? `flags ${j.tcp_flags}` : '', j.rtt_ms !== null ? `rtt ${j.rtt_ms}ms` : ''].filter(Boolean).join(' ');
  return (
    `${j.first} ${j.iface}${vlan} ${String(j.proto).padEnd(4)} ${end(j.src, j.sport)} -> ${end(j.dst, j.dport)}` +
    `  ${formatCount(j.packets)} pkts ${formatSize(j.bytes)} / ${formatCount(j.packets_rev)} pkts ${formatSize(j.bytes_rev)}` +
    `${extra ? `  ${extra}` : ''}`
  );
}
