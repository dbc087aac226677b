// Live capture where libpcap cannot give nanosecond timestamps: they come in microseconds and must
// be scaled, not taken for nanoseconds. A shim loaded into qe-capture (LD_PRELOAD) makes
// pcap_set_tstamp_precision(NANO) fail as it does on such a system.
import { spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseHelperLine, type HelperMessage } from '../daemon/src/capture/protocol.js';
import { parseFileName } from '../daemon/src/store/filename.js';
import { helperPath, readRecords, sleep, tempDir } from './lib/cli.js';
import { testFrames } from './lib/frames.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';

const SHIM = `#include <pcap/pcap.h>
int pcap_set_tstamp_precision(pcap_t *p, int precision)
{
	(void)p;
	(void)precision;
	return PCAP_ERROR_TSTAMP_PRECISION_NOTSUP;
}
`;

let lab: Lab;
let dir: string;
beforeEach(async () => {
  lab = new Lab();
  dir = await tempDir();
});
afterEach(() => lab.cleanup());

const nowNs = () => BigInt(Date.now()) * 1_000_000n;

describe('live capture without nanosecond timestamps', () => {
  it('scales microseconds to nanoseconds: every record is stamped when it was sent, and the file is named for its first', async () => {
    await writeFile(join(dir, 'shim.c'), SHIM);
    await execa('cc', ['-shared', '-fPIC', '-O2', '-o', join(dir, 'shim.so'), join(dir, 'shim.c')]);
    const link = await captureLink(lab, 'qep0');
    const store = join(dir, 'store');
    await mkdir(store);
    const child = spawn(helperPath, ['--iface', link.capDev, '--dir', store, '--no-fsync', '--flush-ms', '100'], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, LD_PRELOAD: join(dir, 'shim.so') },
    });
    const messages: HelperMessage[] = [];
    createInterface({ input: child.stdout }).on('line', (l) => messages.push(parseHelperLine(l)));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      for (const until = Date.now() + 10_000; !messages.some((m) => m.type === 'started'); await sleep(20))
        if (Date.now() > until) throw new Error('qe-capture did not start');
      expect(messages).toContainEqual(expect.objectContaining({ type: 'error', code: 'no_nanoseconds', fatal: false }));

      // Sent between 0.2 and 0.5 s into a second: microseconds taken for nanoseconds would stamp
      // them at the start of that second, before `before`.
      while (Date.now() % 1000 < 200 || Date.now() % 1000 >= 500) await sleep(5);
      const before = nowNs();
      const frames = testFrames({ count: 20, seed: 8 });
      await sendFrames(link.ns, link.genDev, frames, dir);
      const after = nowNs();
      await sleep(300);
      child.stdin.write('stop\n');
      await exited;

      const files = (await readdir(store)).filter((f) => f.endsWith('.pcap'));
      expect(files).toHaveLength(1);
      const records = await readRecords([join(store, files[0]!)]);
      expect(records.map((r) => r.data)).toEqual(frames);
      const slack = 20_000_000n; // clock reads in ms, and the kernel stamps on receipt
      for (const r of records) {
        expect(r.tsNs % 1000n, 'a microsecond stamp scaled').toBe(0n);
        expect(r.tsNs >= before - slack && r.tsNs <= after + slack, `${r.tsNs} within [${before}, ${after}]`).toBe(true);
      }
      expect(parseFileName(files[0]!)!.firstNs).toBe(records[0]!.tsNs);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
