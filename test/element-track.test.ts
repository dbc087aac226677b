// The per-element counters of qe-capture (daemon/native/element-track.c), against traffic with
// known answers. First crafted files through `qe-capture --read --elements` (the packets' own time
// drives the SYN timeout, so every count and round trip is exact), then live on a veth pair: real
// TCP connections refused, SYNs to a silent address, a handshake slowed by netem, a DNS server
// answering SERVFAIL and an HTTP server answering 503 for some requests, with real clients.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { helperCommand, parseHelperLine, type ElementsMessage, type HelperMessage } from '../daemon/src/capture/protocol.js';
import { launchProcess } from '../daemon/src/capture/helper.js';
import { CaptureSupervisor } from '../daemon/src/capture/supervisor.js';
import type { Config } from '../daemon/src/config/config.js';
import { loadConfigFile } from '../daemon/src/config/load.js';
import { elementsFileText, rttBucket, rttPercentileMs, type HelperElement } from '../daemon/src/elements/helper-file.js';
import { buildPcap } from '../daemon/src/pcap/format.js';
import { Lab } from '../daemon/src/util/netns.js';
import { helperPath, root, sleep, writeConfig } from './lib/cli.js';
import { ether, ext, ipv4, ipv6, tcpSegment, udp } from './lib/index-traffic.js';

const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;
const MS = 1_000_000n;
const T0 = 1_764_000_000_000_000_000n;

const work = mkdtempSync(join(tmpdir(), 'qe-elem-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const tcp4 = (src: string, dst: string, sport: number, dport: number, flags: number, payload?: Buffer | string) =>
  ether(1, 2, [], 0x0800, ipv4(src, dst, 6, tcpSegment(sport, dport, flags, payload)));
const udp4 = (src: string, dst: string, sport: number, dport: number, payload: Buffer) => ether(1, 2, [], 0x0800, ipv4(src, dst, 17, udp(sport, dport, payload)));

/** A DNS message header (and a question's worth of bytes): QR, opcode and RCODE as given. */
function dns(qr: boolean, rcode: number, opcode = 0): Buffer {
  const b = Buffer.alloc(29);
  b.writeUInt16BE(0x1234, 0);
  b[2] = (qr ? 0x80 : 0) | (opcode << 3) | 1;
  b[3] = rcode;
  b.writeUInt16BE(1, 4);
  Buffer.from([3, 0x77, 0x77, 0x77, 1, 0x78, 0, 0, 1, 0, 1]).copy(b, 12);
  return b;
}

const withLength = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);

function runRead(packets: Array<{ at: bigint; data: Buffer }>, elements: HelperElement[]): ElementsMessage {
  const dir = mkdtempSync(join(work, 'read-'));
  // In time order, as a capture is.
  const sorted = [...packets].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  writeFileSync(join(dir, 'in.pcap'), buildPcap(sorted.map((p) => ({ tsNs: p.at, data: p.data }))));
  writeFileSync(join(dir, 'elements'), elementsFileText(elements));
  const run = (extra: string[]) => {
    const out = mkdtempSync(join(dir, 'store-'));
    const r = spawnSync(helperPath, ['--read', join(dir, 'in.pcap'), '--iface', 'crafted', '--dir', out, '--elements', join(dir, 'elements'), '--no-fsync', ...extra], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      // Files cut at 4 KiB make thousands of file_opened/file_closed lines.
      maxBuffer: 256 << 20,
    });
    expect(r.error).toBeUndefined();
    expect(r.status, r.stderr + r.stdout).toBe(0);
    const msgs = r.stdout.trim().split('\n').map(parseHelperLine);
    const errors = msgs.filter((m) => m.type === 'error');
    expect(errors).toEqual([]);
    const last = msgs.filter((m): m is ElementsMessage => m.type === 'elements').at(-1);
    expect(last, r.stdout).toBeDefined();
    return last!;
  };
  // The tracker finds its flows by its own lookup, or through the flow table's when the writer
  // builds one (files cut small so the table changes under it): the counts must not differ.
  const alone = run([]);
  const viaFlows = run(['--flows', '--file-size', '4096']);
  expect(viaFlows.elements).toEqual(alone.elements);
  return alone;
}

const C = '10.1.0.2', S = '10.1.0.1';

describe('element counters on crafted traffic (qe-capture --read)', () => {
  it('counts attempts, answers, resets, unanswered SYNs and the round trip by the flow', () => {
    const p: Array<{ at: bigint; data: Buffer }> = [];
    const at = (ms: number, data: Buffer) => p.push({ at: T0 + BigInt(ms) * MS, data });
    // Answered in 100 ms, then closed.
    at(0, tcp4(C, S, 40000, 443, SYN));
    at(100, tcp4(S, C, 443, 40000, SYN | ACK));
    at(101, tcp4(C, S, 40000, 443, ACK));
    at(150, tcp4(C, S, 40000, 443, FIN | ACK));
    // Retransmitted once: the round trip is from the latest SYN (1000 ms), 37 ms.
    at(200, tcp4(C, S, 40001, 443, SYN));
    at(1200, tcp4(C, S, 40001, 443, SYN));
    at(1237, tcp4(S, C, 443, 40001, SYN | ACK));
    // Refused: an RST-ACK answers the SYN.
    at(300, tcp4(C, S, 40002, 443, SYN));
    at(301, tcp4(S, C, 443, 40002, RST | ACK));
    // Never answered, retransmitted twice (one attempt), then a late SYN-ACK past the timeout counts nothing.
    at(400, tcp4(C, S, 40003, 443, SYN));
    at(1400, tcp4(C, S, 40003, 443, SYN));
    at(3400, tcp4(C, S, 40003, 443, SYN));
    at(3500, tcp4(S, C, 443, 40003, SYN | ACK));
    // Answered, then reset mid-connection: answered and reset.
    at(500, tcp4(C, S, 40004, 443, SYN));
    at(510, tcp4(S, C, 443, 40004, SYN | ACK));
    at(600, tcp4(S, C, 443, 40004, RST));
    // Seen mid-stream (no SYN): packets but no attempt.
    at(700, tcp4(C, S, 40005, 443, PSH | ACK, 'x'));
    at(701, tcp4(S, C, 443, 40005, RST));
    // Another element's traffic, and a later packet moving time past every timeout.
    at(800, tcp4(C, '10.9.9.9', 40006, 80, SYN));
    at(9000, tcp4(C, '10.9.9.8', 40007, 80, ACK));
    const m = runRead(p, [
      { filter: `host ${S} and tcp port 443`, custom: [] },
      { filter: 'host 10.9.9.9', custom: [] },
    ]);
    expect(m.generation).toBe(1);
    const [e, other] = m.elements;
    expect(e).toMatchObject({ packets: 18, tcp_attempts: 5, tcp_answered: 3, tcp_reset: 2, tcp_unanswered: 1, dns_answers: 0, http_responses: 0, custom: [] });
    expect(e!.last_ns).toBe(T0 + 3500n * MS);
    expect(e!.bytes).toBe(p.slice(0, 18).reduce((s, x) => s + x.data.length, 0));
    expect(new Map(e!.rtt_hist)).toEqual(new Map([[rttBucket(100_000), 1], [rttBucket(37_000), 1], [rttBucket(10_000), 1]]));
    expect(Math.abs(rttPercentileMs(e!.rtt_hist)! - 100) / 100).toBeLessThan(0.09);
    expect(other).toMatchObject({ packets: 1, tcp_attempts: 1, tcp_unanswered: 1, tcp_answered: 0 });
  });

  it('decides a flow by its first packet, for both directions', () => {
    const m = runRead(
      [
        { at: T0, data: tcp4(C, S, 41000, 80, SYN) },
        { at: T0 + MS, data: tcp4(S, C, 80, 41000, SYN | ACK) },
        { at: T0 + 2n * MS, data: tcp4(C, S, 41000, 80, ACK) },
        // The other way round: its first packet is from the server, so `src host C` does not take it.
        { at: T0 + 3n * MS, data: tcp4(S, C, 80, 41001, PSH | ACK, 'y') },
        { at: T0 + 4n * MS, data: tcp4(C, S, 41001, 80, ACK) },
      ],
      [{ filter: `src host ${C}`, custom: [] }],
    );
    expect(m.elements[0]).toMatchObject({ packets: 3, tcp_attempts: 1, tcp_answered: 1 });
  });

  it('reads DNS response codes over UDP and TCP, and HTTP status lines from the server side only', () => {
    const p: Array<{ at: bigint; data: Buffer }> = [];
    let t = 0;
    const at = (data: Buffer) => p.push({ at: T0 + BigInt(t++) * MS, data });
    at(udp4(C, S, 5000, 53, dns(false, 0))); // a query
    at(udp4(S, C, 53, 5000, dns(true, 0)));
    at(udp4(S, C, 53, 5001, dns(true, 2))); // SERVFAIL
    at(udp4(S, C, 53, 5002, dns(true, 3))); // NXDOMAIN
    at(udp4(S, C, 53, 5003, dns(true, 0, 9))); // opcode 9: not DNS
    at(udp4(S, C, 53, 5004, dns(true, 2).subarray(0, 11))); // cut before the header ends
    at(udp4(S, C, 5353, 5005, dns(true, 2))); // mDNS port: not read
    at(tcp4(C, S, 5006, 53, SYN));
    at(tcp4(S, C, 53, 5006, SYN | ACK));
    at(tcp4(S, C, 53, 5006, PSH | ACK, withLength(dns(true, 5)))); // REFUSED over TCP
    at(tcp4(C, S, 42000, 8080, SYN));
    at(tcp4(S, C, 8080, 42000, SYN | ACK));
    at(tcp4(C, S, 42000, 8080, PSH | ACK, 'POST / HTTP/1.1\r\n\r\nHTTP/1.1 500 in a body')); // request
    at(tcp4(C, S, 42000, 8080, PSH | ACK, 'HTTP/1.1 503 from the client side\r\n'));
    at(tcp4(S, C, 8080, 42000, PSH | ACK, 'HTTP/1.1 200 OK\r\n\r\n'));
    at(tcp4(S, C, 8080, 42000, PSH | ACK, 'HTTP/1.1 503 Service Unavailable\r\n'));
    at(tcp4(S, C, 8080, 42000, PSH | ACK, 'HTTP/1.0 502')); // the payload ends after the code
    at(tcp4(S, C, 8080, 42000, PSH | ACK, 'HTTP/1.1 5033 no\r\n'));
    at(tcp4(S, C, 8080, 42001, PSH | ACK, 'HTTP/1.1 504 Gateway Timeout\r\n')); // mid-stream: side unknown, read
    const m = runRead(p, [
      { filter: 'port 53 or port 5353', custom: [] },
      { filter: 'tcp port 8080', custom: [] },
    ]);
    expect(m.elements[0]).toMatchObject({ dns_answers: 4, dns_errors: 3, http_responses: 0 });
    expect(m.elements[1]).toMatchObject({ http_responses: 4, http_errors: 3, dns_answers: 0 });
  });

  it('counts custom filters on the element\'s own packets, and leaves non-IP frames out', () => {
    const icmp = (src: string, dst: string, type: number) => ether(1, 2, [], 0x0800, ipv4(src, dst, 1, Buffer.from([type, 1, 0, 0, 0, 0, 0, 0])));
    const arp = ether(1, 2, [], 0x0806, Buffer.concat([Buffer.from([0, 1, 8, 0, 6, 4, 0, 1]), Buffer.alloc(6, 2), Buffer.from([10, 1, 0, 1]), Buffer.alloc(6), Buffer.from([10, 1, 0, 2])]));
    const p = [
      tcp4(C, S, 43000, 443, SYN),
      icmp(S, C, 3), // unreachable
      icmp(S, C, 3),
      icmp(C, S, 8),
      icmp('10.7.7.7', C, 3), // another host: not the element's
      arp,
      tcp4(S, C, 443, 43000, SYN | ACK),
    ].map((data, i) => ({ at: T0 + BigInt(i) * MS, data }));
    // The third element shares two custom texts with the first (in another order): one program
    // each, its verdict reused within a packet and never carried to the next.
    const m = runRead(p, [
      { filter: `host ${S}`, custom: ['icmp[icmptype] == icmp-unreach', 'tcp'] },
      { filter: 'arp', custom: [] },
      { filter: `host ${C}`, custom: ['tcp', 'icmp', 'icmp[icmptype] == icmp-unreach'] },
    ]);
    expect(m.elements[0]).toMatchObject({ packets: 5, custom: [2, 2] });
    expect(m.elements[1]).toMatchObject({ packets: 0 });
    expect(m.elements[2]).toMatchObject({ packets: 6, custom: [2, 4, 3] });
  });

  it('gives every filter libpcap\'s verdict: scratch-memory arithmetic (run inlined) and protochain (run by libpcap)', () => {
    // qe_bpf_run runs the programs qe_bpf_usable accepts; protochain's jump back, so libpcap runs
    // them. UDP flows on ports no field parser answers take the tracker's short path.
    const p = [
      udp4(C, S, 5000, 6000, Buffer.alloc(100)), // IP length 128, TTL 64
      udp4(C, S, 5000, 6000, Buffer.alloc(30)), // 58
      udp4(S, C, 6000, 5000, Buffer.alloc(300)), // 328
      ether(1, 2, [], 0x86dd, ipv6('fd00::1', 'fd00::2', 17, udp(7000, 8000, 50))),
      ether(1, 2, [], 0x86dd, ipv6('fd00::1', 'fd00::2', 17, udp(7000, 8000, 50), [ext.hopByHop()])),
    ].map((data, i) => ({ at: T0 + BigInt(i) * MS, data }));
    const m = runRead(p, [
      // `len - 14 >= ip[2:2]` and the sum keep values in scratch words (st/ld M[k]).
      { filter: `host ${C} or host ${S}`, custom: ['len - 14 >= ip[2:2]', 'ip[2:2] + ip[8] > ip[9] * 4 + 100', 'len - 14 < ip[2:2]'] },
      { filter: 'ip6 protochain 17', custom: ['ip6 protochain 17', 'ip6 and udp'] },
    ]);
    expect(m.elements[0]).toMatchObject({ packets: 3, custom: [3, 2, 0] });
    expect(m.elements[1]).toMatchObject({ packets: 2, custom: [2, 1] });
  });
});

describe('the tracker\'s bounds', () => {
  it('forgets a flow idle for two minutes: its next packet starts a new flow, decided again', () => {
    const m = runRead(
      [
        { at: T0, data: tcp4(S, C, 80, 41000, PSH | ACK, 'a') }, // first from the server: `src host C` does not take the flow
        { at: T0 + 60_000n * MS, data: tcp4(C, S, 41000, 80, ACK) }, // still that flow
        { at: T0 + 181_000n * MS, data: tcp4(C, S, 41000, 80, ACK) }, // 121 s idle: a new flow, first from C
        { at: T0 + 181_001n * MS, data: tcp4(S, C, 80, 41000, ACK) },
      ],
      [{ filter: `src host ${C}`, custom: [] }],
    );
    expect(m.elements[0]).toMatchObject({ packets: 2, tcp_attempts: 0 });
  });

  it.each([
    ['a few flows (the sweep walks the flows)', 100],
    ['many flows (the sweep walks the chains)', 20_000],
  ])('forgets the idle flows among %s and keeps the others', (_what, n) => {
    // Each flow's first packet comes from the server (10.9.0.1): `src net 10.2.0.0/16` does not take
    // it. The even ones are heard again at 100 s, the odd ones not: at 130 s the odd ones are new
    // flows whose first packet is the client's, the even ones still the server's.
    const client = (i: number) => `10.2.${i >> 8}.${i & 255}`;
    const p: Array<{ at: bigint; data: Buffer }> = [];
    for (let i = 0; i < n; i++) p.push({ at: T0 + BigInt(i) * 1000n, data: tcp4('10.9.0.1', client(i), 443, 30000, ACK) });
    for (let i = 0; i < n; i += 2) p.push({ at: T0 + 100_000n * MS + BigInt(i) * 1000n, data: tcp4('10.9.0.1', client(i), 443, 30000, ACK) });
    for (let i = 0; i < n; i++) p.push({ at: T0 + 130_000n * MS + BigInt(i) * 1000n, data: tcp4(client(i), '10.9.0.1', 30000, 443, ACK) });
    const m = runRead(p, [{ filter: 'src net 10.2.0.0/16', custom: [] }]);
    expect(m.elements[0]).toMatchObject({ packets: n / 2 });
  });

  it('with its flow table full, still counts every packet (the handshakes past the bound are not followed)', () => {
    const flows = 131_072 + 5000; // QE_ELEM_TRACK_FLOWS + some
    const p: Array<{ at: bigint; data: Buffer }> = [];
    for (let i = 0; i < flows; i++) p.push({ at: T0 + BigInt(i) * 1000n, data: tcp4(`10.2.${i >> 16}.${(i >> 8) & 255}`, S, 1024 + (i & 255), 443, SYN) });
    p.push({ at: T0 + 10_000n * MS, data: tcp4(C, S, 1, 443, ACK) });
    const m = runRead(p, [{ filter: 'tcp port 443', custom: ['tcp[tcpflags] == tcp-syn'] }]);
    expect(m.elements[0]).toMatchObject({ packets: flows + 1, custom: [flows], tcp_attempts: 131_072, tcp_unanswered: 131_072 });
  });
});

describe('the elements file, refused', () => {
  it.each([
    ['another first line', 'qe-elements 2\n', /line 1: not an elements file of version 1/],
    ['an element out of order', 'qe-elements 1\nelement 1 tcp\n', /line 2: expected 'element 0 FILTER'/],
    ['a custom filter before its element', 'qe-elements 1\ncustom 0 0 tcp\n', /line 2: expected 'custom 0 0 FILTER'/],
    ['a bad filter', 'qe-elements 1\nelement 0 tcp\nelement 1 tcp port and\n', /line 3: element 1: filter 'tcp port and': .*syntax error/],
    ['a cut last line', 'qe-elements 1\nelement 0 tcp', /line 2: no newline at the end/],
  ])('at start, with %s: capture goes on without elements and says why', (_what, text, why) => {
    const dir = mkdtempSync(join(work, 'bad-'));
    writeFileSync(join(dir, 'in.pcap'), buildPcap([{ tsNs: T0, data: tcp4(C, S, 1, 2, SYN) }]));
    writeFileSync(join(dir, 'elements'), text);
    const r = spawnSync(helperPath, ['--read', join(dir, 'in.pcap'), '--iface', 'x', '--dir', dir, '--elements', join(dir, 'elements'), '--no-fsync'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(r.status).toBe(0);
    const msgs = r.stdout.trim().split('\n').map(parseHelperLine);
    const err = msgs.find((m) => m.type === 'error');
    expect(err).toMatchObject({ code: 'bad_elements', fatal: false });
    expect((err as { message: string }).message).toMatch(why);
    expect(msgs.some((m) => m.type === 'elements')).toBe(false);
    expect(msgs.find((m) => m.type === 'stats')).toMatchObject({ written: 1 });
  });
});

// ---- live ----

const tag = `${process.pid % 100000}`;
const NS_C = `qe-enc-${tag}`, NS_S = `qe-ens-${tag}`;
// Client ns: DEV_C. Root: DEV_S (captured) and DEV_B, bridged by delay-bridge.py. Server ns: DEV_V.
const DEV_C = `qeen${tag}c`, DEV_S = `qeen${tag}s`, DEV_B = `qeen${tag}b`, DEV_V = `qeen${tag}v`;
const SERVER = '10.77.0.1', CLIENT = '10.77.0.2', SILENT = '10.77.0.99';
const DELAY_MS = 100;
const inNs = (ns: string, ...args: string[]) => execa('ip', ['netns', 'exec', ns, ...args], { reject: false, timeout: 20_000 });

/** An HTTP server answering 503 on /fail, and a DNS server answering SERVFAIL for names starting with "bad". */
const SERVERS = `
const http = require('node:http'), dgram = require('node:dgram');
http.createServer((req, res) => { res.writeHead(req.url === '/fail' ? 503 : 200, { connection: 'close' }); res.end('x'); })
  .listen(8080, '${SERVER}', () => {
    const s = dgram.createSocket('udp4');
    s.on('message', (q, from) => {
      if (q.length < 12) return;
      let o = 12;
      while (o < q.length && q[o] !== 0) o += q[o] + 1;
      const question = q.subarray(12, o + 5);
      const bad = q.subarray(13, 16).toString() === 'bad';
      const h = Buffer.from(q.subarray(0, 12));
      h[2] = 0x80 | (q[2] & 0x79);
      h[3] = 0x80 | (bad ? 2 : 0);
      h.writeUInt16BE(1, 4); h.writeUInt16BE(bad ? 0 : 1, 6); h.writeUInt32BE(0, 8);
      const answer = bad ? Buffer.alloc(0) : Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 77, 0, 1]);
      s.send(Buffer.concat([h, question, answer]), from.port, from.address);
    });
    s.bind(53, '${SERVER}', () => console.log('ready'));
  });`;

function startedChild(cmd: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${cmd} ${args.join(' ')} ended (${code}) before it was ready`)));
    child.stdout!.once('data', () => resolve(child));
  });
}

describe('element counters live, through the supervisor', () => {
  const lab = new Lab();
  const children: ChildProcess[] = [];
  let sup: CaptureSupervisor;
  const seen: ElementsMessage[] = [];
  const messages: HelperMessage[] = [];
  let config: Config;
  /** What the helpers count: the supervisor's elements, whatever shape the config gives them. */
  let counted: HelperElement[] = [
    { filter: `host ${SERVER} and tcp port 8080`, custom: [] },
    { filter: 'tcp port 8099', custom: [] },
    { filter: `host ${SILENT}`, custom: [] },
    { filter: 'udp port 53', custom: [] },
    { filter: `host ${SERVER}`, custom: ['icmp[icmptype] == icmp-unreach'] },
  ];

  beforeAll(async () => {
    await lab.namespace(NS_C);
    await lab.namespace(NS_S);
    await lab.veth(DEV_C, NS_C, DEV_S, undefined);
    await lab.veth(DEV_V, NS_S, DEV_B, undefined);
    await inNs(NS_C, 'ip', 'addr', 'add', `${CLIENT}/24`, 'dev', DEV_C);
    await inNs(NS_S, 'ip', 'addr', 'add', `${SERVER}/24`, 'dev', DEV_V);
    // The bridge copies frames as they are: their checksums must be whole, not left to an offload.
    await inNs(NS_C, 'ethtool', '-K', DEV_C, 'tx', 'off');
    await inNs(NS_S, 'ethtool', '-K', DEV_V, 'tx', 'off');
    // The silent address answers nothing: its frames go to a MAC no one has.
    await inNs(NS_C, 'ip', 'neigh', 'add', SILENT, 'lladdr', '02:00:00:00:00:99', 'dev', DEV_C);
    // Every frame from the server's side reaches the capture point DELAY_MS late: the handshake
    // round trip seen there is DELAY_MS (sch_netem is not in every kernel; this bridge is).
    children.push(await startedChild('python3', [join(root, 'test', 'lib', 'delay-bridge.py'), DEV_S, DEV_B, String(DELAY_MS)]));
    const script = join(work, 'servers.js');
    writeFileSync(script, SERVERS);
    children.push(await startedChild('ip', ['netns', 'exec', NS_S, process.execPath, script]));
    const dir = mkdtempSync(join(work, 'live-'));
    mkdirSync(join(dir, 'store'));
    config = await loadConfigFile(await writeConfig(dir, { interfaces: [DEV_S], paths: [join(dir, 'store')], flows: false, index_fields: [], metrics_listen: false, api_listen: false }));
    sup = new CaptureSupervisor(config, () => [], launchProcess, () => counted);
    sup.on('elements', (_iface, m) => seen.push(m));
    sup.on('message', (m) => messages.push(m));
    sup.start();
    await sup.waitUntilCapturing();
  }, 60_000);

  afterAll(async () => {
    await sup?.stop();
    for (const c of children) c.kill('SIGTERM');
    await lab.cleanup();
  });

  const latest = () => seen.at(-1);
  async function until(what: string, ok: (m: ElementsMessage) => boolean, ms = 15_000): Promise<ElementsMessage> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const m = latest();
      if (m && ok(m)) return m;
      await sleep(200);
    }
    throw new Error(`${what}: not seen within ${ms} ms; last: ${JSON.stringify(latest(), (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
  }

  it('counts refused and unanswered connections, the handshake, DNS and HTTP errors and a custom share', async () => {
    await until('a first elements message', () => true);
    for (const path of ['/a', '/b', '/c', '/fail']) expect((await inNs(NS_C, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${SERVER}:8080${path}`)).stdout).toBe(path === '/fail' ? '503' : '200');
    for (let i = 0; i < 2; i++) expect((await inNs(NS_C, 'curl', '-s', `http://${SERVER}:8099/`)).exitCode).toBe(7); // refused
    const lookups = await inNs(NS_C, process.execPath, '-e', `
      const { Resolver } = require('node:dns').promises;
      const r = new Resolver({ timeout: 3000, tries: 1 });
      r.setServers(['${SERVER}']);
      (async () => { for (const n of ['ok1.test', 'bad1.test', 'ok2.test', 'bad2.test', 'ok3.test'])
        console.log(n, await r.resolve4(n).then((a) => a.join(','), (e) => e.code)); })();`);
    expect(lookups.stdout.split('\n')).toEqual(['ok1.test 10.77.0.1', 'bad1.test ESERVFAIL', 'ok2.test 10.77.0.1', 'bad2.test ESERVFAIL', 'ok3.test 10.77.0.1']);
    // Three datagrams to a closed port: three ICMP port unreachables come back.
    const probes = await inNs(NS_C, process.execPath, '-e', `
      const s = require('node:dgram').createSocket('udp4'); let n = 0;
      const t = setInterval(() => { s.send('x', 9999, '${SERVER}'); if (++n === 3) { clearInterval(t); setTimeout(() => s.close(), 300); } }, 300);`);
    expect(probes.exitCode, probes.stderr).toBe(0);
    // Last, so no later packet moves the counters' clock: the SYN timeout must pass by the helper's tick.
    expect((await inNs(NS_C, 'curl', '-s', '--connect-timeout', '1.5', `http://${SILENT}/`)).exitCode).toBe(28); // timed out

    const m = await until('the silent SYN counted unanswered', (x) => x.elements[2]!.tcp_unanswered === 1 && x.elements[4]!.custom[0] === 3);
    const [web, refused, silent, dns, server] = m.elements;
    expect(m.generation).toBe(1);
    expect(web).toMatchObject({ tcp_attempts: 4, tcp_answered: 4, tcp_reset: 0, tcp_unanswered: 0, http_responses: 4, http_errors: 1, dns_answers: 0 });
    // Bucket of 100 ms: [92.7, 110.2) ms.
    const rtt = rttPercentileMs(web!.rtt_hist)!;
    expect(rtt).toBeGreaterThan(92);
    expect(rtt).toBeLessThan(111);
    expect(refused).toMatchObject({ tcp_attempts: 2, tcp_reset: 2, tcp_answered: 0, tcp_unanswered: 0 });
    expect(silent).toMatchObject({ tcp_attempts: 1, tcp_answered: 0, tcp_reset: 0, tcp_unanswered: 1 });
    expect(silent!.packets).toBeGreaterThanOrEqual(2); // the SYN and its retransmission
    expect(dns).toMatchObject({ dns_answers: 5, dns_errors: 2, tcp_attempts: 0 });
    expect(server!.custom).toEqual([3]);
    expect(server!.packets).toBeGreaterThan(web!.packets + refused!.packets);
    expect(server!.last_ns).toBeGreaterThan(0n);
  }, 60_000);

  it('keeps the running set when a re-read fails, and restarts the counters with a new generation on a reload', async () => {
    sup.command(DEV_S, helperCommand.elements(join(work, 'no-such-file')));
    const end = Date.now() + 5000;
    while (!messages.some((x) => x.type === 'error' && x.code === 'bad_elements') && Date.now() < end) await sleep(100);
    const err = messages.find((x) => x.type === 'error' && x.code === 'bad_elements') as { message: string; fatal: boolean } | undefined;
    expect(err?.message).toMatch(/elements not changed: .*no-such-file: No such file or directory/);
    expect(err?.fatal).toBe(false);
    const before = seen.length;
    await until('another message of the same set', (x) => seen.length > before + 1 && x.generation === 1 && x.elements.length === 5);

    counted = [{ filter: 'udp port 53', custom: [] }];
    await sup.reload(config);
    const m = await until('the new set', (x) => x.generation === 2);
    expect(m.elements).toHaveLength(1);
    expect(m.elements[0]).toMatchObject({ packets: 0, dns_answers: 0 });
    await inNs(NS_C, process.execPath, '-e', `const r = new (require('node:dns').promises.Resolver)({ tries: 1 }); r.setServers(['${SERVER}']); r.resolve4('bad.test').catch(() => {});`);
    await until('the new set counting', (x) => x.generation === 2 && x.elements[0]!.dns_errors === 1);
    // No element left: the helper stops sending them.
    counted = [];
    await sup.reload(config);
    await sleep(1500);
    const count = seen.length;
    await sleep(1500);
    expect(seen.length).toBe(count);
  }, 60_000);
});
