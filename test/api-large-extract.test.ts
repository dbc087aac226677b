// A 2 GB extraction over HTTPS while the daemon captures a veth pair at a steady rate: the download
// is whole (every byte of the range's packets) and capture loses nothing, as it loses nothing at
// that rate without the download (issue 19: Stenographer's users saw large exports starve capture).
// The 2 GB store is made quickly: a generated pcap imported with `qe-packets capture --read` (the
// same write path as live capture: index, flow tables, rotation). Live: run under the live-test lock.
// Takes about 30 s on the 2-core test machine (2.7 s to generate, 6 s to import, 11 s to download;
// the log lines say how the time is spent).
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeGlobalHeader } from '../daemon/src/pcap/format.js';
import { formatIsoNs } from '../daemon/src/time/format-time.js';
import { BASE_NS, frame } from './lib/fixture.js';
import { testFrames } from './lib/frames.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';
import { RunningCapture, cli, sleep, startCapture, tempDir, writeConfig } from './lib/cli.js';

const FRAME_LEN = 1400;
/** Records in the store: 16-byte record header and the frame each; just over 2 GB in all. */
const PACKETS = 1_450_000;
const STEP_NS = 10_000n; // 100,000 packets a second of store time: 14.5 s in all

let lab: Lab | undefined;
let dir: string | undefined;
const running: RunningCapture[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) if (r.proc.exitCode === null) await r.stop('SIGKILL');
  await lab?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
  delete process.env.QE_PACKETS_STATE_DIR;
  delete process.env.QE_PACKETS_LOG_DIR;
});

/** A nanosecond pcap of PACKETS UDP frames of 16 flows, written in 16 MB chunks. */
function writeBigPcap(path: string): void {
  const pad = FRAME_LEN - 14 - 20 - 8; // Ethernet, IPv4, UDP headers
  const bodies = Array.from({ length: 16 }, (_, i) => frame({ src: `10.77.0.${1 + (i % 4)}`, dst: `10.77.1.${1 + (i >> 2)}`, proto: 'udp', sport: 40000 + i, dport: 9000, payload: pad, fill: i }));
  expect(bodies.every((b) => b.length === FRAME_LEN)).toBe(true);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, encodeGlobalHeader({ nanos: true, snaplen: 65535, linktype: 1 }));
    const per = 16 + FRAME_LEN;
    const chunk = Buffer.alloc(Math.floor((16 << 20) / per) * per);
    let i = 0;
    while (i < PACKETS) {
      let off = 0;
      for (; off < chunk.length && i < PACKETS; i++, off += per) {
        const ts = BASE_NS + BigInt(i) * STEP_NS;
        chunk.writeUInt32LE(Number(ts / 1_000_000_000n), off);
        chunk.writeUInt32LE(Number(ts % 1_000_000_000n), off + 4);
        chunk.writeUInt32LE(FRAME_LEN, off + 8);
        chunk.writeUInt32LE(FRAME_LEN, off + 12);
        bodies[i % 16]!.copy(chunk, off + 16);
      }
      writeSync(fd, chunk, 0, off);
    }
  } finally {
    closeSync(fd);
  }
}

/** Reads the whole answer as fast as it comes; its status, byte count and first bytes. */
function download(url: string, token: string, ca: Buffer): Promise<{ status: number; bytes: number; head: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { method: 'GET', headers: { authorization: `Bearer ${token}` }, agent: false, ca }, (res) => {
      let bytes = 0;
      const head: Buffer[] = [];
      res.on('data', (d: Buffer) => {
        if (bytes < 64) head.push(d.subarray(0, 64));
        bytes += d.length;
      });
      res.on('end', () => resolve({ status: res.statusCode!, bytes, head: Buffer.concat(head).subarray(0, 24) }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

type Counters = Record<'kernel_drops' | 'if_drops' | 'writer_drops' | 'store_full_drops' | 'written', number>;

/** The interface's counters once `sent` frames are written, or after 20 s (a loaded machine's
 *  capture and the once-a-second stats report lag the sender by a moment). */
async function countersOf(config: string, iface: string, sent: number): Promise<Counters> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    await sleep(1000);
    const status = JSON.parse((await cli(['status', '--json', '--config', config])).stdout) as { figures: { interfaces: { name: string; counters: Counters }[] } };
    const c = status.figures.interfaces.find((i) => i.name === iface)!.counters;
    if (c.written >= sent || Date.now() > deadline) return c;
  }
}

const drops = (c: Counters) => ({ kernel: c.kernel_drops, interface: c.if_drops, writer: c.writer_drops, storeFull: c.store_full_drops });
const NONE = { kernel: 0, interface: 0, writer: 0, storeFull: 0 };

describe('a 2 GB extraction during capture', () => {
  it('is downloaded whole over HTTPS while capture at a steady rate loses nothing', async () => {
    const t0 = Date.now();
    const lap = (what: string) => console.log(`api-large-extract: ${what} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    dir = await tempDir('qe-api-large-');
    const store = join(dir, 'store');
    const src = join(dir, 'big.pcap');
    mkdirSync(store);
    writeBigPcap(src);
    lap('generated a 2 GB pcap');
    const config = await writeConfig(dir, { paths: [store], capacity: '8GiB', api_listen: false, metrics_listen: false });
    const imported = await cli(['capture', '--read', src, '--iface', 'imp0', '--config', config], { timeout: 600_000 });
    expect(imported.exitCode, imported.all).toBe(0);
    rmSync(src);
    lap('imported it into the store');

    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', 'api.key', '-out', 'api.crt', '-days', '2'], { cwd: dir, stdio: 'pipe' });
    const ca = readFileSync(join(dir, 'api.crt'));
    process.env.QE_PACKETS_STATE_DIR = join(dir, 'state');
    process.env.QE_PACKETS_LOG_DIR = join(dir, 'log');
    const token = (JSON.parse((await cli(['token', 'create', 'big', '--role', 'analyst', '--json'])).stdout) as { token: string }).token;

    lab = new Lab();
    const link = await captureLink(lab, 'qeapi2b');
    const cap = await startCapture(dir, { interfaces: [link.capDev], paths: [store], capacity: '8GiB', buffer: '32MiB', api_tls: { cert: join(dir, 'api.crt'), key: join(dir, 'api.key') } }, running);
    await cap.waitFor(/api: https:\/\/\S+/);
    const base = /api: (https:\/\/\S+)/.exec(cap.output)![1]!;

    // 1000-byte frames at 5,000 a second (5 MB/s), in 2-second batches: without a download first.
    const batch = (seed: number) => sendFrames(link.ns, link.genDev, testFrames({ count: 10_000, seed, sizes: [1000] }), dir!, { pps: 5000 });
    await batch(1);
    let sent = 10_000;
    const quiet = await countersOf(config, link.capDev, sent);
    expect(drops(quiet)).toEqual(NONE);
    expect(quiet.written).toBeGreaterThanOrEqual(sent);
    lap('captured 10,000 frames without a download, none lost');

    const url = `${base}/api/v1/extract?from=${encodeURIComponent(formatIsoNs(BASE_NS))}&to=${encodeURIComponent(formatIsoNs(BASE_NS + BigInt(PACKETS) * STEP_NS))}`;
    let downloading = true;
    const got = download(url, token, ca).finally(() => (downloading = false));
    let batches = 0;
    while (downloading) {
      await batch(100 + batches++);
      sent += 10_000;
    }
    const { status, bytes, head } = await got;
    lap(`downloaded ${bytes.toLocaleString('en-US')} bytes while sending ${batches} batches`);
    expect(status).toBe(200);
    expect(bytes).toBe(24 + PACKETS * (16 + FRAME_LEN));
    expect(bytes).toBeGreaterThan(2e9);
    expect(head.readUInt32LE(0)).toBe(0xa1b23c4d); // a nanosecond pcap

    const after = await countersOf(config, link.capDev, sent);
    expect(drops(after)).toEqual(NONE);
    expect(after.written).toBeGreaterThanOrEqual(sent);
    lap('checked the counters');
  }, 600_000);
});
