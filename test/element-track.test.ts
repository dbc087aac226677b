// The per-element counters of qe-capture (daemon/native/element-track.c), against traffic with
// known answers. First crafted files through `qe-capture --read --elements` (the packets' own time
// drives the SYN timeout, so every count and round trip is exact), then live on a veth pair: real
// TCP connections refused, SYNs to a silent address, a handshake slowed by netem, a DNS server
// answering SERVFAIL and an HTTP server answering 503 for some requests, with real clients.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHelperLine, type ElementsMessage, type HelperMessage } from '../daemon/src/capture/protocol.js';
import { elementsFileText, rttBucket, rttPercentileMs, type HelperElement } from '../daemon/src/elements/helper-file.js';
import { buildPcap } from '../daemon/src/pcap/format.js';
import { Lab } from '../daemon/src/util/netns.js';
import { helperPath } from './lib/cli.js';
import { ether, ipv4, udp } from './lib/index-traffic.js';

const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;
const MS = 1_000_000n;
const T0 = 1_764_000_000_000_000_000n;

const work = mkdtempSync(join(tmpdir(), 'qe-elem-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tcpSeg(sport: number, dport: number, flags: number, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(1, 4);
  h[12] = 0x50;
  h[13] = flags;
  h.writeUInt16BE(65535, 14);
  return Buffer.concat([h, p]);
}

const tcp4 = (src: string, dst: string, sport: number, dport: number, flags: number, payload?: Buffer | string) =>
  ether(1, 2, [], 0x0800, ipv4(src, dst, 6, tcpSeg(sport, dport, flags, payload)));
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
  const store = join(dir, 'store');
  mkdirSync(store);
  // In time order, as a capture is.
  const sorted = [...packets].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  writeFileSync(join(dir, 'in.pcap'), buildPcap(sorted.map((p) => ({ tsNs: p.at, data: p.data }))));
  writeFileSync(join(dir, 'elements'), elementsFileText(elements));
  const r = spawnSync(helperPath, ['--read', join(dir, 'in.pcap'), '--iface', 'crafted', '--dir', store, '--elements', join(dir, 'elements'), '--no-fsync'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  expect(r.status, r.stderr + r.stdout).toBe(0);
  const msgs = r.stdout.trim().split('\n').map(parseHelperLine);
  const errors = msgs.filter((m) => m.type === 'error');
  expect(errors).toEqual([]);
  const last = msgs.filter((m): m is ElementsMessage => m.type === 'elements').at(-1);
  expect(last, r.stdout).toBeDefined();
  return last!;
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
    const m = runRead(p, [{ filter: `host ${S}`, custom: ['icmp[icmptype] == icmp-unreach', 'tcp'] }, { filter: 'arp', custom: [] }]);
    expect(m.elements[0]).toMatchObject({ packets: 5, custom: [2, 2] });
    expect(m.elements[1]).toMatchObject({ packets: 0 });
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
