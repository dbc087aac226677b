// Extraction never costs capture: large API downloads run while the daemon captures a veth pair at
// a steady rate, and every packet sent is still captured (no kernel, interface or writer drop).
// Stenographer's users saw large exports starve capture; here qe-extract runs at idle CPU and I/O
// priority. Live (veth pair, tcpreplay): run under the live-test lock.
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BASE_NS, MS, traffic, writeCaptureFile } from './lib/fixture.js';
import { testFrames } from './lib/frames.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';
import { RunningCapture, cli, sleep, startCapture, tempDir } from './lib/cli.js';
import { formatIsoNs } from '../daemon/src/time/format-time.js';

let lab: Lab;
let dir: string;
const running: RunningCapture[] = [];

beforeEach(async () => {
  lab = new Lab();
  dir = await tempDir('qe-api-capture-');
});
afterEach(async () => {
  for (const r of running.splice(0)) if (r.proc.exitCode === null) await r.stop('SIGKILL');
  await lab.cleanup();
  delete process.env.QE_PACKETS_STATE_DIR;
  delete process.env.QE_PACKETS_LOG_DIR;
});

/** Downloads the URL whole, reading as fast as it comes; resolves with the bytes received. */
function download(url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      let n = 0;
      res.on('data', (d: Buffer) => (n += d.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

describe('extraction during capture', () => {
  it('large API extractions while capturing at a steady rate lose no packet', async () => {
    const store = join(dir, 'store');
    // Four files of ~25 MB each in the store: what the downloads read, over and over.
    for (let i = 0; i < 4; i++) writeCaptureFile(store, 'old0', traffic(BASE_NS + BigInt(i) * 600_000n * MS, 100_000, 10 + i));
    process.env.QE_PACKETS_STATE_DIR = join(dir, 'state');
    process.env.QE_PACKETS_LOG_DIR = join(dir, 'log');
    const token = (JSON.parse((await cli(['token', 'create', 'dl', '--role', 'analyst', '--json'])).stdout) as { token: string }).token;

    const link = await captureLink(lab, 'qeapi0');
    const cap = await startCapture(dir, { interfaces: [link.capDev], paths: [store], capacity: '2GiB', buffer: '32MiB' }, running);
    await cap.waitFor(/api: http:\/\/\S+/);
    const base = /api: (http:\/\/\S+)/.exec(cap.output)![1]!;
    const url = `${base}/api/v1/extract?from=${encodeURIComponent(formatIsoNs(BASE_NS))}&to=${encodeURIComponent(formatIsoNs(BASE_NS + 3_600_000n * MS))}`;

    // Two downloads at a time (api.max_extractions), one after another, until the traffic has been sent.
    let sending = true;
    let downloaded = 0;
    let downloads = 0;
    const loop = async () => {
      while (sending) {
        downloaded += await download(url, token);
        downloads++;
      }
    };
    const loops = [loop(), loop()];
    await sleep(300);
    const count = 40_000;
    // 1000-byte frames at 5,000 a second: 8 s, 5 MB/s.
    await sendFrames(link.ns, link.genDev, testFrames({ count, seed: 7, sizes: [1000] }), dir, { pps: 5000 });
    sending = false;
    await Promise.all(loops);
    expect(downloads).toBeGreaterThanOrEqual(2);
    expect(downloaded).toBeGreaterThan(100e6);

    await sleep(1500); // a flush interval and a stats report
    const status = JSON.parse((await cli(['status', '--json', '--config', join(dir, 'config.yaml')])).stdout) as { figures: { interfaces: { name: string; counters: Record<string, number> }[] } };
    const c = status.figures.interfaces.find((i) => i.name === link.capDev)!.counters;
    expect({ kernel: c.kernel_drops, interface: c.if_drops, writer: c.writer_drops, storeFull: c.store_full_drops }).toEqual({ kernel: 0, interface: 0, writer: 0, storeFull: 0 });
    expect(c.written).toBeGreaterThanOrEqual(count);
  }, 120_000);
});
