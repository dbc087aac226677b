// bench:index compares `stats --by host` with tshark's endpoint table: its parser of tshark's
// output, on real tshark output of real traffic (every IP packet is counted once for its source
// and once for its destination, so the endpoints' packets add up to twice the IP packets).
import { execa } from 'execa';
import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parseEndpoints } from '../bench/index/stats.js';
import { writeTraffic } from '../bench/index/traffic.js';
import { tempDir } from './lib/cli.js';

describe('bench:index, tshark endpoints', () => {
  it('reads every IPv4 and IPv6 endpoint row of tshark -z endpoints', async () => {
    const dir = await tempDir('qe-bench-stats-');
    const r = writeTraffic({ dir, totalBytes: 2e6, fileBytes: 3e6, seed: 5, startNs: 1700000000000000000n, rateBps: 1e9 });
    const file = r.files[0]!;
    const t = await execa('tshark', ['-n', '-q', '-r', file, '-z', 'endpoints,ip', '-z', 'endpoints,ipv6']);
    const counts = new Map<string, number>();
    parseEndpoints(t.stdout, counts);
    const all = await execa('tshark', ['-n', '-r', file, '-Y', 'ip or ipv6', '-T', 'fields', '-e', 'frame.number']);
    const ipPackets = all.stdout.split('\n').filter(Boolean).length;
    expect(ipPackets).toBeGreaterThan(1000);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(2 * ipPackets);
    expect([...counts.keys()].some((k) => k.includes(':'))).toBe(true);
    await rm(dir, { recursive: true, force: true });
  });
});
