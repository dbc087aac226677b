// The qualevent: section: defaults, bad values refused with key, value and fix (by the schema, and
// by check-config for the token and CA files), a plain-HTTP URL accepted with a warning, and the
// token never printed.
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { configWarnings, parseConfigText } from '../daemon/src/config/load.js';
import { problems } from './lib/config-problems.js';
import { cli, tempDir } from './lib/cli.js';
import { makeCertificates } from './lib/qualevent-receiver.js';

describe('qualevent config', () => {
  it('is off by default, with the issue defaults', () => {
    const c = parseConfigText('', 'c.yaml');
    expect(c.qualevent).toEqual({ applianceId: hostname(), snapshotIntervalMs: 60_000, outboxSizeBytes: 100 * 2 ** 20 });
    const on = parseConfigText('qualevent:\n  url: https://qe.example/api/events\n  appliance_id: paris-01\n  snapshot_interval: 5m\n  outbox_size: 1GiB\n', 'c.yaml');
    expect(on.qualevent).toEqual({ url: 'https://qe.example/api/events', applianceId: 'paris-01', snapshotIntervalMs: 300_000, outboxSizeBytes: 2 ** 30 });
    expect(configWarnings(on)).toEqual([]);
  });

  it('accepts http:// with a warning', () => {
    const c = parseConfigText('qualevent:\n  url: http://10.0.0.5:8080/events\n', 'c.yaml');
    expect(configWarnings(c)).toEqual([expect.stringMatching(/^qualevent\.url http:\/\/10\.0\.0\.5:8080\/events: plain HTTP.*use https:\/\//)]);
  });

  it('refuses bad values naming key, value and fix', () => {
    expect(problems('qualevent:\n  url: ftp://x/y\n')).toEqual([expect.objectContaining({ key: 'qualevent.url', value: 'ftp://x/y', fix: expect.stringMatching(/https:\/\//) })]);
    expect(problems('qualevent:\n  url: https://user:pw@x/y\n')).toEqual([expect.objectContaining({ key: 'qualevent.url', message: expect.stringMatching(/without credentials/), fix: expect.stringMatching(/token_file/) })]);
    expect(problems('qualevent:\n  appliance_id: "a b"\n')).toEqual([expect.objectContaining({ key: 'qualevent.appliance_id', value: 'a b', fix: expect.stringMatching(/letters, digits/) })]);
    expect(problems('qualevent:\n  outbox_size: 1kB\n')).toEqual([expect.objectContaining({ key: 'qualevent.outbox_size', fix: expect.stringMatching(/100MiB/) })]);
    expect(problems('qualevent:\n  snapshot_interval: 10ms\n')).toEqual([expect.objectContaining({ key: 'qualevent.snapshot_interval', message: 'below 1s' })]);
    expect(problems('qualevent:\n  urll: https://x/\n')).toEqual([expect.objectContaining({ key: 'qualevent.urll', fix: expect.stringMatching(/did you mean "url"/) })]);
  });
});

describe('check-config with qualevent', () => {
  let dir: string;
  let store: string;
  let caFile: string;
  beforeAll(async () => {
    dir = await tempDir();
    store = join(dir, 'store');
    await mkdir(store);
    caFile = (await makeCertificates(dir)).caFile;
  });
  const config = async (q: string) => {
    const file = join(dir, 'c.yaml');
    await writeFile(file, `capture:\n  interfaces: [lo]\nstorage:\n  paths: [${store}]\n  capacity: 10GB\nqualevent:\n${q}`);
    return file;
  };

  it('a missing token file, an empty one, a CA file without a certificate: exit 2 with key, value and fix', async () => {
    let r = await cli(['check-config', await config(`  url: https://qe.example/e\n  token_file: ${dir}/nope.token\n`)]);
    expect(r.exitCode).toBe(2);
    expect(r.all).toMatch(/qualevent\.token_file = ".*nope\.token": no such file[\s\S]*fix: create it/);
    await writeFile(join(dir, 'empty.token'), '\n');
    r = await cli(['check-config', await config(`  url: https://qe.example/e\n  token_file: ${dir}/empty.token\n  ca_file: ${dir}/empty.token\n`)]);
    expect(r.exitCode).toBe(2);
    expect(r.all).toMatch(/qualevent\.token_file = ".*empty\.token": is empty[\s\S]*fix: write the bearer token/);
    expect(r.all).toMatch(/qualevent\.ca_file = ".*empty\.token": holds no PEM certificate/);
  });

  it('a valid one is summarised, http:// warned about, and the token never printed', async () => {
    await writeFile(join(dir, 'good.token'), 'tok-9f8e7d6c5b\n');
    let r = await cli(['check-config', await config(`  url: https://qe.example/e\n  token_file: ${dir}/good.token\n  ca_file: ${caFile}\n  appliance_id: lab-7\n`)]);
    expect(r.exitCode).toBe(0);
    expect(r.all).toMatch(/qualevent: https:\/\/qe\.example\/e as qe-packets\/lab-7, snapshots every 60s, outbox 100MiB/);
    expect(r.all).not.toMatch(/warning/);
    r = await cli(['check-config', await config(`  url: http://qe.example/e\n  token_file: ${dir}/good.token\n`)]);
    expect(r.exitCode).toBe(0);
    expect(r.all).toMatch(/warning: qualevent\.url http:\/\/qe\.example\/e: plain HTTP/);
    expect(r.all).not.toContain('tok-9f8e7d6c5b');
  });
});
