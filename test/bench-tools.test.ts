// What each capture tool says about itself, parsed from output in the exact form the tools print
// it (taken from real runs here), and the daemon's config and summary contract.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchElements } from '../bench/capture/elements.js';
import type { Measured } from '../bench/capture/proc.js';
import { LIVE_TOOLS, daemonConfig, type LiveContext } from '../bench/capture/tools.js';
import { parseConfigText } from '../daemon/src/config/load.js';
import { helperPath } from './lib/cli.js';

let ctx: LiveContext;
beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'qe-tools-'));
  ctx = { iface: 'qe-bench0', outDir: join(dir, 'out'), workDir: dir, ringFiles: 10, fileSizeMB: 100, bufferMiB: 256, snaplen: 262144 };
});
afterAll(async () => {
  await rm(ctx.workDir, { recursive: true, force: true });
});

function measured(out: { stdout?: string; stderr?: string }): Measured {
  return {
    exitCode: 0, signal: undefined, stdout: out.stdout ?? '', stderr: out.stderr ?? '',
    cpuUserS: 0, cpuSysS: 0, maxRssKiB: 0, wallS: 1, killed: false,
  };
}

describe('reported figures', () => {
  it('tcpdump: packets still in the ring at exit count as lost', async () => {
    const r = await LIVE_TOOLS.tcpdump.reported(measured({
      stderr: 'tcpdump: listening on qe-bench0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n' +
        '856846 packets captured\n1115648 packets received by filter\n1000 packets dropped by kernel\n',
    }), ctx);
    expect(r).toMatchObject({ written: 856846, received: 1115648, dropped: 1115648 - 856846 });
    expect(r?.causes).toEqual({ dropped_by_kernel: 1000, dropped_by_interface: 0, unread_on_exit: 1115648 - 856846 - 1000 });
  });

  it('dumpcap', async () => {
    const r = await LIVE_TOOLS.dumpcap.reported(measured({
      stderr: "Capturing on 'qe-bench0'\nFile: /tmp/x/dumpcap_00001_20261125015022.pcap\nPackets captured: 1474367\n" +
        "Packets received/dropped on interface 'qe-bench0': 2465792/991425 (pcap:991425/dumpcap:0/flushed:0/ps_ifdrop:0) (59.8%)\n",
    }), ctx);
    expect(r).toMatchObject({ written: 1474367, received: 2465792, dropped: 991425 });
    expect(r?.causes).toEqual({ pcap: 991425, dumpcap: 0, flushed: 0, ps_ifdrop: 0 });
  });

  it('netsniff-ng: kernel drops and unread packets kept apart', async () => {
    const r = await LIVE_TOOLS['netsniff-ng'].reported(measured({
      stdout: 'Running! Hang up with ^C!\r\n\r\n\r     2079803  packets incoming (245957 unread on exit)\n' +
        '\r     2300000  packets passed filter\n\r       25760  packets failed filter (out of space)\n\r      1.1076% packet droprate\n',
    }), ctx);
    expect(r).toMatchObject({ written: 2079803, received: 2325760, dropped: 25760 + (2300000 - 2079803) });
    expect(r?.causes).toEqual({ out_of_space: 25760, unread_on_exit: 2300000 - 2079803 });
  });

  it('stenotype: the last stats line', async () => {
    const line = (p: number, d: number) =>
      `2026-11-25T01:58:22.774834Z T:2d61c6 [stenotype.cc:537] Thread 0 stats: MB=700 secs=3.1 MBps=225.6 packets=${p} blocks=700 polls=1 drops=${d} drop%=17.0267`;
    const r = await LIVE_TOOLS.stenotype.reported(measured({ stderr: `${line(10, 1)}\nother\n${line(1660472, 340741)}\n` }), ctx);
    expect(r).toMatchObject({ written: 1660472, dropped: 340741, received: 1660472 + 340741 });
  });

  it('daemon: the summary file, drops by cause', async () => {
    await writeFile(join(ctx.workDir, 'summary.json'), JSON.stringify({
      interfaces: { 'qe-bench0': { received: 100, written: 88, written_bytes: 8800, filtered: 0, kernel_drops: 6, if_drops: 1, writer_drops: 3, store_full_drops: 2, cpu_us: 1234 } },
      files: [{ path: 'x', first_ns: '1', last_ns: '2', packets: 88, bytes: 8800 }],
    }));
    const r = await LIVE_TOOLS.daemon.reported(measured({}), ctx);
    expect(r).toMatchObject({ received: 100, written: 88, dropped: 12, cpuUs: 1234 });
    // store_full: retention refused the bytes (a linear store full, or a grant too late): a cause too
    expect(r?.causes).toEqual({ kernel_drops: 6, if_drops: 1, writer_drops: 3, store_full_drops: 2, filtered: 0 });
  });

  it('a tool that printed nothing reports nothing', async () => {
    for (const t of ['tcpdump', 'dumpcap', 'netsniff-ng', 'stenotype'] as const) {
      expect(await LIVE_TOOLS[t].reported(measured({}), ctx)).toBeUndefined();
    }
  });
});

describe('daemon config', () => {
  it('has the documented shape', () => {
    const c = parse(daemonConfig({ iface: 'qe-bench0', outDir: '/tmp/o', capacityMB: 5000, fileSizeMB: 100, bufferMiB: 256, snaplen: 262144 }));
    expect(c).toEqual({
      capture: { interfaces: ['qe-bench0'], buffer: '256MiB', snaplen: 262144 },
      storage: { paths: ['/tmp/o'], capacity: '5000MB', mode: 'circular', file_size: '100MB', flush_interval: '1s', fsync: true },
      metrics: { listen: '127.0.0.1:0' },
      control: { socket: '/tmp/o.control.sock' },
      // A benchmark measures capture: no API listening beside it.
      api: { listen: false },
    });
  });
});

describe('elements bench config', () => {
  it('is a config the daemon takes: 50 elements, every indicator, filters libpcap compiles', async () => {
    const text = daemonConfig({ iface: 'qe-bench0', outDir: '/tmp/o', capacityMB: 5000, fileSizeMB: 100, bufferMiB: 256, snaplen: 262144, elements: benchElements(50) });
    const config = parseConfigText(text, 'bench.yaml');
    expect(config.elements).toHaveLength(50);
    expect(config.elements[0]!.indicators.map((i) => i.name).sort()).toEqual(['custom_share', 'dns_errors', 'http_errors', 'silence', 'tcp_handshake_rtt', 'tcp_resets', 'tcp_unanswered_syns']);
    for (const e of benchElements(50)) {
      for (const f of [e.filter as string, (e.indicators as { custom_share: { filter: string } }).custom_share.filter]) {
        const r = await execa(helperPath, ['--check-filter', f, '--linktype', '1'], { reject: false });
        expect(r.exitCode, `${f}: ${r.stderr}`).toBe(0);
      }
    }
  });
});
