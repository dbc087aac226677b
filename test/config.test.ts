// Configuration: units, schema, and every bad input named in the issue, through the real CLI.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../daemon/src/config/load.js';
import { configJsonSchema } from '../daemon/src/config/schema.js';
import { helperArgs } from '../daemon/src/capture/helper.js';
import { formatSize, formatSizeBoth, parseDuration, parseSize } from '../daemon/src/config/units.js';
import { problems } from './lib/config-problems.js';
import { cli, root, tempDir } from './lib/cli.js';

describe('units', () => {
  it('reads SI and IEC sizes exactly', () => {
    expect(parseSize('10TB')).toBe(10e12);
    expect(parseSize('20TiB')).toBe(20 * 2 ** 40);
    expect(parseSize('1GiB')).toBe(2 ** 30);
    expect(parseSize('1.5 GB')).toBe(1.5e9);
    expect(parseSize('512MiB')).toBe(512 * 2 ** 20);
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize('1GB2')).toBeUndefined();
    expect(parseSize('10 parsecs')).toBeUndefined();
  });
  it('shows sizes one way, as the config writes them, in IEC or SI units', () => {
    expect(formatSize(1.5 * 2 ** 30)).toBe('1.5GiB');
    expect(formatSize(256 * 2 ** 20)).toBe('256MiB');
    expect(formatSize(1.5e9, 'si')).toBe('1.5GB');
    expect(formatSize(1023)).toBe('1023B');
    expect(formatSizeBoth(40e12)).toBe('40TB (36.4TiB)');
    for (const n of [4096, 123_456_789, 7.92e12, 2 ** 40 * 3.3]) {
      expect(parseSize(formatSize(n))! / n).toBeCloseTo(1, 2);
      expect(parseSize(formatSize(n, 'si'))! / n).toBeCloseTo(1, 2);
    }
  });
  it('no module formats sizes by hand beside formatSize', async () => {
    const { execa: run } = await import('execa');
    const hits = await run('grep', ['-rnE', String.raw`toFixed\([0-9]\)\}? ?[kMGTP]i?B`, 'daemon/src', 'bench', 'image/src', 'package/src'], { cwd: root, reject: false });
    expect(hits.stdout).toBe('');
  });
  it('reads durations', () => {
    expect(parseDuration('1s')).toBe(1000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration(2)).toBe(2000);
    expect(parseDuration('soon')).toBeUndefined();
  });
});

describe('schema', () => {
  it('fills defaults and converts units', () => {
    const c = parseConfigText('capture:\n  interfaces: [eth1, {name: eth2, buffer: 1GiB}]\nstorage:\n  capacity: 10TB\n  file_duration: 1h\n', 'c.yaml');
    expect(c.capture.interfaces).toEqual([
      { name: 'eth1', bufferBytes: 256 * 2 ** 20 },
      { name: 'eth2', bufferBytes: 2 ** 30 },
    ]);
    expect(c.storage).toMatchObject({ capacity: { bytes: 10e12 }, mode: 'circular', fileSizeBytes: 2 ** 30, fileDurationMs: 3_600_000, flushIntervalMs: 1000 });
    expect(parseConfigText('storage: {capacity: 90%}', 'c').storage.capacity).toEqual({ percent: 90 });
  });
  it('names an unknown key and suggests the right one', () => {
    const [p] = problems('storage:\n  file_sise: 1GiB\n');
    expect(p).toMatchObject({ key: 'storage.file_sise', message: 'unknown key' });
    expect(p!.fix).toMatch(/did you mean "file_size"/);
  });
  it('suggests the right key in every section and depth, from the schema', () => {
    const cases: [string, string, string][] = [
      ['helth: {}', 'helth', 'health'],
      ['health: {windw: 5s}', 'health.windw', 'window'],
      ['metrics: {listn: "127.0.0.1:1"}', 'metrics.listn', 'listen'],
      ['control: {sockt: /x}', 'control.sockt', 'socket'],
      ['capture: {snaplenn: 100}', 'capture.snaplenn', 'snaplen'],
      ['capture: {interfaces: [eth1, {name: eth2, bufer: 1GiB}]}', 'capture.interfaces[1].bufer', 'buffer'],
    ];
    for (const [text, key, guess] of cases) {
      const [p] = problems(text);
      expect(p, text).toMatchObject({ key, message: 'unknown key' });
      expect(p!.fix, text).toMatch(new RegExp(`did you mean "${guess}"`));
    }
  });
  it('gives the fix written beside the key in the schema, also inside list entries', () => {
    expect(problems('capture: {interfaces: [{name: eth2, buffer: 1GBx}]}')[0]).toMatchObject({ key: 'capture.interfaces[0].buffer', fix: expect.stringMatching(/^write a number with a unit/) });
    expect(problems('health: {window: soon}')[0]).toMatchObject({ key: 'health.window', fix: expect.stringMatching(/^write a number with a unit, e.g. 500ms/) });
    expect(problems('storage: {fsync: 3}')[0]).toMatchObject({ key: 'storage.fsync', fix: 'write true or false' });
    expect(problems('health: 5')[0]).toMatchObject({ key: 'health', fix: 'write a mapping of drops_warning, drops_critical, window, retention_target, store_full_warning' });
  });
  it('index.fields: the default, [] for off, and an unknown field refused with the key, the value and the known fields', () => {
    expect(parseConfigText('', 'c').index).toEqual({ fields: ['ip', 'port', 'proto', 'vlan'], blockSizeBytes: 16384 });
    expect(parseConfigText('index: {fields: []}', 'c').index.fields).toEqual([]);
    expect(parseConfigText('index: {fields: [mac, tunnel], block_size: 64KiB}', 'c').index).toEqual({ fields: ['mac', 'tunnel'], blockSizeBytes: 65536 });
    const [p] = problems('index:\n  fields: [ip, host]\n');
    expect(p).toMatchObject({ key: 'index.fields[1]', value: 'host', message: 'unknown index field: known fields are mac, vlan, ip, port, proto, tunnel' });
    expect(p!.fix).toMatch(/^list fields from mac, vlan, ip, port, proto, tunnel/);
    expect(problems('index: {fields: ip}')[0]).toMatchObject({ key: 'index.fields', value: 'ip', fix: expect.stringMatching(/^list fields from mac, vlan/) });
    expect(problems('index: {fields: [ip, ip]}')[0]).toMatchObject({ key: 'index.fields[1]', value: 'ip', message: 'listed twice' });
    expect(problems('index: {feilds: [ip]}')[0]).toMatchObject({ key: 'index.feilds', fix: expect.stringMatching(/did you mean "fields"/) });
    expect(problems('index: {block_size: 10000}')[0]).toMatchObject({ key: 'index.block_size', value: 10000, message: 'not a power of two from 4KiB to 16MiB' });
    expect(problems('index: {block_size: 1KiB}')[0]).toMatchObject({ key: 'index.block_size', value: '1KiB' });
  });
  it('names a wrong unit with its value and the fix', () => {
    const [p] = problems('storage:\n  file_size: 1GB2\n');
    expect(p).toMatchObject({ key: 'storage.file_size', value: '1GB2' });
    expect(p!.fix).toMatch(/1GiB/);
  });
  it('refuses a capacity smaller than two files', () => {
    const [p] = problems('storage:\n  capacity: 1GiB\n  file_size: 1GiB\n');
    expect(p).toMatchObject({ key: 'storage.capacity', value: '1GiB' });
    expect(p!.message).toMatch(/fewer than two files/);
  });
  it('refuses a fraction of a millisecond where the helper takes whole milliseconds, naming key, value and fix', () => {
    const [p] = problems('storage:\n  flush_interval: 10.5ms\n');
    expect(p).toMatchObject({ key: 'storage.flush_interval', value: '10.5ms', fix: 'write 10ms or 11ms' });
    const [q] = problems('storage:\n  file_duration: 1.0005s\n');
    expect(q).toMatchObject({ key: 'storage.file_duration', value: '1.0005s', fix: 'write 1000ms or 1001ms' });
  });
  it('gives the helper every size and duration as a whole number, as it requires', () => {
    const c = parseConfigText('capture:\n  interfaces: [eth1]\n  buffer: 1.5MiB\nstorage:\n  capacity: 2.5GiB\n  file_size: 1.3MiB\n  file_duration: 1.5s\n  flush_interval: 0.25s\n', 'c.yaml');
    const args = helperArgs(c, { live: 'eth1', bufferBytes: c.capture.interfaces[0]!.bufferBytes });
    for (const flag of ['--buffer', '--snaplen', '--file-size', '--flush-ms', '--file-duration-ms']) {
      const v = args[args.indexOf(flag) + 1]!;
      expect(v, flag).toMatch(/^\d+$/);
    }
  });
  it('api: on by default on loopback over plain HTTP; off the loopback interface only with a certificate and its key', () => {
    expect(parseConfigText('', 'c').api).toEqual({ listen: { host: '127.0.0.1', port: 8443 }, tls: {}, maxExtractions: 2 });
    expect(parseConfigText('api: {listen: false}', 'c').api.listen).toBeUndefined();
    expect(parseConfigText('api: {listen: "[::1]:8443"}', 'c').api.listen).toEqual({ host: '::1', port: 8443 });
    const [p] = problems('api:\n  listen: 0.0.0.0:8443\n');
    expect(p).toMatchObject({ key: 'api.listen', value: '0.0.0.0:8443' });
    expect(p!.message).toMatch(/HTTPS only.*api\.tls\.cert/);
    expect(p!.fix).toMatch(/set api\.tls\.cert and api\.tls\.key/);
    expect(problems('api:\n  listen: 192.0.2.1:8443\n  tls: {cert: /etc/a.crt}\n').map((x) => x.key)).toEqual(['api.tls.key', 'api.listen']);
    const ok = parseConfigText('api:\n  listen: 192.0.2.1:8443\n  tls: {cert: /etc/a.crt, key: /etc/a.key}\n  max_extractions: 4\n', 'c').api;
    expect(ok).toEqual({ listen: { host: '192.0.2.1', port: 8443 }, tls: { cert: '/etc/a.crt', key: '/etc/a.key' }, maxExtractions: 4 });
    expect(problems('api: {max_extractions: 0}')[0]).toMatchObject({ key: 'api.max_extractions', value: 0 });
    expect(problems('api: {tls: {crt: x}}')[0]).toMatchObject({ key: 'api.tls.crt', message: 'unknown key' });
    expect(problems('api: {tls: {crt: x}}')[0]!.fix).toMatch(/cert/);
  });
  it('refuses a bad mode', () => {
    const [p] = problems('storage:\n  mode: round\n');
    expect(p).toMatchObject({ key: 'storage.mode', value: 'round' });
  });
  it('gives line and column of YAML that does not parse', () => {
    const [p] = problems('capture:\n  interfaces: [eth1\nstorage:\n');
    expect(p!.key).toMatch(/line \d+, column \d+/);
    expect(p!.message).toMatch(/does not parse/);
  });
  it('is published as JSON Schema that matches the build', async () => {
    const published = JSON.parse(await readFile(join(root, 'docs', 'config.schema.json'), 'utf8'));
    expect(published).toEqual(configJsonSchema());
    expect(Object.keys((published.properties.storage as { properties: object }).properties)).toContain('file_duration');
  });
});

describe('check-config and capture refuse bad input, and write nothing', () => {
  let dir: string;
  let store: string;
  let ro: string;
  beforeAll(async () => {
    dir = await tempDir();
    store = join(dir, 'store');
    ro = join(dir, 'ro');
    await mkdir(store);
    await mkdir(ro);
    await execa('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro]);
  });
  afterAll(async () => {
    await execa('umount', [ro]).catch(() => {});
  });

  const cases: [string, (s: string) => string, RegExp][] = [
    ['an unknown key', (s) => `capture:\n  interfaces: [lo]\n  snaplenn: 100\nstorage:\n  paths: [${s}]\n`, /capture\.snaplenn: unknown key[\s\S]*did you mean "snaplen"/],
    ['a wrong unit', (s) => `capture:\n  interfaces: [lo]\nstorage:\n  paths: [${s}]\n  file_size: 10 GBs\n`, /storage\.file_size = "10 GBs"[\s\S]*fix: write a number with a unit/],
    ['a bad BPF filter', (s) => `capture:\n  interfaces: [lo]\n  filter: "tcp port http2x"\nstorage:\n  paths: [${s}]\n`, /capture\.filter = "tcp port http2x": libpcap rejects it: .*http2x/],
    ['a missing interface', (s) => `capture:\n  interfaces: [nosuch0]\nstorage:\n  paths: [${s}]\n`, /capture\.interfaces\[0\] = "nosuch0": no such interface[\s\S]*fix: use one of: .*lo/],
    ['a path that does not exist', () => `capture:\n  interfaces: [lo]\nstorage:\n  paths: [/nonexistent/store]\n`, /storage\.paths\[0\] = "\/nonexistent\/store": does not exist/],
    ['a capacity smaller than two files', (s) => `capture:\n  interfaces: [lo]\nstorage:\n  paths: [${s}]\n  capacity: 1GB\n  file_size: 1GB\n`, /storage\.capacity = "1GB": holds fewer than two files/],
    ['YAML that does not parse', (s) => `capture:\n  interfaces: [lo\nstorage:\n  paths: [${s}]\n`, /YAML line \d+, column \d+\): does not parse/],
  ];
  for (const [what, text, pattern] of cases) {
    it(`${what}: exit 2, a message naming key, value and fix`, async () => {
      const file = join(dir, 'bad.yaml');
      await writeFile(file, text(store));
      const check = await cli(['check-config', file]);
      expect(check.exitCode).toBe(2);
      expect(check.all).toMatch(pattern);
      expect(check.all).toMatch(/fix: /);
      const cap = await cli(['capture', '--config', file]);
      expect(cap.exitCode).toBe(2);
      expect(cap.all).toMatch(pattern);
      expect(await readdir(store)).toEqual([]);
    });
  }
  it('a path that is not writable (read-only filesystem)', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, `capture:\n  interfaces: [lo]\nstorage:\n  paths: [${ro}]\n  capacity: 10GiB\n`);
    const check = await cli(['check-config', file]);
    expect(check.exitCode).toBe(2);
    expect(check.all).toMatch(/storage\.paths\[0\] = ".*\/ro": is not writable \(EROFS\)[\s\S]*fix: remount it read-write/);
  });
  it('a missing config file', async () => {
    const check = await cli(['check-config', join(dir, 'nope.yaml')]);
    expect(check.exitCode).toBe(2);
    expect(check.all).toMatch(/no such file[\s\S]*fix: create it/);
  });
  it('a valid config passes and is summarised', async () => {
    const file = join(dir, 'good.yaml');
    await writeFile(file, `capture:\n  interfaces: [lo]\n  filter: "not port 22"\nstorage:\n  paths: [${store}]\n  capacity: 10GB\n  file_size: 1GiB\n`);
    const check = await cli(['check-config', file]);
    expect(check.all).toMatch(/valid/);
    expect(check.exitCode).toBe(0);
  });
});

describe('the command line', () => {
  it('has --help for the command and every subcommand, and rejects unknown ones', async () => {
    const help = await cli(['--help']);
    expect(help.exitCode).toBe(0);
    for (const sub of ['capture', 'check-config', 'interfaces', 'demo']) {
      expect(help.stdout).toContain(sub);
      const r = await cli([sub, '--help']);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toMatch(/^usage: qe-packets/);
    }
    const bad = await cli(['frobnicate']);
    expect(bad.exitCode).toBe(1);
    expect(bad.all).toMatch(/unknown command 'frobnicate'/);
    const badFlag = await cli(['capture', '--bogus']);
    expect(badFlag.exitCode).toBe(1);
    expect(badFlag.all).toMatch(/bogus/);
  });
  it('lists interfaces (via the cap package) with state', async () => {
    const r = await cli(['interfaces', '--json']);
    expect(r.exitCode).toBe(0);
    const list = JSON.parse(r.stdout) as { name: string; state: string }[];
    expect(list.find((i) => i.name === 'lo')).toBeTruthy();
    const text = await cli(['interfaces']);
    expect(text.stdout).toMatch(/^NAME\s+STATE/);
  });
});
