// The README's first command, end to end: real traffic, real capture, tshark output, clean exit.
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cli } from './lib/cli.js';

describe('qe-packets demo', () => {
  it('captures the demo traffic without loss, shows it in tshark, and leaves nothing behind', async () => {
    const r = await cli(['demo', '--seconds', '3'], { timeout: 90_000 });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/\bHTTP\b/);
    expect(r.stdout).toMatch(/\d+ packets in \d+ pcap files \(0 lost\)/);
    expect(r.stdout).toMatch(/Protocol Hierarchy Statistics/);
    const ns = await execa('ip', ['netns', 'list']);
    expect(ns.stdout).not.toMatch(/qe-demo-/);
    const links = await execa('ip', ['-o', 'link']);
    expect(links.stdout).not.toMatch(/qd[0-9a-f]{4}/);
  });
});
