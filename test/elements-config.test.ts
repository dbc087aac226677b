// `elements:` in the config: the issue's example read into thresholds in each indicator's unit, and
// every bad input the issue names (unknown indicator, a warning above its critical, a bad filter, a
// duplicate id) refused with the key, the value and the fix, through the real check-config.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../daemon/src/config/errors.js';
import { parseConfigText } from '../daemon/src/config/load.js';
import { cli, tempDir } from './lib/cli.js';

const ISSUE_EXAMPLE = `
elements:
  - id: crm-web                 # the element's id in Qe-Inventory (unique, [A-Za-z0-9._:-])
    name: CRM front end         # optional
    filter: "host 10.1.2.3 and tcp port 443"
    window: 60s                 # span the indicators are computed over (default health.window)
    indicators:
      tcp_resets:        {warning: 1%, critical: 5%}     # share of TCP connections reset
      tcp_unanswered_syns: {warning: 1%, critical: 10%}  # share of SYNs never answered
      tcp_handshake_rtt: {warning: 50ms, critical: 200ms} # 95th percentile
      dns_errors:        {warning: 5%, critical: 20%}    # share of DNS answers with rcode != 0
      http_errors:       {warning: 5%, critical: 20%}    # share of HTTP responses 5xx
      silence:           {critical: 60s}                 # no packet of the element for this long
      custom_share:      {filter: "icmp[icmptype] == icmp-unreach", warning: 1%, critical: 5%}
  - id: dns.resolver:1
    filter: udp port 53
    indicators:
      dns_errors: {critical: 50%}
`;

const problemsOf = (text: string) => {
  try {
    parseConfigText(text, 'c.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('accepted');
};

const element = (body: string) => `elements:\n  - id: crm-web\n    filter: "tcp port 443"\n${body}`;

describe('elements: in the config', () => {
  it("reads the issue's example: thresholds in % / ms / s, window default health.window, indicators in registry order", () => {
    const c = parseConfigText(`health:\n  window: 30s\n${ISSUE_EXAMPLE}`, 'c.yaml');
    expect(c.elements).toEqual([
      {
        id: 'crm-web',
        name: 'CRM front end',
        filter: 'host 10.1.2.3 and tcp port 443',
        windowMs: 60_000,
        indicators: [
          { name: 'tcp_resets', warning: 1, critical: 5 },
          { name: 'tcp_unanswered_syns', warning: 1, critical: 10 },
          { name: 'tcp_handshake_rtt', warning: 50, critical: 200 },
          { name: 'dns_errors', warning: 5, critical: 20 },
          { name: 'http_errors', warning: 5, critical: 20 },
          { name: 'silence', critical: 60 },
          { name: 'custom_share', warning: 1, critical: 5, filter: 'icmp[icmptype] == icmp-unreach' },
        ],
      },
      { id: 'dns.resolver:1', filter: 'udp port 53', windowMs: 30_000, indicators: [{ name: 'dns_errors', critical: 50 }] },
    ]);
    expect(parseConfigText('', 'c.yaml').elements).toEqual([]);
  });

  it('refuses an unknown indicator, naming the key and the known ones', () => {
    const [p, ...rest] = problemsOf(element('    indicators:\n      tcp_reset: {warning: 1%}\n'));
    expect(rest).toEqual([]);
    expect(p!.key).toBe('elements[0].indicators.tcp_reset');
    expect(p!.message).toBe('unknown key');
    expect(p!.fix).toMatch(/did you mean "tcp_resets"\?.*custom_share/);
  });

  it('refuses a warning above its critical, in any unit', () => {
    const [p] = problemsOf(element('    indicators:\n      tcp_handshake_rtt: {warning: 0.5s, critical: 200ms}\n'));
    expect(p).toMatchObject({ key: 'elements[0].indicators.tcp_handshake_rtt.warning', value: '0.5s' });
    expect(p!.message).toMatch(/above its critical \(200ms\)/);
    expect(p!.fix).toMatch(/warning 200ms or less/);
    expect(problemsOf(element('    indicators:\n      dns_errors: {warning: 30%, critical: 20%}\n'))[0]).toMatchObject({ key: 'elements[0].indicators.dns_errors.warning', value: '30%' });
  });

  it('refuses a duplicate id, a bad id, a share written as a time, a threshold-less indicator, a short window, an element without indicators', () => {
    const twice = problemsOf(`elements:\n  - {id: a, filter: tcp, indicators: {tcp_resets: {critical: 5%}}}\n  - {id: a, filter: udp, indicators: {dns_errors: {critical: 5%}}}\n`);
    expect(twice).toEqual([{ key: 'elements[1].id', value: 'a', message: 'already the id of elements[0]', fix: expect.stringMatching(/its own id/) }]);
    expect(problemsOf(`elements:\n  - {id: "crm web", filter: tcp, indicators: {tcp_resets: {critical: 5%}}}\n`)[0]).toMatchObject({ key: 'elements[0].id', value: 'crm web', fix: expect.stringMatching(/letters, digits/) });
    expect(problemsOf(element('    indicators:\n      tcp_resets: {warning: 50ms}\n'))[0]).toMatchObject({ key: 'elements[0].indicators.tcp_resets.warning', value: '50ms', message: expect.stringMatching(/share|percentage/) });
    expect(problemsOf(element('    indicators:\n      silence: {}\n'))[0]).toMatchObject({ key: 'elements[0].indicators.silence', message: expect.stringMatching(/no threshold/), fix: 'give it a warning, a critical or both, e.g. silence: {critical: 60s}' });
    expect(problemsOf(element('    window: 2s\n    indicators:\n      silence: {critical: 60s}\n'))[0]).toMatchObject({ key: 'elements[0].window', value: '2s' });
    expect(problemsOf(element('    indicators: {}\n'))[0]).toMatchObject({ key: 'elements[0].indicators', message: expect.stringMatching(/no indicator/) });
    expect(problemsOf(element('    indicators:\n      custom_share: {warning: 1%}\n'))[0]).toMatchObject({ key: 'elements[0].indicators.custom_share.filter' });
  });

  it("refuses what the capture helper could not take: more elements than it counts, a filter longer than its limit", () => {
    const many = Array.from({ length: 257 }, (_, i) => `  - {id: e${i}, filter: "host 10.0.${i >> 8}.${i & 255}", indicators: {silence: {critical: 60s}}}`).join('\n');
    expect(problemsOf(`elements:\n${many}\n`)).toEqual([expect.objectContaining({ key: 'elements', value: '257 elements', message: expect.stringMatching(/more than the 256 elements/) })]);
    const long = Array.from({ length: 600 }, (_, i) => `host 10.1.${i >> 8}.${i & 255}`).join(' or ');
    expect(problemsOf(element('    indicators:\n      custom_share: {filter: "' + long + '", critical: 5%}\n'))[0]).toMatchObject({ key: 'elements[0].indicators.custom_share.filter', message: expect.stringMatching(/longer than the 8192 bytes/) });
  });

  it('check-config compiles every element filter and custom filter with libpcap, naming the key', async () => {
    const dir = await tempDir('qe-elem-config-');
    const file = join(dir, 'config.yaml');
    await writeFile(
      file,
      `capture:\n  interfaces: [lo]\nstorage:\n  paths: [${dir}]\n  capacity: 1GiB\n  file_size: 64MiB\n` +
        `elements:\n  - id: good\n    filter: "tcp port 443"\n    indicators: {tcp_resets: {critical: 5%}}\n` +
        `  - id: bad\n    filter: "tcp port 443x"\n    indicators:\n      custom_share: {filter: "icmp[icmptype] == icmp-nonsense", critical: 5%}\n`,
    );
    const r = await cli(['check-config', file]);
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/elements\[1\]\.filter = "tcp port 443x": libpcap rejects it: .*\n\s+fix: correct the BPF expression/);
    expect(r.stderr).toMatch(/elements\[1\]\.indicators\.custom_share\.filter = "icmp\[icmptype\] == icmp-nonsense": libpcap rejects it/);
    expect(r.stderr).not.toMatch(/elements\[0\]/);
    await writeFile(file, (await import('node:fs')).readFileSync(file, 'utf8').replace('443x', '443').replace('icmp-nonsense', 'icmp-unreach'));
    const ok = await cli(['check-config', file]);
    expect(ok.exitCode, ok.all).toBe(0);
  });
});
