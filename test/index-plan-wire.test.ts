// The native planner's request (daemon/native/index-plan.h) has one C header and one TypeScript
// copy (daemon/src/index/plan-wire.ts): every #define must equal its TypeScript constant and every
// TypeScript constant must have its #define. Then the planner itself (`qe-extract --plan`,
// index-read.c) against the TypeScript reader (reader.ts, which `qe-packets index` still uses):
// the same candidate starts and index bytes for every file and many plans, and a request it cannot
// read refused with a message.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as wire from '../daemon/src/index/plan-wire.js';
import { planReads } from '../daemon/src/extract/read-plan.js';
import { decodeGlobalHeader, decodeRecordHeader } from '../daemon/src/pcap/format.js';
import { indexPathFor, type IndexField } from '../daemon/src/index/format.js';
import { planFilter } from '../daemon/src/index/plan.js';
import { IndexReader } from '../daemon/src/index/reader.js';
import { root } from './lib/cli.js';
import { camel, headerConstants, type Value } from './lib/c-header.js';
import { BASE_NS, MS, tempDir, writeCaptureFile, type FixtureFile } from './lib/fixture.js';
import { buildIndex } from './lib/index-build.js';
import { mixedTraffic } from './lib/mixed-traffic.js';
import type { CatalogEntry } from '../daemon/src/store/catalog.js';

const headerText = readFileSync(join(root, 'daemon', 'native', 'index-plan.h'), 'utf8');
const GROUPS: Record<string, string> = { ITEM: 'PLAN_ITEM', OP: 'PLAN_OP', WHY: 'PLAN_WHY' };

function tsValue(mod: Record<string, unknown>, name: string): Value | undefined {
  const n = name.replace(/^QE_PLAN_/, '');
  const group = /^(ITEM|OP|WHY)_(.+)$/.exec(n);
  if (group) return (mod[GROUPS[group[1]!]!] as Record<string, string>)[camel(group[2]!)];
  const v = mod[`PLAN_${n}`];
  return typeof v === 'number' || typeof v === 'string' ? v : undefined;
}

function drift(text: string, mod: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const c = headerConstants(text);
  for (const [name, v] of c) {
    if (name === 'QE_INDEX_PLAN_H') continue;
    const t = tsValue(mod, name);
    if (t === undefined) problems.push(`${name} (${JSON.stringify(v)}) has no TypeScript constant`);
    else if (t !== v) problems.push(`${name} is ${JSON.stringify(v)} in the header but ${JSON.stringify(t)} in plan-wire.ts`);
  }
  for (const [k, v] of Object.entries(mod)) {
    const names = typeof v === 'number' || typeof v === 'string' ? [`QE_${k}`] : v && typeof v === 'object' && k in { PLAN_ITEM: 1, PLAN_OP: 1, PLAN_WHY: 1 } ? Object.keys(v).map((f) => `QE_${k}_${f.replace(/[A-Z]/g, (ch) => `_${ch}`).toUpperCase()}`) : [];
    for (const n of names) if (!c.has(n)) problems.push(`plan-wire.ts has ${n.replace(/^QE_/, '')} but the header has no ${n}`);
  }
  return problems;
}

describe('plan request: header and TypeScript copy', () => {
  it('agrees with plan-wire.ts, both ways', () => {
    expect(headerConstants(headerText).get('QE_PLAN_WHY_NOT_NARROWED')).toBe('not-narrowed');
    expect(drift(headerText, wire as unknown as Record<string, unknown>)).toEqual([]);
  });

  it('fails when one side drifts', () => {
    const mod = wire as unknown as Record<string, unknown>;
    expect(drift(headerText.replace('#define QE_PLAN_MAX_DEPTH 64', '#define QE_PLAN_MAX_DEPTH 65'), mod)).toEqual(['QE_PLAN_MAX_DEPTH is 65 in the header but 64 in plan-wire.ts']);
    expect(drift(headerText.replace('#define QE_PLAN_OP_OR "or"', '#define QE_PLAN_OP_OR "any"'), mod)).toEqual(['QE_PLAN_OP_OR is "any" in the header but "or" in plan-wire.ts']);
    expect(drift(headerText, { ...mod, PLAN_WHY: { ...(mod.PLAN_WHY as object), tooBig: 'too-big' } })).toEqual(['plan-wire.ts has PLAN_WHY_TOO_BIG but the header has no QE_PLAN_WHY_TOO_BIG']);
  });
});

const FIELDS: IndexField[] = ['mac', 'ip', 'port', 'proto', 'vlan'];
let dir: string;
let cleanup: () => void;
let files: FixtureFile[];

beforeAll(() => {
  ({ dir, cleanup } = tempDir('plan-wire'));
  files = [];
  let t = BASE_NS;
  for (let f = 0; f < 4; f++) {
    const packets = mixedTraffic(2500, 40 + f, 0.95).map((data, i) => ({ tsNs: t + BigInt(i) * MS, data }));
    t = packets[packets.length - 1]!.tsNs + MS;
    const file = writeCaptureFile(join(dir, 'store'), 'eth0', packets, { partial: f === 3 });
    writeFileSync(indexPathFor(file.path), buildIndex(readFileSync(file.path), { fields: f === 1 ? ['ip', 'port'] : FIELDS, blockSize: 4096, ...(f === 3 ? { segmentEvery: 300 } : {}) }));
    files.push(file);
  }
});
afterAll(() => cleanup());

function entries(): CatalogEntry[] {
  return files.map((f) => ({ path: f.path, size: readFileSync(f.path).length, packets: 2500, partial: f.path.endsWith('.part') }) as unknown as CatalogEntry);
}

describe('qe-extract --plan against the TypeScript reader', () => {
  it.each([
    'host 10.0.0.1',
    'port 53',
    'host 10.0.0.1 and port 53',
    'src host 192.168.5.9 or dst host 172.16.0.4',
    'net 10.0.0.0/8',
    'portrange 1-1000',
    'vlan 200',
    'ether host 02:00:00:00:00:03 and tcp',
    'ip6 host 2001:db8::2 or udp',
    'tcp and not port 80',
  ])('finds the same candidates and reads the same index bytes for %s', async (filter) => {
    // No merging and no reading whole: each range is one candidate block, as the reader gives it.
    const reads = await planReads(entries(), filter, true, { mergeGapBlocks: 0, dense: 2 });
    let through = 0;
    for (const [i, r] of reads.entries()) {
      const f = entries()[i]!;
      const ix = IndexReader.open(indexPathFor(f.path), f.path);
      try {
        const plan = planFilter(filter, ix.fields);
        if (plan.op === 'all') {
          expect(['fields', 'not-narrowed']).toContain(r.why);
          continue;
        }
        const c = await ix.lookup(plan);
        if (c.all) throw new Error('unreachable');
        // Ranges that touch (gap 0) are one read.
        const want: [number, number | 'end'][] = [];
        for (const s of c.starts) {
          const stop = Math.min((Math.floor(s / ix.blockSize) + 1) * ix.blockSize, ix.coveredEnd);
          const last = want[want.length - 1];
          if (last && s === last[1]) last[1] = stop;
          else want.push([s, stop]);
        }
        if (f.size > ix.coveredEnd || f.partial) {
          const last = want[want.length - 1];
          if (last && last[1] === ix.coveredEnd) last[1] = 'end';
          else want.push([Math.max(ix.coveredEnd, 24), 'end']);
        }
        expect(r.why).toBe('index');
        expect(r.ranges).toEqual(want);
        expect(r.blocks).toBe(c.starts.length);
        expect(r.indexBytes).toBe(ix.bytesRead);
        through++;
      } finally {
        ix.close();
      }
    }
    expect(through).toBeGreaterThan(0);
  });

  it('refuses a request it cannot read, saying what is wrong', () => {
    const tool = join(root, 'build', 'native', 'qe-extract');
    const run = (input: string, args: string[] = []) => spawnSync(tool, ['--plan', ...args], { input, encoding: 'utf8' });
    const cases: [string, RegExp][] = [
      ['lookup 8 and 0\n', /and\/or of no operands/],
      ['lookup 8 or 2 all key 5 0035\n', /all inside a plan/],
      ['lookup 8 key 5 00AB\n', /lowercase hex/],
      ['lookup 8 key 5 00112233445566778899aabbccddeeff00\n', /1 to 16 bytes/],
      ['lookup 8 range 5 00 0035\n', /one length/],
      ['lookup 8 key 9 0035\n', /key type 9 is above 6/],
      ['lookup 8 near 5 0035\n', /unknown plan word "near"/],
      ['lookup 8 key 5 0035 key 5 0036\n', /text after the plan/],
      [`lookup 8 ${'and 1 '.repeat(70)}key 5 0035\n`, /nested deeper than 64/],
      ['file 10 1 0\n', /a file line must be/],
      ['file 10 1 0 /x.pcap\n', /a file line must be/],
      ['file 10 1 2 - - /x.pcap\n', /bad PARTIAL "2"/],
      ['file 10 1 0 - 1 /x.pcap\n', /both numbers or both -/],
      ['file 10 1 0 12x 1 /x.pcap\n', /bad FIRST_NS "12x"/],
      ['file 10 1 0 12 1x /x.pcap\n', /bad LINKTYPE "1x"/],
      ['files 10 1 0 /x.pcap\n', /starts with `lookup` or `file`/],
    ];
    for (const [input, want] of cases) {
      const r = run(input);
      expect(r.status, input).toBe(2);
      expect(r.stderr, input).toMatch(want);
      expect(r.stdout).toBe('');
    }
    expect(run('', ['--dense', 'x']).stderr).toMatch(/--dense x/);
    const ok = run(`lookup 8 key 5 0035\nfile 100 1 0 - - ${join(dir, 'none.pcap')}\n`, ['--needed', '8']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ why: 'no-index', blocks: 0, index_bytes: 0 });
  });

  it('checks an index against the catalog\'s first record time and link type when the request has them, without reading the file', async () => {
    const closed = entries().filter((e) => !e.partial);
    const facts = closed.map((e) => {
      const b = readFileSync(e.path);
      const g = decodeGlobalHeader(b);
      return { ...e, linktype: g.linktype, firstRecordNs: decodeRecordHeader(b, 24, g).tsNs } as CatalogEntry;
    });
    const policy = { mergeGapBlocks: 0, dense: 2 };
    const answers = async (es: CatalogEntry[]) => (await planReads(es, 'port 53', true, policy)).map(({ file: _, ...r }) => r);
    expect(await answers(facts)).toEqual(await answers(closed));
    expect((await answers(facts)).every((r) => r.why === 'index')).toBe(true);
    // Facts that name another first record: the index is not this file's, as when it is read.
    const wrong = facts.map((e, i) => (i === 0 ? ({ ...e, firstRecordNs: e.firstRecordNs! + 1n }) as CatalogEntry : e));
    const reads = await planReads(wrong, 'port 53', true, policy);
    expect(reads[0]).toMatchObject({ why: 'index-unusable', note: expect.stringMatching(/not this file's index/) as unknown as string });
    expect(reads.slice(1).every((r) => r.why === 'index')).toBe(true);
  });
});
