// The API through a real HTTPS client against a real daemon: a certificate signed by a CA made in
// the test with openssl, tokens made by `qe-packets token create`, a store of capture files the
// daemon finds at start, and its answers held to the CLI's for the same questions (extract byte for
// byte, flows and stats as JSON, the same error words). Run under the live-test lock: the daemon
// captures on lo.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FAILURES } from '../daemon/src/api/auth.js';
import { API_PREFIX, ROUTES, type ApiPath, type AuditEntry } from '../daemon/src/api/types.js';
import { formatIsoNs } from '../daemon/src/time/format-time.js';
import { BASE_NS, MS, traffic, writeCaptureFile } from './lib/fixture.js';
import { RunningCapture, cli, sleep, tempDir, writeConfig } from './lib/cli.js';

let dir: string;
let daemon: RunningCapture;
let base: string;
let ca: Buffer;
let configPath: string;
const tokens: Record<'viewer' | 'analyst' | 'admin', string> = { viewer: '', analyst: '', admin: '' };
/** The range of the small files (the byte-for-byte comparisons) and of the big one (slow downloads). */
const FROM = formatIsoNs(BASE_NS);
const TO = formatIsoNs(BASE_NS + 60_000n * MS);
const BIG_FROM = formatIsoNs(BASE_NS + 3_600_000n * MS);

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

function call(path: string, opts: { token?: string; method?: string; headers?: Record<string, string>; localAddress?: string } = {}): Promise<Answer> {
  const url = new URL(path, base);
  const options: RequestOptions = {
    method: opts.method ?? 'GET',
    ca,
    agent: false,
    headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const json = (a: Answer) => JSON.parse(a.body.toString()) as Record<string, unknown>;
const errorOf = (a: Answer) => (json(a) as { error: { code: string; message: string } }).error;
const q = (params: Record<string, string>) => `?${new URLSearchParams(params).toString()}`;

/** qe-extract processes that are children of the daemon. */
function extractorsOf(pid: number): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S (\d+)/.exec(stat);
      if (m && m[1] === 'qe-extract' && Number(m[2]) === pid) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Starts a download and stops reading after the headers: qe-extract fills the pipe and waits. */
function stalledDownload(path: string, token: string): Promise<{ res: IncomingMessage; destroy: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { ca, agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.pause();
      resolve({ res, destroy: () => req.destroy() });
    });
    req.on('error', () => {});
    req.on('error', reject);
    req.end();
  });
}

async function waitUntil(what: string, test: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  dir = await tempDir('qe-api-');
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  // A CA, and a server certificate it signs for 127.0.0.1: the client trusts the CA only.
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=qe-test-ca', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'api.key', '-out', 'api.csr');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', 'api.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'api.crt', '-days', '2', '-extfile', 'san.ext');
  ca = readFileSync(join(dir, 'ca.crt'));

  // Closed capture files of two interfaces the daemon finds in its store, and a big one for slow downloads.
  const store = join(dir, 'store');
  writeCaptureFile(store, 'eth0', traffic(BASE_NS + 7n, 400, 1));
  writeCaptureFile(store, 'eth1', traffic(BASE_NS + 5_000n * MS + 11n, 300, 2));
  writeCaptureFile(store, 'eth0', traffic(BASE_NS + 3_600_000n * MS, 120_000, 3));

  process.env.QE_PACKETS_STATE_DIR = join(dir, 'state');
  process.env.QE_PACKETS_LOG_DIR = join(dir, 'log');
  for (const role of ['viewer', 'analyst', 'admin'] as const) {
    const made = await cli(['token', 'create', `t-${role}`, '--role', role, '--json']);
    expect(made.exitCode, made.all).toBe(0);
    tokens[role] = (JSON.parse(made.stdout) as { token: string }).token;
  }
  configPath = await writeConfig(dir, {
    interfaces: ['lo'],
    // lo's own traffic (this test's requests) stays out of the store the answers are compared on.
    filter: 'udp port 9',
    buffer: '4MiB',
    paths: [store],
    api_tls: { cert: join(dir, 'api.crt'), key: join(dir, 'api.key') },
    api_max_extractions: 2,
  });
  daemon = new RunningCapture(configPath);
  await daemon.waitFor(/api: https:\/\/\S+/);
  await daemon.waitFor('lo: capturing');
  base = /api: (https:\/\/\S+)/.exec(daemon.output)![1]!;
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  delete process.env.QE_PACKETS_STATE_DIR;
  delete process.env.QE_PACKETS_LOG_DIR;
});

describe('tokens', () => {
  it('are kept as hashes only, in a 0600 file; list and revoke', async () => {
    const path = join(dir, 'state', 'tokens.json');
    const text = await readFile(path, 'utf8');
    for (const t of Object.values(tokens)) expect(text).not.toContain(t);
    expect(execFileSync('stat', ['-c', '%a', path]).toString().trim()).toBe('600');
    const list = await cli(['token', 'list', '--json']);
    expect(list.stdout.split('\n').map((l) => JSON.parse(l) as { name: string; role: string })).toEqual([
      expect.objectContaining({ name: 't-viewer', role: 'viewer' }),
      expect.objectContaining({ name: 't-analyst', role: 'analyst' }),
      expect.objectContaining({ name: 't-admin', role: 'admin' }),
    ]);
    const extra = JSON.parse((await cli(['token', 'create', 'short-lived', '--role', 'viewer', '--json'])).stdout) as { token: string };
    expect((await call(`${API_PREFIX}/whoami`, { token: extra.token })).status).toBe(200);
    expect((await cli(['token', 'revoke', 'short-lived'])).exitCode).toBe(0);
    // No reload: the daemon sees the file change.
    expect((await call(`${API_PREFIX}/whoami`, { token: extra.token })).status).toBe(401);
    const again = await cli(['token', 'create', 't-viewer', '--role', 'viewer']);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toMatch(/a token named t-viewer exists/);
    expect((await cli(['token', 'create', 'x', '--role', 'root'])).stderr).toMatch(/--role root: not a role; choose one of viewer, analyst, admin/);
  });
});

describe('HTTPS, roles and errors', () => {
  it('serves HTTPS with the configured certificate; status (API and CLI) shows the URL and its SHA-256 fingerprint', async () => {
    const fp = execFileSync('openssl', ['x509', '-in', join(dir, 'api.crt'), '-noout', '-fingerprint', '-sha256']).toString().trim().split('=')[1]!;
    const info = json(await call(`${API_PREFIX}/info`));
    expect(info.tls_fingerprint).toBe(fp);
    const status = await cli(['status', '--config', configPath]);
    expect(status.stdout).toContain(`api        ${base} (certificate SHA-256 ${fp})`);
    const st = json(await call(`${API_PREFIX}/status`, { token: tokens.viewer })) as { figures: { api: { url: string; fingerprint: string } } };
    expect(st.figures.api).toEqual({ url: base, fingerprint: fp });
    // A client that does not trust the CA does not get an answer.
    await expect(new Promise((resolve, reject) => request(new URL(`${API_PREFIX}/info`, base), { agent: false }, resolve).on('error', reject).end())).rejects.toThrow(/self.signed|unable to verify|local issuer/);
  });

  it('the role matrix: 401 without a valid token, 403 below the least role, 200 at or above it', async () => {
    const ask: Record<ApiPath, string> = {
      '/info': '',
      '/whoami': '',
      '/status': '',
      '/elements': '',
      '/files': q({ from: FROM, to: TO }),
      '/stats': q({ from: FROM, to: TO }),
      '/history': '',
      '/explain': q({ from: FROM, to: TO }),
      '/flows': q({ from: FROM, to: TO }),
      '/extract': q({ from: FROM, to: TO, filter: 'udp' }),
      '/extract/link': q({ from: FROM, to: TO, filter: 'udp' }),
      '/extract/download': '', // its ticket is its credential: held to it in 'download links'
      '/audit': '',
      '/openapi.json': '',
      '/reload': '',
    };
    const order = ['viewer', 'analyst', 'admin'] as const;
    const seen: string[] = [];
    let n = 0;
    for (const [path, spec] of Object.entries(ROUTES) as [ApiPath, (typeof ROUTES)[ApiPath]][]) {
      if ('ticket' in spec) {
        seen.push(path);
        continue;
      }
      const target = `${API_PREFIX}${path}${ask[path]}`;
      const method = spec.method;
      // Failures from an address of their own each: ten from one would be a guesser (429, tested below).
      const none = await call(target, { method, localAddress: `127.0.1.${++n}` });
      const bad = await call(target, { method, token: `qep_${'A'.repeat(43)}`, localAddress: `127.0.1.${n}` });
      seen.push(`${path} none:${none.status} bad:${bad.status}`);
      if (spec.role) {
        expect(errorOf(none).code, path).toBe('unauthorized');
        expect(none.status, path).toBe(401);
        expect(bad.status, path).toBe(401);
      } else {
        expect(none.status, path).toBe(200);
      }
      for (const role of order) {
        const a = await call(target, { method, token: tokens[role] });
        const allowed = !spec.role || order.indexOf(role) >= order.indexOf(spec.role);
        expect(a.status, `${path} as ${role}: ${a.body.toString().slice(0, 200)}`).toBe(allowed ? 200 : 403);
        if (!allowed) expect(errorOf(a).message).toBe(`token t-${role} has role ${role}: this needs ${spec.role} or above`);
      }
    }
    expect(seen.length).toBe(Object.keys(ROUTES).length);
  }, 120_000);

  it('bad requests: 400 with the CLI\'s message, 414 for a huge query, 431 for huge headers, 404 and 405 as JSON', async () => {
    const badTime = await call(`${API_PREFIX}/extract${q({ from: 'yesterdayish' })}`, { token: tokens.analyst });
    expect(badTime.status).toBe(400);
    const cliTime = await cli(['extract', '--config', configPath, '--from', 'yesterdayish', '-w', join(dir, 'x.pcap')]);
    expect(cliTime.stderr).toContain(errorOf(badTime).message);
    expect(errorOf(badTime).message).toMatch(/^--from: cannot read "yesterdayish" as a time/);

    const badFilter = await call(`${API_PREFIX}/extract${q({ from: FROM, to: TO, filter: 'hots 10.0.0.1' })}`, { token: tokens.analyst });
    expect(badFilter.status).toBe(400);
    expect(badFilter.headers['content-type']).toMatch(/^application\/json/);
    const cliFilter = await cli(['extract', '--config', configPath, '--from', FROM, '--to', TO, '--filter', 'hots 10.0.0.1', '-w', join(dir, 'x.pcap')]);
    expect(cliFilter.exitCode).toBe(2);
    expect(cliFilter.stderr.split('\n').at(-1)).toBe(`qe-packets extract: ${errorOf(badFilter).message}`);
    expect(errorOf(badFilter).message).toMatch(/^bad filter "hots 10.0.0.1": /);

    const reversed = await call(`${API_PREFIX}/explain${q({ from: TO, to: FROM })}`, { token: tokens.viewer });
    expect(reversed.status).toBe(400);
    expect(errorOf(reversed).message).toMatch(/is after --to .*: swap them/);
    const badIface = await call(`${API_PREFIX}/stats${q({ from: FROM, to: TO, iface: 'eth9' })}`, { token: tokens.viewer });
    expect(errorOf(badIface).message).toBe('--iface eth9: no capture files for that interface in the store (interfaces in the store: eth0, eth1)');
    const badBy = await call(`${API_PREFIX}/stats${q({ from: FROM, by: 'colour' })}`, { token: tokens.viewer });
    expect(errorOf(badBy).message).toMatch(/^--by colour: not a statistic/);
    const unknown = await call(`${API_PREFIX}/files${q({ form: FROM })}`, { token: tokens.viewer });
    expect([unknown.status, errorOf(unknown).message]).toEqual([400, 'unknown parameter "form": this endpoint takes from, to, iface']);

    const hugeQuery = await call(`${API_PREFIX}/extract${q({ from: FROM, filter: `host ${'1'.repeat(9000)}` })}`, { token: tokens.analyst });
    expect([hugeQuery.status, errorOf(hugeQuery).code]).toEqual([414, 'uri_too_long']);
    const hugeHeader = await call(`${API_PREFIX}/status`, { token: tokens.viewer, headers: { 'x-padding': 'a'.repeat(20_000) } });
    expect([hugeHeader.status, errorOf(hugeHeader).code]).toEqual([431, 'header_too_large']);
    const nothing = await call(`${API_PREFIX}/nothing`, { token: tokens.viewer });
    expect([nothing.status, errorOf(nothing).code]).toEqual([404, 'not_found']);
    const post = await call(`${API_PREFIX}/status`, { token: tokens.viewer, method: 'POST' });
    expect([post.status, post.headers.allow]).toEqual([405, 'GET']);
    // Not an API path, and no console built into this test's tree yet or not: never a 200 of nothing.
    expect((await call('/no-such-page')).status).toBe(404);
  });
});

describe('answers are the CLI\'s', () => {
  it('an extraction download is byte for byte `qe-packets extract` for the same range and filter, and is audited', async () => {
    const filter = 'tcp and host 10.0.0.2';
    const got = await call(`${API_PREFIX}/extract${q({ from: FROM, to: TO, filter })}`, { token: tokens.analyst });
    expect(got.status, got.body.toString().slice(0, 300)).toBe(200);
    expect(got.headers['content-type']).toBe('application/vnd.tcpdump.pcap');
    expect(got.headers['content-disposition']).toBe('attachment; filename="qe-packets_20240501T100000Z_20240501T100100Z.pcap"');
    const out = join(dir, 'cli.pcap');
    const run = await cli(['extract', '--config', configPath, '--from', FROM, '--to', TO, '--filter', filter, '-w', out]);
    expect(run.exitCode, run.all).toBe(0);
    const want = await readFile(out);
    expect(got.body.length).toBe(want.length);
    expect(got.body.equals(want)).toBe(true);
    const packets = Number(/wrote ([\d,]+) packets/.exec(run.stderr)![1]!.replace(/,/g, ''));
    expect(packets).toBeGreaterThan(50);
    const capinfos = execFileSync('capinfos', ['-c', '-M', join(dir, 'cli.pcap')]).toString();
    expect(capinfos).toContain(`Number of packets:   ${packets}`);

    const lines = (await readFile(join(dir, 'log', 'audit.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as AuditEntry);
    const entry = lines.findLast((e) => e.action === 'extract' && e.query.filter === filter)!;
    expect(entry).toMatchObject({ token: 't-analyst', role: 'analyst', address: '127.0.0.1', query: { from: FROM, to: TO, filter, iface: [] }, packets, bytes: want.length, status: 200, outcome: 'complete' });
    // The same line went to the journal (the daemon's stderr).
    expect(daemon.output).toContain(`audit: ${JSON.stringify(entry)}`);
    // The refused ones of the test before are there too, with their reason.
    expect(lines.some((e) => e.outcome === 'refused' && e.status === 400 && /bad filter/.test(e.error ?? ''))).toBe(true);
    const recent = json(await call(`${API_PREFIX}/audit${q({ limit: '1' })}`, { token: tokens.analyst })) as { entries: AuditEntry[] };
    expect(recent.entries).toEqual([lines.at(-1)]);
  });

  it('flows, stats and explain answer what the commands print with --json', async () => {
    const flows = await call(`${API_PREFIX}/flows${q({ from: FROM, to: TO, filter: 'udp' })}`, { token: tokens.analyst });
    expect(flows.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const cliFlows = await cli(['flows', '--config', configPath, '--from', FROM, '--to', TO, '--filter', 'udp', '--json']);
    expect(cliFlows.exitCode, cliFlows.all).toBe(0);
    expect(flows.body.toString()).toBe(`${cliFlows.stdout}\n`);
    expect(flows.body.toString().split('\n').length).toBeGreaterThan(5);

    const stats = await call(`${API_PREFIX}/stats${q({ from: FROM, to: TO, by: 'conversation', top: '5', interval: '10s' })}`, { token: tokens.viewer });
    const cliStats = await cli(['stats', '--config', configPath, '--from', FROM, '--to', TO, '--by', 'conversation', '--top', '5', '--interval', '10s', '--json']);
    expect(json(stats)).toEqual(JSON.parse(cliStats.stdout));
    expect((json(stats).rows as unknown[]).length).toBe(5);

    const explain = await call(`${API_PREFIX}/explain${q({ from: FROM, to: TO, filter: 'port 53' })}`, { token: tokens.viewer });
    const cliExplain = await cli(['extract', '--config', configPath, '--from', FROM, '--to', TO, '--filter', 'port 53', '--explain', '--json']);
    expect(json(explain)).toEqual(JSON.parse(cliExplain.stdout));

    const files = json(await call(`${API_PREFIX}/files${q({ from: FROM, to: TO, iface: 'eth1' })}`, { token: tokens.viewer })) as { files: { iface: string; packets: number }[] };
    expect(files.files.map((f) => [f.iface, f.packets])).toEqual([['eth1', 300]]);

    const audit = (await readFile(join(dir, 'log', 'audit.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as AuditEntry);
    expect(audit.findLast((e) => e.action === 'flows')).toMatchObject({ token: 't-analyst', query: { filter: 'udp' }, status: 200, outcome: 'complete', bytes: flows.body.length });
  }, 60_000);
});

describe('nothing in the range: the CLI exits 3, the API answers 404 empty_range, in the same words', () => {
  const BEFORE = { from: '2020-01-01T00:00:00Z', to: '2020-01-02T00:00:00Z' };
  const cliSays = async (args: string[]) => {
    const r = await cli([...args, '--config', configPath]);
    return { exitCode: r.exitCode, last: r.stderr.trim().split('\n').at(-1)! };
  };

  it('files, stats, flows and extract, before any file and with a filter nothing matches', async () => {
    const cases: { path: ApiPath; params: Record<string, string>; token: string; args: string[] }[] = [
      { path: '/files', params: BEFORE, token: tokens.viewer, args: ['files', '--from', BEFORE.from, '--to', BEFORE.to] },
      { path: '/stats', params: BEFORE, token: tokens.viewer, args: ['stats', '--from', BEFORE.from, '--to', BEFORE.to] },
      { path: '/flows', params: BEFORE, token: tokens.analyst, args: ['flows', '--from', BEFORE.from, '--to', BEFORE.to] },
      { path: '/stats', params: { from: FROM, to: TO, filter: 'host 203.0.113.99' }, token: tokens.viewer, args: ['stats', '--from', FROM, '--to', TO, '--filter', 'host 203.0.113.99'] },
      { path: '/flows', params: { from: FROM, to: TO, filter: 'host 203.0.113.99' }, token: tokens.analyst, args: ['flows', '--from', FROM, '--to', TO, '--filter', 'host 203.0.113.99'] },
      { path: '/extract', params: BEFORE, token: tokens.analyst, args: ['extract', '--from', BEFORE.from, '--to', BEFORE.to, '-w', join(dir, 'empty.pcap')] },
      { path: '/extract', params: { from: FROM, to: TO, filter: 'host 203.0.113.99' }, token: tokens.analyst, args: ['extract', '--from', FROM, '--to', TO, '--filter', 'host 203.0.113.99', '-w', join(dir, 'empty.pcap')] },
    ];
    for (const c of cases) {
      const api = await call(`${API_PREFIX}${c.path}${q(c.params)}`, { token: c.token });
      const said = await cliSays(c.args);
      const what = `${c.path} ${JSON.stringify(c.params)}`;
      expect([api.status, api.headers['content-type'], errorOf(api).code], what).toEqual([404, 'application/json; charset=utf-8', 'empty_range']);
      expect(said.exitCode, what).toBe(3);
      // extract adds what it wrote ("; wrote an empty pcap to ...").
      expect(said.last.startsWith(`qe-packets ${c.args[0]}: ${errorOf(api).message}`), `${what}: ${said.last} / ${errorOf(api).message}`).toBe(true);
      expect(errorOf(api).message, what).toMatch(/^no (packets|capture file) between /);
    }
    const audit = (await readFile(join(dir, 'log', 'audit.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as AuditEntry);
    expect(audit.findLast((e) => e.action === 'extract')).toMatchObject({ status: 404, outcome: 'refused', packets: 0, bytes: 0, error: expect.stringMatching(/^no packets between .* matching "host 203.0.113.99" \(searched 2 files\)$/) });
    // A link is not given for a range without files.
    const link = await call(`${API_PREFIX}/extract/link${q(BEFORE)}`, { token: tokens.analyst, method: 'POST' });
    expect([link.status, errorOf(link).code]).toEqual([404, 'empty_range']);
  }, 60_000);

  it('qe-packets files lists what GET /files answers', async () => {
    const api = json(await call(`${API_PREFIX}/files${q({ from: FROM, to: TO })}`, { token: tokens.viewer }));
    const r = await cli(['files', '--config', configPath, '--from', FROM, '--to', TO, '--json']);
    expect(r.exitCode, r.all).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(api);
    expect((api.files as { iface: string }[]).map((f) => f.iface)).toEqual(['eth0', 'eth1']);
    // Without a range: every file, as the API without from.
    const all = await cli(['files', '--config', configPath, '--json']);
    expect(JSON.parse(all.stdout).files).toEqual((json(await call(`${API_PREFIX}/files${q({ to: JSON.parse(all.stdout).to as string })}`, { token: tokens.viewer })).files));
    expect((JSON.parse(all.stdout) as { total: { files: number } }).total.files).toBe(3);
    const text = await cli(['files', '--config', configPath, '--iface', 'eth1']);
    expect(text.stdout).toMatch(/^FIRST +LAST +IFACE +PACKETS +SIZE +PATH\n2024-05-01T10:00:05\.\d{9}Z +2024-05-01T10:00:\d\d\.\d{9}Z +eth1 +300 /);
    expect(text.stdout).toMatch(/\n\n1 file, 300 packets, [\d.]+ ?\w+ on disk$/);
    const bad = await cli(['files', '--config', configPath, '--iface', 'eth9']);
    expect([bad.exitCode, bad.stderr.trim()]).toEqual([2, `qe-packets files: ${errorOf(await call(`${API_PREFIX}/files${q({ iface: 'eth9' })}`, { token: tokens.viewer })).message}`]);
  });
});

describe('download links', () => {
  const link = async (params: Record<string, string>, token = tokens.analyst) => {
    const a = await call(`${API_PREFIX}/extract/link${q(params)}`, { token, method: 'POST' });
    expect(a.status, a.body.toString()).toBe(200);
    return json(a) as { url: string; expires: string };
  };

  it('POST /extract/link gives a single-use URL, valid a minute, that downloads without a token what the CLI extracts; audited under the link\'s token', async () => {
    const filter = 'udp and host 10.0.0.3';
    const before = Date.now();
    const l = await link({ from: FROM, to: TO, filter });
    expect(l.url).toMatch(/^\/api\/v1\/extract\/download\?ticket=qet_[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(l.expires) - before).toBeGreaterThan(55_000);
    expect(Date.parse(l.expires) - before).toBeLessThan(65_000);
    // The ticket itself is kept nowhere on disk, and not in the daemon's log.
    const ticket = l.url.split('=')[1]!;
    expect(daemon.output).not.toContain(ticket);

    const got = await call(l.url);
    expect(got.status, got.body.toString().slice(0, 300)).toBe(200);
    expect(got.headers['content-type']).toBe('application/vnd.tcpdump.pcap');
    expect(got.headers['content-disposition']).toBe('attachment; filename="qe-packets_20240501T100000Z_20240501T100100Z.pcap"');
    const out = join(dir, 'link-cli.pcap');
    const run = await cli(['extract', '--config', configPath, '--from', FROM, '--to', TO, '--filter', filter, '-w', out]);
    expect(run.exitCode, run.all).toBe(0);
    expect(got.body.equals(await readFile(out))).toBe(true);
    const entry = (await readFile(join(dir, 'log', 'audit.log'), 'utf8')).trim().split('\n').map((x) => JSON.parse(x) as AuditEntry).findLast((e) => e.query.filter === filter)!;
    expect(entry).toMatchObject({ token: 't-analyst', role: 'analyst', action: 'extract', status: 200, outcome: 'complete', bytes: got.body.length });

    // Used: a second GET is refused, as is a made-up ticket; neither starts an extraction.
    const again = await call(l.url);
    expect([again.status, errorOf(again).code]).toEqual([401, 'unauthorized']);
    expect(errorOf(again).message).toMatch(/links from \/extract\/link work once, within 60 s/);
    const madeUp = await call(`${API_PREFIX}/extract/download${q({ ticket: `qet_${'C'.repeat(43)}` })}`, { localAddress: '127.0.2.1' });
    expect(madeUp.status).toBe(401);
    const none = await call(`${API_PREFIX}/extract/download`, { localAddress: '127.0.2.1' });
    expect(none.status).toBe(401);
  });

  it('refuses a link to a viewer, a bad filter before any link, and a bad ticket counts as a failed attempt', async () => {
    const viewer = await call(`${API_PREFIX}/extract/link${q({ from: FROM, to: TO })}`, { token: tokens.viewer, method: 'POST' });
    expect(viewer.status).toBe(403);
    const badFilter = await call(`${API_PREFIX}/extract/link${q({ from: FROM, to: TO, filter: 'hots 1' })}`, { token: tokens.analyst, method: 'POST' });
    expect([badFilter.status, errorOf(badFilter).message]).toEqual([400, expect.stringMatching(/^bad filter "hots 1": /)]);
    const from = '127.0.2.2';
    for (let i = 0; i < MAX_FAILURES; i++) expect((await call(`${API_PREFIX}/extract/download${q({ ticket: `qet_${'D'.repeat(43)}` })}`, { localAddress: from })).status).toBe(401);
    const l = await link({ from: FROM, to: TO });
    expect((await call(l.url, { localAddress: from })).status).toBe(429);
  });
});

describe('extraction never costs capture', () => {
  it('at most api.max_extractions at once (429 beyond), each at idle priority, and a cancelled download leaves no qe-extract behind', async () => {
    const pid = daemon.proc.pid!;
    const path = `${API_PREFIX}/extract${q({ from: BIG_FROM })}`;
    const one = await stalledDownload(path, tokens.analyst);
    const two = await stalledDownload(path, tokens.admin);
    expect([one.res.statusCode, two.res.statusCode]).toEqual([200, 200]);
    await waitUntil('two helpers', () => extractorsOf(pid).length === 2);
    for (const p of extractorsOf(pid)) {
      // nice 19 (field 19 of stat) and the idle I/O class
      expect(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]).toBe('19');
      expect(execFileSync('ionice', ['-p', String(p)]).toString().trim()).toBe('idle');
    }
    const third = await call(path, { token: tokens.analyst });
    expect(third.status).toBe(429);
    expect(errorOf(third).message).toBe('2 extractions are running, api.max_extractions allows 2: try again when one has finished');
    expect(third.headers['retry-after']).toBe('10');
    // A download link refused for want of a slot is not used up by it.
    const link = json(await call(`${API_PREFIX}/extract/link${q({ from: FROM, to: TO })}`, { token: tokens.analyst, method: 'POST' })) as { url: string };
    expect((await call(link.url)).status).toBe(429);

    one.destroy();
    two.destroy();
    await waitUntil('no qe-extract left', () => extractorsOf(pid).length === 0);
    await waitUntil('the cancellations audited', async () => {
      const lines = (await readFile(join(dir, 'log', 'audit.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as AuditEntry);
      return lines.filter((e) => e.outcome === 'cancelled' && e.query.from === BIG_FROM).length === 2;
    });
    // The slots are free again: the link works now, once.
    expect((await call(link.url)).status).toBe(200);
    expect((await call(link.url)).status).toBe(401);
    const after = await stalledDownload(path, tokens.analyst);
    expect(after.res.statusCode).toBe(200);
    after.destroy();
    await waitUntil('no qe-extract left', () => extractorsOf(pid).length === 0);
    // A slot is free by the time its download has ended: clients that start the next at once get it.
    const small = `${API_PREFIX}/extract${q({ from: FROM, to: TO })}`;
    for (let round = 0; round < 5; round++) {
      const statuses = await Promise.all([call(small, { token: tokens.analyst }), call(small, { token: tokens.admin })]);
      expect(statuses.map((a) => a.status), `round ${round}`).toEqual([200, 200]);
    }
  }, 60_000);
});

describe('history, reload and the OpenAPI document', () => {
  it('keeps 10-second samples of each interface and the store in memory', async () => {
    await waitUntil('a sample', async () => ((json(await call(`${API_PREFIX}/history`, { token: tokens.viewer })).samples as unknown[]).length > 0), 25_000);
    const h = json(await call(`${API_PREFIX}/history`, { token: tokens.viewer })) as { interval_s: number; samples: { t: number; interfaces: { name: string }[]; store: { used_bytes: number } }[] };
    expect(h.interval_s).toBe(10);
    expect(h.samples[0]!.interfaces.map((i) => i.name)).toEqual(['lo']);
    expect(h.samples[0]!.store.used_bytes).toBeGreaterThan(1e6);
  }, 30_000);

  it('queries read the store of the configuration in force, not the file on disk', async () => {
    const good = await readFile(configPath, 'utf8');
    // A config file being edited (and not yet reloaded) changes nothing the API answers.
    await writeFile(configPath, good.replace('  file_size: 64MiB', '  file_size: 1GB2'));
    try {
      for (const [path, token] of [['/stats', tokens.viewer], ['/flows', tokens.analyst], ['/files', tokens.viewer], ['/explain', tokens.viewer], ['/extract', tokens.analyst]] as const) {
        const a = await call(`${API_PREFIX}${path}${q({ from: FROM, to: TO })}`, { token });
        expect(a.status, `${path}: ${a.body.toString().slice(0, 300)}`).toBe(200);
      }
    } finally {
      await writeFile(configPath, good);
    }
  });

  it('POST /reload reloads as SIGHUP does; a bad configuration is a 400 with the reason', async () => {
    const ok = await call(`${API_PREFIX}/reload`, { token: tokens.admin, method: 'POST' });
    expect(json(ok)).toEqual({ applied: true, restart_needed: [] });
    const good = await readFile(configPath, 'utf8');
    await writeFile(configPath, good.replace('  file_size: 64MiB', '  file_size: 1GB2'));
    try {
      const bad = await call(`${API_PREFIX}/reload`, { token: tokens.admin, method: 'POST' });
      expect(bad.status).toBe(400);
      expect(errorOf(bad).message).toMatch(/^reload refused, capture goes on with the previous configuration: .*storage\.file_size = "1GB2"/s);
    } finally {
      await writeFile(configPath, good);
    }
  });

  it('openapi.json is valid OpenAPI 3.1, names exactly the routes of types.ts, and real answers match its schemas', async () => {
    const doc = json(await call(`${API_PREFIX}/openapi.json`)) as { paths: Record<string, Record<string, { responses: Record<string, { content: Record<string, { schema: unknown }> }> }>>; components: { schemas: Record<string, unknown> } };
    const result = await new Validator().validate(doc as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(Object.keys(doc.paths).sort()).toEqual(Object.keys(ROUTES).map((p) => `${API_PREFIX}${p}`).sort());
    for (const [p, spec] of Object.entries(ROUTES)) expect(Object.keys(doc.paths[`${API_PREFIX}${p}`]!)).toEqual([spec.method.toLowerCase()]);

    const ajv = new Ajv2020({ strict: false });
    ajv.addSchema({ $id: 'doc', components: doc.components });
    const check = (path: ApiPath, body: unknown) => {
      const schema = JSON.parse(JSON.stringify(doc.paths[`${API_PREFIX}${path}`]![ROUTES[path].method.toLowerCase()]!.responses['200']!.content[ROUTES[path].produces]!.schema).replaceAll('"#/components', '"doc#/components'));
      const validate = ajv.compile(schema);
      expect(validate(body) ? [] : validate.errors, path).toEqual([]);
    };
    const range = q({ from: FROM, to: TO });
    check('/extract/link', json(await call(`${API_PREFIX}/extract/link${range}`, { token: tokens.admin, method: 'POST' })));
    for (const path of ['/info', '/whoami', '/status', '/elements', '/files', '/stats', '/history', '/explain', '/audit', '/openapi.json'] as const) {
      const a = await call(`${API_PREFIX}${path}${['/files', '/stats', '/explain'].includes(path) ? range : ''}`, { token: tokens.admin });
      check(path, json(a));
    }
    const flows = (await call(`${API_PREFIX}/flows${range}`, { token: tokens.admin })).body.toString().trim().split('\n');
    for (const line of flows.slice(0, 50)) check('/flows', JSON.parse(line));
    check('/reload', json(await call(`${API_PREFIX}/reload`, { token: tokens.admin, method: 'POST' })));
  });
});

describe('guessing tokens', () => {
  it(`answers 429 after ${MAX_FAILURES} failures from one address (other addresses unaffected)`, async () => {
    const from = '127.0.0.2';
    for (let i = 0; i < MAX_FAILURES; i++) expect((await call(`${API_PREFIX}/status`, { token: `qep_${'B'.repeat(43)}`, localAddress: from })).status).toBe(401);
    const blocked = await call(`${API_PREFIX}/status`, { token: tokens.viewer, localAddress: from });
    expect(blocked.status).toBe(429);
    expect(errorOf(blocked).message).toMatch(new RegExp(`^${MAX_FAILURES} failed attempts from 127.0.0.2 in the last 60 s: try again in \\d+ s$`));
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect((await call(`${API_PREFIX}/status`, { token: tokens.viewer })).status).toBe(200);
  });
});
