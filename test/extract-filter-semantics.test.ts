// A filter selects at extraction what it selected live (README "Filters and VLAN tags"): the
// kernel takes the outer VLAN tag off before a capture filter runs, libpcap puts it back in the
// stored frame. Checked two ways with the same traffic (untagged, 802.1Q and QinQ; IPv4, IPv6,
// ARP, non-IP): against libpcap itself (tcpdump -r on the frames as the kernel showed them), and
// live on a veth pair (capture.filter F against extract --filter F of an unfiltered capture).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildPcap, parsePcap } from '../daemon/src/pcap/format.js';
import { formatIsoNs } from '../daemon/src/time/format-time.js';
import { cliPath, readRecords, RunningCapture, sleep, startCapture, storeFiles } from './lib/cli.js';
import { BASE_NS, MS, tempDir, writeCaptureFile, writeConfig } from './lib/fixture.js';
import { Lab, captureLink, sendFrames } from './lib/lab.js';
import { mixedTraffic } from './lib/mixed-traffic.js';

const { dir: root, cleanup } = tempDir('filter-semantics');
afterAll(cleanup);

/** The traffic without IP fragments: live, `port 53` does not see later fragments (extraction keeps them, see extract-index.test.ts). */
function frames(count: number, seed: number): Buffer[] {
  return mixedTraffic(count, seed).filter((f) => {
    let p = 12;
    while (f.readUInt16BE(p) === 0x8100 || f.readUInt16BE(p) === 0x88a8) p += 4;
    const et = f.readUInt16BE(p);
    if (et === 0x0800) return (f.readUInt16BE(p + 8) & 0x3fff) === 0;
    if (et === 0x86dd) return f[p + 8] !== 44;
    return true;
  });
}

/** What the kernel hands a packet socket: the outer 802.1Q/802.1ad tag taken off. */
function asLive(f: Buffer): Buffer {
  const t = f.readUInt16BE(12);
  return t === 0x8100 || t === 0x88a8 ? Buffer.concat([f.subarray(0, 12), f.subarray(16)]) : f;
}

function extractStore(config: string, filter: string, fromNs: bigint, toNs: bigint): Buffer[] {
  const out = join(root, `x-${Math.random().toString(36).slice(2)}.pcap`);
  const r = spawnSync('node', [cliPath, 'extract', '--config', config, '--from', formatIsoNs(fromNs), '--to', formatIsoNs(toNs), '--filter', filter, '-w', out], { encoding: 'utf8' });
  expect([0, 3], r.stderr).toContain(r.status);
  return parsePcap(readFileSync(out)).records.map((r) => r.data);
}

const FILTERS = ['host 10.0.0.1', 'vlan 100 and host 10.0.0.1', 'not ip6', 'vlan', 'port 53', 'ip6 host 2001:db8::2', 'arp', 'vlan 200 and ip6', 'udp and not vlan'];

describe('a filter means at extraction what it meant live', () => {
  const sent = frames(1500, 11);
  const store = join(root, 'store');
  const file = writeCaptureFile(store, 'eth0', sent.map((data, i) => ({ tsNs: BASE_NS + BigInt(i) * MS, data })));
  const config = join(root, 'config.yaml');
  writeConfig(config, [store]);
  // libpcap's own answer for the frames as a live filter saw them.
  const live = join(root, 'as-live.pcap');
  writeFileSync(live, buildPcap(sent.map((data, i) => ({ tsNs: BASE_NS + BigInt(i) * MS, data: asLive(data) }))));
  const stored = file.path;

  it.each(FILTERS)('%s: the packets libpcap selects from what the kernel showed', (filter) => {
    const usesVlan = /\bvlan\b/.test(filter);
    // Without `vlan` the live filter saw the untagged frame; with it, libpcap's vlan code (kernel
    // metadata live, the tag in the data offline) reads the frame as stored.
    const ref = spawnSync('tcpdump', ['-r', usesVlan ? stored : live, '-w', '-', filter], { maxBuffer: 1 << 26 });
    expect(ref.status, ref.stderr.toString()).toBe(0);
    const picked = new Set(parsePcap(ref.stdout).records.map((r) => r.tsNs));
    const want = sent.filter((_, i) => picked.has(BASE_NS + BigInt(i) * MS));
    const got = extractStore(config, filter, BASE_NS, BASE_NS + 10_000n * MS);
    expect(got.length).toBe(want.length);
    expect(got.every((g, i) => g.equals(want[i]!))).toBe(true);
  });

  it('finds a host\'s tagged packets with a filter that does not say vlan (tcpdump -r on the stored file does not)', () => {
    const got = extractStore(config, 'host 10.0.0.1', BASE_NS, BASE_NS + 10_000n * MS);
    const tagged = got.filter((f) => f.readUInt16BE(12) === 0x8100);
    expect(tagged.length).toBeGreaterThan(0);
    const plain = spawnSync('tcpdump', ['-r', stored, '-w', '-', 'host 10.0.0.1'], { maxBuffer: 1 << 26 });
    expect(parsePcap(plain.stdout).records.length).toBeLessThan(got.length);
  });
});

describe('live on a veth pair, then extracted', () => {
  it('capture.filter F keeps exactly what extract --filter F takes from an unfiltered capture of the same traffic', async () => {
    const lab = new Lab();
    const running: RunningCapture[] = [];
    try {
      const link = await captureLink(lab, 'qefs0');
      const sent = frames(600, 12);
      const capture = async (name: string, filter?: string) => {
        const d = join(root, name);
        mkdirSync(join(d, 'store'), { recursive: true });
        const startNs = BigInt(Date.now()) * 1_000_000n - 1_000_000_000n;
        const cap = await startCapture(d, { interfaces: [link.capDev], paths: [join(d, 'store')], ...(filter ? { filter } : {}) }, running);
        await sendFrames(link.ns, link.genDev, sent, d, { pps: 5000 });
        await sleep(400);
        expect((await cap.stop()).exitCode).toBe(0);
        const config = join(d, 'config.yaml');
        return { records: await readRecords(await storeFiles([join(d, 'store')])), config, startNs, endNs: BigInt(Date.now()) * 1_000_000n };
      };
      const all = await capture('unfiltered');
      expect(all.records.length).toBe(sent.length);
      for (const filter of FILTERS) {
        const live = await capture(`live-${FILTERS.indexOf(filter)}`, filter);
        const extracted = extractStore(all.config, filter, all.startNs, all.endNs);
        expect({ filter, count: extracted.length }).toEqual({ filter, count: live.records.length });
        expect(extracted.every((e, i) => e.equals(live.records[i]!.data)), filter).toBe(true);
      }
    } finally {
      for (const r of running) if (r.proc.exitCode === null) await r.stop('SIGKILL');
      await lab.cleanup();
    }
  }, 180_000);
});
