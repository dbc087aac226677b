// Live capture on a veth pair with indexing on (issue 17): every packet is findable through the open
// file's index by its host and port within 2 s of being sent (one flush interval, 1 s, plus the
// writer's index segment), and `extract` then returns it reading that file through its index. After
// kill -9 mid-capture and a restart, the repaired file's complete index still finds every one of
// them (that the repaired file is kept and gets a complete index is test/retention.test.ts's crash
// repair test; this one asks the index for the packets).
import { closeSync, openSync, readSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { indexPathFor } from '../daemon/src/index/format.js';
import { planFilter } from '../daemon/src/index/plan.js';
import { IndexReader } from '../daemon/src/index/reader.js';
import { decodeGlobalHeader, decodeRecordHeader, GLOBAL_HEADER_LEN, parsePcap, RECORD_HEADER_LEN } from '../daemon/src/pcap/format.js';
import { checkIndex } from '../daemon/src/store/index-check.js';
import { cli, type ConfigInput, RunningCapture, sleep, startCapture, tempDir } from './lib/cli.js';
import { frame } from './lib/fixture.js';
import { DEFAULT_INDEX } from './lib/index-fixture.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';
import { mixedTraffic } from './lib/mixed-traffic.js';

let lab: Lab;
let dir: string;
const running: RunningCapture[] = [];
beforeEach(async () => {
  lab = new Lab();
  dir = await tempDir();
});
afterEach(async () => {
  for (const r of running.splice(0)) if (r.proc.exitCode === null) await r.stop('SIGKILL');
  await execa('pkill', ['-9', '-f', 'qe-capture --iface qeix0 '], { reject: false });
  await lab.cleanup();
});

/** Whether the index of `pcap` (open or closed) leads to a record equal to `want` for `filter`: the reader and plan extraction uses, then the records of each candidate block, as qe-extract reads them. */
async function foundThroughIndex(pcap: string, filter: string, want: Buffer): Promise<boolean> {
  let ix: IndexReader;
  try {
    ix = IndexReader.open(indexPathFor(pcap), pcap);
  } catch {
    return false; // no segment flushed yet
  }
  const fd = openSync(pcap, 'r');
  try {
    const c = await ix.lookup(planFilter(filter, ix.fields));
    if (c.all) throw new Error(`${filter}: not narrowed by the index`);
    const head = Buffer.alloc(GLOBAL_HEADER_LEN);
    readSync(fd, head, 0, GLOBAL_HEADER_LEN, 0);
    const g = decodeGlobalHeader(head);
    const rh = Buffer.alloc(RECORD_HEADER_LEN);
    for (const start of c.starts) {
      const end = Math.min((Math.floor(start / ix.blockSize) + 1) * ix.blockSize, ix.coveredEnd);
      for (let at = start; at < end; ) {
        readSync(fd, rh, 0, RECORD_HEADER_LEN, at);
        const { caplen } = decodeRecordHeader(rh, 0, g);
        const data = Buffer.alloc(caplen);
        readSync(fd, data, 0, caplen, at + RECORD_HEADER_LEN);
        if (data.equals(want)) return true;
        at += RECORD_HEADER_LEN + caplen;
      }
    }
    return false;
  } finally {
    closeSync(fd);
    ix.close();
  }
}

describe('live capture with the index on', () => {
  it('every packet is findable by host and port through the open file index within 2 s of being sent; after kill -9 and restart, through the repaired file index', async () => {
    const link = await captureLink(lab, 'qeix0');
    const store = join(dir, 'store');
    await mkdir(store);
    const config: ConfigInput = { interfaces: [link.capDev], paths: [store], flush_interval: '1s' }; // the default index.fields
    const cfg = join(dir, 'config.yaml');
    let cap = await startCapture(dir, config, running);
    // Other traffic all along (thousands of hosts, VLANs, fragments, IPv6), so the probes land in a
    // file and an index that are being written around them; it still flows at the kill.
    const background = sendFrames(link.ns, link.genDev, mixedTraffic(50_000, 3, 0.9), dir, { pps: 2000 });

    const probes = Array.from({ length: 8 }, (_, k) => ({
      filter: `host 10.77.${k}.${k + 1} and port ${30001 + k * 7}`,
      data: frame({ src: `10.77.${k}.${k + 1}`, dst: '10.78.0.1', proto: k % 2 ? 'tcp' : 'udp', sport: 30001 + k * 7, dport: 40000 + k, payload: 50, fill: k }),
    }));
    const lags: number[] = [];
    for (const p of probes) {
      await sendFrames(link.ns, link.genDev, [p.data], dir);
      const sent = Date.now();
      const part = async () => (await readdir(store)).find((f) => f.endsWith('.pcap.part'));
      let lag = -1;
      while (Date.now() - sent < 5000) {
        const name = await part();
        if (name && (await foundThroughIndex(join(store, name), p.filter, p.data))) {
          lag = Date.now() - sent;
          break;
        }
        await sleep(20);
      }
      expect(lag, `${p.filter}: not found through the index within 5 s`).toBeGreaterThanOrEqual(0);
      lags.push(lag);
      // The command finds it, reading the open file through its index.
      const out = join(dir, 'out.pcap');
      const r = await cli(['extract', '--config', cfg, '--from', '10m ago', '--filter', p.filter, '-w', out]);
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stderr).toMatch(/\(1 of 1 file through their index\)/);
      expect(parsePcap(await readFile(out)).records.map((x) => x.data)).toEqual([p.data]);
    }
    console.log(`index lag after sending (ms): ${lags.join(' ')}`);
    for (const [i, lag] of lags.entries()) expect(lag, probes[i]!.filter).toBeLessThanOrEqual(2000);

    // kill -9 of the helper and the daemon while traffic flows; the restart repairs the .part and
    // indexes it in the background.
    await execa('pkill', ['-9', '-f', `qe-capture --iface ${link.capDev} `], { reject: false });
    cap.proc.kill('SIGKILL');
    await cap.proc;
    await background;
    const crashed = (await readdir(store)).find((f) => f.endsWith('.pcap.part'))!;
    expect(crashed).toBeDefined();
    const repaired = join(store, crashed.replace(/\.part$/, ''));
    cap = await startCapture(dir, config, running);
    expect(cap.output).toMatch(/repaired .*\.pcap: kept \d+ packets/);
    for (let i = 0; i < 200 && checkIndex(repaired, DEFAULT_INDEX).state !== 'current'; i++) await sleep(100);
    expect(checkIndex(repaired, DEFAULT_INDEX)).toMatchObject({ state: 'current' });
    for (const p of probes) {
      expect(await foundThroughIndex(repaired, p.filter, p.data), p.filter).toBe(true);
      const out = join(dir, 'out.pcap');
      const r = await cli(['extract', '--config', cfg, '--from', '10m ago', '--filter', p.filter, '-w', out]);
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stderr).toMatch(/\(2 of 2 files through their index\)|\(1 of 1 file through their index\)/);
      expect(parsePcap(await readFile(out)).records.map((x) => x.data)).toEqual([p.data]);
    }
    await cap.stop();
  }, 120_000);
});
