// Realistic mixed traffic for the index benchmark, written straight to nanosecond pcap files: tens
// of thousands of clients talking to a few thousand servers in flows of heavy-tailed length (TCP
// with handshakes, data and ACKs, so sizes come out IMIX-like; DNS and other UDP; ICMP; ARP and
// LLDP), a share of them VLAN-tagged (some QinQ) and a share over IPv6. A few needles are planted
// at known, small shares (one host pair, one port, one VLAN) so the queries' expected answers are
// known and each matches well under 0.1% of the packets.
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface TrafficOptions {
  dir: string;
  /** Bytes of pcap to write in all (files are cut at fileBytes). */
  totalBytes: number;
  fileBytes: number;
  seed: number;
  startNs: bigint;
  /** The link rate the timestamps advance at (bits per second on the wire). */
  rateBps: number;
  clients?: number;
  servers?: number;
  /** Plant the needles (default true). The scaling step adds a second half without them, so the
   * answer stays the same while the store doubles. */
  needles?: boolean;
}

/** What the needles are, to query for. */
export const NEEDLES = {
  pair: { client: '10.250.7.9', server: '172.31.200.8' },
  port: 5432,
  vlan: 3999,
} as const;

export interface TrafficResult {
  files: string[];
  packets: number;
  bytes: number;
  firstNs: bigint;
  lastNs: bigint;
  needles: { pairPackets: number; portPackets: number; vlanPackets: number };
}

interface Flow {
  client: number; // index
  server: number;
  v6: boolean;
  proto: 6 | 17 | 1;
  cport: number;
  sport: number;
  vlans: number[];
  left: number; // packets still to send
  stage: number; // TCP: 0 syn, 1 synack, 2 ack, 3 data, 4 fin
  needle: 'pair' | 'port' | 'vlan' | undefined;
}

const CHUNK = 8 << 20;

export function writeTraffic(o: TrafficOptions): TrafficResult {
  let x = o.seed >>> 0 || 1;
  const r = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
  const zipf = (n: number) => Math.min(n - 1, Math.floor(n * Math.pow(r(), 3))); // heavy on low indices
  const clients = o.clients ?? 40_000;
  const servers = o.servers ?? 2_000;
  const flows: Flow[] = [];
  const ACTIVE = 3_000;
  const serverPorts = [443, 80, 22, 8080, 3306, 25, 993, 8443];
  let pairPackets = 0;
  let portPackets = 0;
  let vlanPackets = 0;

  const newFlow = (): Flow => {
    const kind = r();
    const needleRoll = r();
    const needle = o.needles === false ? undefined : needleRoll < 0.0002 ? 'pair' : needleRoll < 0.0004 ? 'port' : needleRoll < 0.0006 ? 'vlan' : undefined;
    const proto: Flow['proto'] = kind < 0.82 ? 6 : kind < 0.985 ? 17 : 1;
    const vlanRoll = r();
    let vlans: number[] = vlanRoll < 0.25 ? [10 + zipf(60) * 10] : vlanRoll < 0.28 ? [100 + zipf(8), 10 + zipf(60) * 10] : [];
    if (needle === 'vlan') vlans = [NEEDLES.vlan];
    // Host and port needles untagged: `tcpdump -r` (stored-file semantics) and extract (live
    // semantics, tags looked through) then mean the same packets by the same filter.
    if (needle === 'pair' || needle === 'port') vlans = [];
    const f: Flow = {
      client: Math.floor(r() * clients),
      server: zipf(servers),
      v6: r() < 0.12,
      proto,
      // Never the needle port by chance: its answer is known exactly.
      cport: ((p) => (p === NEEDLES.port ? p + 1 : p))(1024 + Math.floor(r() * 64000)),
      sport: proto === 17 ? (r() < 0.7 ? 53 : [123, 161, 514, 5060][zipf(4)]!) : serverPorts[zipf(serverPorts.length)]!,
      vlans,
      // Heavy-tailed: most flows are a handful of packets, a few carry most of the bytes.
      left: proto === 17 ? 2 : proto === 1 ? 2 : 6 + Math.floor(4 / Math.pow(r() + 1e-4, 0.9)),
      stage: 0,
      needle,
    };
    if (needle === 'pair') f.v6 = false;
    if (needle === 'port') f.proto = 6;
    if (needle === 'port') f.sport = NEEDLES.port;
    return f;
  };
  for (let i = 0; i < ACTIVE; i++) flows.push(newFlow());

  const files: string[] = [];
  let fd = -1;
  let fileBytes = 0;
  const buf = Buffer.alloc(CHUNK);
  let used = 0;
  let total = 0;
  let packets = 0;
  let ts = o.startNs;
  const flush = () => {
    if (used) writeSync(fd, buf, 0, used);
    used = 0;
  };
  const openNext = () => {
    if (fd >= 0) {
      flush();
      closeSync(fd);
    }
    const path = join(o.dir, `traffic-${String(files.length).padStart(4, '0')}.pcap`);
    fd = openSync(path, 'w');
    files.push(path);
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b23c4d, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(262144, 16);
    h.writeUInt32LE(1, 20);
    writeSync(fd, h);
    fileBytes = 24;
    total += 24;
  };
  openNext();

  const putIp4 = (b: Buffer, off: number, host: number, server: boolean) => {
    if (server) {
      b[off] = 172; b[off + 1] = 16 + (host >> 8 & 15); b[off + 2] = host & 255; b[off + 3] = 1 + (host >> 12);
    } else {
      b[off] = 10; b[off + 1] = host >> 16 & 255; b[off + 2] = host >> 8 & 255; b[off + 3] = host & 255;
    }
  };
  const putIp6 = (b: Buffer, off: number, host: number, server: boolean) => {
    b.fill(0, off, off + 16);
    b.writeUInt32BE(0x20010db8, off);
    b[off + 4] = server ? 0x53 : 0xc1;
    b.writeUInt32BE(host, off + 12);
  };

  while (total < o.totalBytes) {
    const slot = Math.floor(r() * ACTIVE);
    const f = flows[slot]!;
    const fromClient = f.proto === 6 ? f.stage === 0 || f.stage === 2 || (f.stage === 3 && r() < 0.45) || f.stage === 4 : f.left % 2 === 0;
    let payload = 0;
    let tcpFlags = 0x10;
    if (f.proto === 6) {
      if (f.stage === 0) tcpFlags = 0x02;
      else if (f.stage === 1) tcpFlags = 0x12;
      else if (f.stage === 3) {
        tcpFlags = 0x18;
        payload = fromClient ? (r() < 0.7 ? 0 : 40 + Math.floor(r() * 400)) : r() < 0.4 ? 1448 : Math.floor(r() * r() * 1448);
      } else if (f.stage === 4) tcpFlags = 0x11;
    } else if (f.proto === 17) payload = f.sport === 53 ? (fromClient ? 30 + Math.floor(r() * 30) : 60 + Math.floor(r() * 200)) : 40 + Math.floor(r() * 900);
    else payload = 56;
    const nonIp = r() < 0.004;
    const l3 = f.v6 ? 40 : 20;
    const l4 = f.proto === 6 ? 20 : 8;
    const tags = f.vlans.length * 4;
    const len = nonIp ? 60 : Math.max(60, 14 + tags + l3 + l4 + payload);
    if (fileBytes + 16 + len > o.fileBytes) openNext();
    if (used + 16 + len > CHUNK) flush();
    ts += BigInt(Math.ceil(((len + 24) * 8 * 1e9) / o.rateBps));
    const b = buf;
    const rec = used;
    b.writeUInt32LE(Number(ts / 1_000_000_000n), rec);
    b.writeUInt32LE(Number(ts % 1_000_000_000n), rec + 4);
    b.writeUInt32LE(len, rec + 8);
    b.writeUInt32LE(len, rec + 12);
    const p = rec + 16;
    b.fill(0, p, p + len);
    const cmac = 0x020000000000 + f.client;
    const smac = 0x040000000000 + f.server;
    b.writeUIntBE(fromClient ? smac : cmac, p, 6);
    b.writeUIntBE(fromClient ? cmac : smac, p + 6, 6);
    let off = p + 12;
    if (nonIp) {
      // ARP request (or LLDP now and then): what every mirror port also carries.
      b.writeUInt16BE(r() < 0.8 ? 0x0806 : 0x88cc, off);
    } else {
      for (let i = 0; i < f.vlans.length; i++) {
        b.writeUInt16BE(i === 0 && f.vlans.length > 1 ? 0x88a8 : 0x8100, off);
        b.writeUInt16BE(f.vlans[i]!, off + 2);
        off += 4;
      }
      b.writeUInt16BE(f.v6 ? 0x86dd : 0x0800, off);
      off += 2;
      const src = fromClient ? f.client : f.server;
      const dst = fromClient ? f.server : f.client;
      const ipLen = l3 + l4 + payload;
      if (f.v6) {
        b[off] = 0x60;
        b.writeUInt16BE(l4 + payload, off + 4);
        b[off + 6] = f.proto === 1 ? 58 : f.proto;
        b[off + 7] = 64;
        putIp6(b, off + 8, src, !fromClient);
        putIp6(b, off + 24, dst, fromClient);
      } else {
        b[off] = 0x45;
        b.writeUInt16BE(ipLen, off + 2);
        b.writeUInt16BE(packets & 0xffff, off + 4);
        b[off + 8] = 64;
        b[off + 9] = f.proto;
        if (f.needle === 'pair') {
          const [a, c] = fromClient ? [NEEDLES.pair.client, NEEDLES.pair.server] : [NEEDLES.pair.server, NEEDLES.pair.client];
          a.split('.').forEach((v, i) => (b[off + 12 + i] = +v));
          c.split('.').forEach((v, i) => (b[off + 16 + i] = +v));
        } else {
          putIp4(b, off + 12, src, !fromClient);
          putIp4(b, off + 16, dst, fromClient);
        }
      }
      off += l3;
      if (f.proto === 1) {
        b[off] = fromClient ? 8 : 0;
      } else {
        b.writeUInt16BE(fromClient ? f.cport : f.sport, off);
        b.writeUInt16BE(fromClient ? f.sport : f.cport, off + 2);
        if (f.proto === 6) {
          b[off + 12] = 0x50;
          b[off + 13] = tcpFlags;
        } else b.writeUInt16BE(l4 + payload, off + 4);
      }
      if (f.needle === 'pair') pairPackets++;
      else if (f.needle === 'port') portPackets++;
      else if (f.needle === 'vlan') vlanPackets++;
    }
    used += 16 + len;
    fileBytes += 16 + len;
    total += 16 + len;
    packets++;
    if (f.proto === 6 && f.stage < 3) f.stage++;
    else if (f.proto === 6 && f.stage === 3 && f.left <= 2) f.stage = 4;
    if (--f.left <= 0) flows[slot] = newFlow();
  }
  flush();
  closeSync(fd);
  return { files, packets, bytes: total, firstNs: o.startNs, lastNs: ts, needles: { pairPackets, portPackets, vlanPackets } };
}
