// Live capture on a veth pair with flow tables on (issue 18): a flow of the open file is in its
// table (X.pcap.part.qeflow, one segment per flush) within 2 s of its packet being sent, and
// `flows` lists it; after kill -9 mid-capture and a restart, the repaired file gets a complete
// table from the background indexing, holding every packet of the file and each probe's flow.
import { readFileSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addressBytes } from '../daemon/src/flows/address.js';
import { decodeFlowTable, flowPathFor, type FlowRecord } from '../daemon/src/flows/format.js';
import { pcapFacts } from '../daemon/src/index/reader.js';
import { parsePcap } from '../daemon/src/pcap/format.js';
import { checkFlowTable } from '../daemon/src/store/flow-check.js';
import { cli, type ConfigInput, RunningCapture, sleep, startCapture, tempDir } from './lib/cli.js';
import { frame } from './lib/fixture.js';
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
  await execa('pkill', ['-9', '-f', 'qe-capture --iface qefl0 '], { reject: false });
  await lab.cleanup();
});

/** The records of a pcap file's flow table (an open file's: its whole segments so far). */
function tableRecords(pcap: string): FlowRecord[] {
  try {
    return decodeFlowTable(readFileSync(flowPathFor(pcap)), flowPathFor(pcap), pcapFacts(pcap)).segments.flatMap((s) => s.records);
  } catch {
    return []; // no segment flushed yet
  }
}
const isProbe = (r: FlowRecord, src: string, sport: number) => r.src.equals(addressBytes(src)) && r.sport === sport;

describe('live capture with flow tables on', () => {
  it('a flow of the open file is in its table within 2 s and listed by `flows`; after kill -9 and restart the repaired file has a complete table', async () => {
    const link = await captureLink(lab, 'qefl0');
    const store = join(dir, 'store');
    await mkdir(store);
    const config: ConfigInput = { interfaces: [link.capDev], paths: [store], flush_interval: '1s' }; // flows.enabled by default
    const cfg = join(dir, 'config.yaml');
    let cap = await startCapture(dir, config, running);
    const background = sendFrames(link.ns, link.genDev, mixedTraffic(30_000, 5, 0.9), dir, { pps: 2000 });

    const probes = Array.from({ length: 6 }, (_, k) => ({
      src: `10.77.${k}.${k + 1}`,
      sport: 30001 + k * 7,
      data: frame({ src: `10.77.${k}.${k + 1}`, dst: '10.78.0.1', proto: k % 2 ? 'tcp' : 'udp', sport: 30001 + k * 7, dport: 40000 + k, payload: 50, fill: k }),
    }));
    const lags: number[] = [];
    for (const p of probes) {
      await sendFrames(link.ns, link.genDev, [p.data], dir);
      const sent = Date.now();
      let lag = -1;
      while (Date.now() - sent < 5000) {
        const name = (await readdir(store)).find((f) => f.endsWith('.pcap.part'));
        if (name && tableRecords(join(store, name)).some((r) => isProbe(r, p.src, p.sport))) {
          lag = Date.now() - sent;
          break;
        }
        await sleep(20);
      }
      expect(lag, `${p.src}:${p.sport}: not in the open file's flow table within 5 s`).toBeGreaterThanOrEqual(0);
      lags.push(lag);
      const r = await cli(['flows', '--config', cfg, '--from', '10m ago', '--json']);
      expect(r.exitCode, r.stderr).toBe(0);
      const listed = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((f) => f.src === p.src && f.sport === p.sport);
      expect(listed).toMatchObject([{ iface: link.capDev, dst: '10.78.0.1', dport: 40000 + probes.indexOf(p), packets: 1, packets_rev: 0, bytes: p.data.length }]);
    }
    console.log(`flow table lag after sending (ms): ${lags.join(' ')}`);
    for (const [i, lag] of lags.entries()) expect(lag, `${probes[i]!.src}`).toBeLessThanOrEqual(2000);

    await execa('pkill', ['-9', '-f', `qe-capture --iface ${link.capDev} `], { reject: false });
    cap.proc.kill('SIGKILL');
    await cap.proc;
    await background;
    const crashed = (await readdir(store)).find((f) => f.endsWith('.pcap.part'))!;
    expect(crashed).toBeDefined();
    const repaired = join(store, crashed.replace(/\.part$/, ''));
    cap = await startCapture(dir, config, running);
    expect(cap.output).toMatch(/repaired .*\.pcap: kept \d+ packets/);
    for (let i = 0; i < 200 && checkFlowTable(repaired).state !== 'current'; i++) await sleep(100);
    expect(checkFlowTable(repaired)).toMatchObject({ state: 'current' });
    // Complete: every packet of the repaired file is in its table, each probe's flow with it.
    const recs = parsePcap(readFileSync(repaired)).records;
    const table = tableRecords(repaired);
    expect(table.reduce((n, r) => n + r.packets + r.packetsRev, 0)).toBe(recs.length);
    expect(table.reduce((n, r) => n + Number(r.bytes + r.bytesRev), 0)).toBe(recs.reduce((n, r) => n + r.origlen, 0));
    for (const p of probes) expect(table.filter((r) => isProbe(r, p.src, p.sport)).length, p.src).toBe(1);
    await cap.stop();
  }, 120_000);
});
