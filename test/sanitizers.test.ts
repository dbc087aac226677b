// The native tools built with AddressSanitizer and UndefinedBehaviorSanitizer (make asan, into
// build/native-asan) run over every parser fixture (hostile files, fuzz seeds and regressions),
// over the traffic the import and extraction tests use, over the extraction test's store and over
// a short live capture; any sanitizer report fails. The ordinary tests keep the fast build.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPcap, decodeGlobalHeader, decodeRecordHeader } from '../daemon/src/pcap/format.js';
import { flowBodyRecords, flowRecordLen } from '../daemon/src/flows/format.js';
import { root } from './lib/cli.js';
import { buildFixtureStore, tempDir } from './lib/fixture.js';
import { testFrames } from './lib/frames.js';

const asan = join(root, 'build', 'native-asan');
// A report ends the tool with this code (both sanitizers), whatever the tool's own codes mean.
const SANITIZER_EXIT = 86;
const env = {
  ...process.env,
  ASAN_OPTIONS: `halt_on_error=1:detect_leaks=1:exitcode=${SANITIZER_EXIT}`,
  UBSAN_OPTIONS: `halt_on_error=1:print_stacktrace=1:exitcode=${SANITIZER_EXIT}`,
};
const INDEX_ALL = 'mac,vlan,ip,port,proto,tunnel';
/** Element filters every link type compiles (fuzz-elements.c's set, for the same reason). */
const ELEMENTS = 'qe-elements 1\nelement 0 tcp\ncustom 0 0 port 443 or port 80\nelement 1 udp port 53 or tcp port 53\nelement 2 \ncustom 2 0 udp\nelement 3 tcp port 80 or tcp port 8080\n';
const REPORT = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: \w+Sanitizer/;

const { dir: work, cleanup } = tempDir('asan');
afterAll(() => cleanup());

beforeAll(() => {
  execFileSync('make', ['-s', '-C', join(root, 'daemon', 'native'), 'asan'], { stdio: 'inherit' });
}, 300_000);

function run(tool: string, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(join(asan, tool), args, { env, encoding: 'utf8', timeout: 60_000, ...(input !== undefined ? { input } : {}) });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A file's first record time and link type as a request gives them, or `- -` when it has no such record. */
function facts(path: string): string {
  const b = readFileSync(path).subarray(0, 40);
  try {
    const g = decodeGlobalHeader(b);
    return b.length === 40 ? `${decodeRecordHeader(b, 24, g).tsNs} ${g.linktype}` : '- -';
  } catch {
    return '- -';
  }
}

function clean(what: string, r: { status: number | null; stderr: string }) {
  expect(r.stderr, `${what}: a sanitizer report`).not.toMatch(REPORT);
  expect(r.status, `${what}: ${r.stderr}`).not.toBe(SANITIZER_EXIT);
  expect(r.status, `${what}: ended by a signal`).not.toBeNull();
}

/** Every parser fixture in the repository. */
function parserInputs(): string[] {
  const dirs = [
    join(root, 'test', 'fixtures', 'hostile'),
    join(root, 'daemon', 'native', 'fuzz', 'corpus', 'classic'),
    join(root, 'daemon', 'native', 'fuzz', 'corpus', 'pcapng'),
    join(root, 'daemon', 'native', 'fuzz', 'corpus', 'index'),
  ];
  const regressions = join(root, 'daemon', 'native', 'fuzz', 'regressions');
  if (existsSync(regressions)) for (const t of readdirSync(regressions)) dirs.push(join(regressions, t));
  return dirs.flatMap((d) => readdirSync(d).filter((f) => !f.endsWith('.py') && !f.endsWith('.md')).map((f) => join(d, f)));
}

/** The traffic of the import tests, as the files they import. */
function trafficInputs(): string[] {
  const frames = testFrames({ count: 2000, seed: 21, vlanShare: 0.15 });
  const ts0 = 1_764_000_000_123_456_000n;
  const out: string[] = [];
  for (const nanos of [true, false]) {
    const f = join(work, `traffic-${nanos ? 'ns' : 'us'}.pcap`);
    writeFileSync(f, buildPcap(frames.map((data, i) => ({ tsNs: ts0 + BigInt(i) * 1_000_000n, data })), { nanos }));
    out.push(f);
  }
  const ng = join(work, 'traffic.pcapng');
  execFileSync('editcap', ['-F', 'pcapng', out[0]!, ng]);
  return [...out, ng];
}

describe('the sanitizer build', () => {
  const store = join(work, 'store');

  it.each(['qe-capture', 'qe-extract', 'qe-index', 'qe-flowstat'])('instruments %s with both sanitizers', (tool) => {
    const symbols = execFileSync('nm', [join(asan, tool)], { encoding: 'utf8' });
    expect(symbols).toMatch(/\b__asan_init\b/);
    expect(symbols).toMatch(/\b__ubsan_handle_\w+/);
  });

  it('imports every parser fixture and the import tests\' traffic with no sanitizer report', () => {
    mkdirSync(store);
    const inputs = [...parserInputs(), ...trafficInputs()];
    expect(inputs.length).toBeGreaterThan(30);
    const elements = join(work, 'elements');
    writeFileSync(elements, ELEMENTS);
    for (const input of inputs) {
      for (const filter of [[], ['--filter', 'udp or vlan'], ['--index-fields', INDEX_ALL, '--index-block-size', '4096', '--flows', '--elements', elements]]) {
        const r = run('qe-capture', ['--read', input, '--iface', 'imp', '--dir', store, '--no-fsync', '--file-size', '65536', ...filter]);
        clean(`qe-capture --read ${input} ${filter.join(' ')}`, r);
        expect(r.stdout, input).toMatch(/"type":"done"/);
      }
    }
  });

  it('extracts every parser fixture, the imports and the extraction tests\' store with no sanitizer report', () => {
    for (const input of parserInputs()) clean(`qe-extract ${input}`, run('qe-extract', ['-w', join(work, 'one.pcap'), input, input]));
    const fixture = buildFixtureStore(join(work, 'extract-store'));
    const files = [...fixture.files.map((f) => f.path), ...readdirSync(store).map((f) => join(store, f))];
    const list = files.map((f, i) => `${i % 3} ${i % 2} ${f}`).join('\n') + '\n';
    for (const args of [[], ['--filter', 'tcp port 443 or vlan', '--from', '1764000000500000000', '--to', '1764000001500000000']]) {
      clean(`qe-extract ${args.join(' ')}`, run('qe-extract', ['--list', '-', '-w', join(work, 'all.pcap'), '--progress-ms', '1', ...args], list));
    }
  });

  it('indexes every parser fixture and the imported files with qe-index, with no sanitizer report', () => {
    const copies = join(work, 'index-inputs');
    mkdirSync(copies);
    // qe-index writes beside each file: copies keep the repository's fixtures as they are.
    const inputs = [...parserInputs(), ...readdirSync(store).filter((f) => f.endsWith('.pcap')).map((f) => join(store, f))].map((f, i) => {
      const c = join(copies, `${i}.pcap`);
      copyFileSync(f, c);
      return c;
    });
    for (const fields of [INDEX_ALL, 'ip,port,tunnel', '']) {
      const r = run('qe-index', ['--fields', fields, '--flows', '--block-size', '4096', '--progress-ms', '1', ...inputs]);
      clean(`qe-index --fields '${fields}' --flows`, r);
      expect([0, 4], r.stderr).toContain(r.status);
      expect(r.stdout).toMatch(/"type":"done"/);
      expect((r.stdout.match(/"type":"indexed"/g) ?? []).length).toBeGreaterThan(20);
      // The native planner reads what qe-index wrote: a plan per field set (index-plan.h),
      // every file planned (read through its index, or scanned with the reason).
      const request = [
        'lookup 31 or 3 key 3 0a000001 range 5 0000 ffff key 2 0064',
        'lookup 12 and 2 range 3 00000000 ffffffff key 5 0035',
        // Every third file with the catalog's facts (its first record time and link type), as a
        // query passes them for closed files; the others read from the file.
        ...inputs.map((f, i) => `file ${statSync(f).size} 1 ${i % 2} ${i % 3 === 0 ? facts(f) : '- -'} ${f}`),
      ].join('\n');
      const plan = run('qe-extract', ['--plan', '--needed', '31', '--merge-gap', '0', '--dense', '2'], request + '\n');
      clean(`qe-extract --plan over the indexes of --fields '${fields}'`, plan);
      expect(plan.status, plan.stderr).toBe(0);
      expect(plan.stdout.trim().split('\n').length).toBe(inputs.length);
      if (fields) expect(plan.stdout).toMatch(/"why":"index"/);
    }
    // The stream mode on every file: a table, or exit 2 for a stream that is not whole and valid.
    for (const input of inputs) {
      const r = spawnSync(join(asan, 'qe-index'), ['--flows-stdout'], { input: readFileSync(input), env, encoding: 'latin1', maxBuffer: 256 << 20 });
      clean(`qe-index --flows-stdout < ${input}`, r);
      expect([0, 2], r.stderr).toContain(r.status);
    }
  });

  it('counts the indexed files\' flow tables (and every fixture taken for one) with qe-flowstat, with no sanitizer report', () => {
    const copies = join(work, 'index-inputs');
    const pcaps = readdirSync(copies).filter((f) => f.endsWith('.pcap')).map((f) => join(copies, f));
    expect(pcaps.filter((p) => existsSync(`${p}.qeflow`)).length).toBeGreaterThan(20);
    // Every parser fixture as the table of a file too: hostile bytes where a table is expected.
    const posing = join(work, 'posing');
    mkdirSync(posing);
    const fakes = parserInputs().map((f, i) => {
      const p = join(posing, `${i}.pcap`);
      copyFileSync(pcaps[0]!, p);
      copyFileSync(f, `${p}.qeflow`);
      return p;
    });
    // Records made from packets: any whole records' bytes (the ones after a table's headers here).
    const bodies = Buffer.concat(pcaps.filter((p) => existsSync(`${p}.qeflow`)).map((p) => readFileSync(`${p}.qeflow`).subarray(128)));
    let whole = 0;
    for (let i = 0; i < 3; i++) whole += flowRecordLen(bodies[whole]!);
    const body = bodies.subarray(0, whole);
    expect(flowBodyRecords(body)).toBe(3);
    const input = Buffer.concat([
      Buffer.from([...pcaps, ...fakes].map((p, i) => `table ${i % 2} ${i % 3 === 0 ? 1 : 0} 1000 ${p}\n`).join('') + 'plan\n'),
      Buffer.from(`body 1 ${body.length}\n`),
      body,
      Buffer.from('end\n'),
    ]);
    for (const by of ['host', 'src', 'dst', 'conversation', 'port', 'proto', 'vlan', 'iface']) {
      for (const range of [['0', '18446744073709551615'], ['1764000000500000000', '1764000001500000000']]) {
        const r = spawnSync(join(asan, 'qe-flowstat'), ['--from-ns', range[0]!, '--to-ns', range[1]!, '--by', by, '--top', '5'], { input, env, encoding: 'utf8', maxBuffer: 64 << 20 });
        clean(`qe-flowstat --by ${by}`, r);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/^\{"planned":\d+\}$/m);
      }
    }
  });

  it('captures live (lo) with no sanitizer report', async () => {
    const dir = join(work, 'live');
    mkdirSync(dir);
    const elements = join(work, 'live-elements');
    writeFileSync(elements, ELEMENTS);
    const helper = spawn(join(asan, 'qe-capture'), ['--iface', 'lo', '--dir', dir, '--buffer', '4194304', '--flush-ms', '100', '--filter', 'udp port 9', '--no-fsync', '--index-fields', INDEX_ALL, '--flows', '--elements', elements], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    helper.stdout.on('data', (d: Buffer) => (out += d.toString()));
    helper.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const until = Date.now() + 10_000;
    while (!out.includes('"started"') && Date.now() < until && helper.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    expect(out, err).toContain('"started"');
    const sock = createSocket('udp4');
    for (let i = 0; i < 200; i++) await new Promise<void>((r) => sock.send(Buffer.alloc(100 + i), 9, '127.0.0.1', () => r()));
    sock.close();
    await new Promise((r) => setTimeout(r, 300));
    helper.stdin.end('stop\n');
    const status = await new Promise<number | null>((r) => helper.on('exit', (code) => r(code)));
    clean('qe-capture --iface lo', { status, stderr: err });
    expect(status, err).toBe(0);
    const written = out.split('\n').filter((l) => l.includes('"file_closed"')).reduce((n, l) => n + (JSON.parse(l) as { packets: number }).packets, 0);
    expect(written).toBeGreaterThanOrEqual(200);
    const counted = out.split('\n').filter((l) => l.includes('"elements"')).map((l) => JSON.parse(l) as { elements: Array<{ packets: number }> }).at(-1);
    expect(counted?.elements[1]!.packets, 'udp port 9 is not port 53').toBe(0);
    expect(counted?.elements[2]!.packets).toBeGreaterThanOrEqual(200);
  });
});
