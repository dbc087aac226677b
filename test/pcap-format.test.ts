// The pcap rules exist twice: daemon/native/pcap-format.h for the helpers and
// daemon/src/pcap/format.ts for the daemon. These tests fail when the two drift apart, and hold the
// helper's cut after a torn write against the daemon's repair on the same torn files.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as format from '../daemon/src/pcap/format.js';
import { buildPcap, encodeGlobalHeader, GLOBAL_HEADER_LEN, RECORD_HEADER_LEN } from '../daemon/src/pcap/format.js';
import { formatFileName } from '../daemon/src/store/filename.js';
import { summarizePcap } from '../daemon/src/store/pcap-summary.js';
import { repairPartFile } from '../daemon/src/store/repair.js';
import { root } from './lib/cli.js';
import { tempDir } from './lib/fixture.js';

const header = readFileSync(join(root, 'daemon', 'native', 'pcap-format.h'), 'utf8');
const cutTool = join(root, 'build', 'native-test', 'pcap-cut');

/** The header's `#define QE_PCAP_*` values, evaluated as C would (integer arithmetic, as BigInt). */
export function headerConstants(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const m of text.matchAll(/^#define QE_PCAP_(\w+)[ \t]+(.+?)[ \t]*(?:\/\*.*)?$/gm)) {
    let expr = m[2]!.replace(/QE_PCAP_(\w+)/g, (_, n: string) => {
      const v = out.get(n);
      if (v === undefined) throw new Error(`pcap-format.h: QE_PCAP_${m[1]} uses QE_PCAP_${n} before it is defined`);
      return `(${v}n)`;
    });
    expr = expr.replace(/\b(0x[0-9a-f]+|\d+)(?:ull|ul|u|ll|l)?\b/gi, '$1n');
    if (!/^[\s\d()xa-fA-Fn+\-*<>]+$/.test(expr)) throw new Error(`pcap-format.h: cannot evaluate QE_PCAP_${m[1]} = ${m[2]}`);
    out.set(m[1]!, BigInt(new Function(`return (${expr});`)()));
  }
  return out;
}

/** Each C constant and its TypeScript name in format.ts. */
const TS_NAME: Record<string, string> = {
  MAGIC_MICRO: 'MAGIC_MICRO',
  MAGIC_NANO: 'MAGIC_NANO',
  GLOBAL_LEN: 'GLOBAL_HEADER_LEN',
  RECORD_LEN: 'RECORD_HEADER_LEN',
  LINKTYPE_MASK: 'LINKTYPE_MASK',
  CAPLEN_FLOOR: 'CAPLEN_FLOOR',
  CAPLEN_CEILING: 'CAPLEN_CEILING',
  NS_PER_S: 'NS_PER_S',
  MAX_TS_NS: 'MAX_TS_NS',
  CLOCK_SLACK_NS: 'CLOCK_SLACK_NS',
};

describe('pcap-format.h and format.ts', () => {
  it('define the same constants, every one of them', () => {
    const c = headerConstants(header);
    expect([...c.keys()].sort()).toEqual(Object.keys(TS_NAME).sort());
    for (const [name, value] of c) {
      const ts = (format as unknown as Record<string, number | bigint>)[TS_NAME[name]!];
      expect(ts, `format.ts ${TS_NAME[name]} (pcap-format.h QE_PCAP_${name})`).not.toBeUndefined();
      expect(BigInt(ts!), `format.ts ${TS_NAME[name]} vs pcap-format.h QE_PCAP_${name}`).toBe(value);
    }
  });

  it('reads a deliberately drifted copy of the header as drifted', () => {
    const drifted = headerConstants(header.replace(/(#define QE_PCAP_CAPLEN_CEILING\s+)\(16u << 20\)/, '$1(1u << 20)'));
    expect(drifted.get('CAPLEN_CEILING')).toBe(1n << 20n);
    expect(drifted.get('CAPLEN_CEILING')).not.toBe(BigInt(format.CAPLEN_CEILING));
  });
});

// ---- torn files: the helper's cut and the daemon's repair end each at the same byte ----

const T0 = 1_764_000_000_000_000_000n;
const S = 1_000_000_000n;
const frame = (n: number, seed = 0) => Buffer.alloc(n, 0x40 + (seed % 64));

/** A record header with any field values (valid or not) and its body. */
function rawRecord(sec: number, frac: number, caplen: number, origlen: number, body = caplen): Buffer {
  const h = Buffer.alloc(RECORD_HEADER_LEN);
  h.writeUInt32LE(sec, 0);
  h.writeUInt32LE(frac, 4);
  h.writeUInt32LE(caplen, 8);
  h.writeUInt32LE(origlen, 12);
  return Buffer.concat([h, Buffer.alloc(body, 0x55)]);
}

const good = (n = 5, snaplen = 262144) =>
  buildPcap(Array.from({ length: n }, (_, i) => ({ tsNs: T0 + BigInt(i) * 1_000_000n, data: frame(60 + i * 10, i) })), { snaplen });
const sec0 = Number(T0 / S);

/** Torn files: name → bytes; every one starts with whole records written at T0. */
const torn: Record<string, Buffer> = {
  'cut in the global header': good().subarray(0, 10),
  'cut in a record header': good().subarray(0, good().length - 60 - 16 - 40 + 7),
  'cut in a body': good().subarray(0, good().length - 30),
  'a garbage length, with bytes enough after it': Buffer.concat([good(), rawRecord(sec0, 0, 500_000, 500_000)]),
  'a length just past the largest plausible record': Buffer.concat([good(), rawRecord(sec0, 0, 262_145, 262_145)]),
  'a long record the file\'s own snaplen allows': Buffer.concat([good(3, 1 << 20), rawRecord(sec0, 5, 300_000, 300_000), good(2).subarray(GLOBAL_HEADER_LEN)]),
  'a length past the ceiling whatever the snaplen': Buffer.concat([good(3, 0xffffffff), rawRecord(sec0, 5, (16 << 20) + 1, (16 << 20) + 1, 0)]),
  'a zero-filled block (power loss)': Buffer.concat([good(), Buffer.alloc(4096)]),
  'a nanosecond fraction of a second or more': Buffer.concat([good(), rawRecord(sec0, 1_000_000_000, 60, 60), rawRecord(sec0 + 1, 0, 60, 60)]),
  'an original length of 0': Buffer.concat([good(), rawRecord(sec0, 1, 60, 0)]),
  'a captured length greater than the original': Buffer.concat([good(), rawRecord(sec0, 1, 60, 59)]),
  'an original length past the ceiling': Buffer.concat([good(), rawRecord(sec0, 1, 60, (16 << 20) + 1)]),
  'stale data: a record two days before the first': Buffer.concat([good(), rawRecord(sec0 - 2 * 86400, 0, 60, 60)]),
  'a record two days in the future': Buffer.concat([good(), rawRecord(sec0 + 2 * 86400, 0, 60, 60)]),
  'a record within a day of the first (kept)': Buffer.concat([good(), rawRecord(sec0 - 3600, 0, 60, 60), rawRecord(sec0 + 3600, 0, 60, 60)]),
  'no record at all': encodeGlobalHeader({ snaplen: 262144, linktype: 1 }),
  'a header that is not pcap': Buffer.concat([Buffer.from('not a pcap file at all!!'), Buffer.alloc(100)]),
};

describe('a torn file', () => {
  const { dir, cleanup } = tempDir('torn');
  afterAll(() => cleanup());

  it.each(Object.keys(torn))('ends at the same byte after the helper\'s cut and the daemon\'s repair: %s', (what) => {
    const bytes = torn[what]!;
    const name = `${formatFileName(T0, 'eth0')}.part`;
    const sub = join(dir, what.replace(/\W+/g, '-'));
    execFileSync('mkdir', ['-p', join(sub, 'c'), join(sub, 'ts')]);
    const forC = join(sub, 'c', name);
    const forTs = join(sub, 'ts', name);
    writeFileSync(forC, bytes);
    copyFileSync(forC, forTs);

    const [keptC, packetsC] = execFileSync(cutTool, [forC, String(T0)], { encoding: 'utf8' }).trim().split(' ').map(Number);
    const repaired = repairPartFile(forTs);

    if (what === 'a header that is not pcap') {
      // Neither cuts what is not a pcap file: the helper never writes one, repair leaves it alone.
      expect(packetsC).toBe(0);
      expect(statSync(forC).size).toBe(bytes.length);
      expect(repaired.outcome).toBe('skipped');
      return;
    }
    // The helper drops a file with no whole record; repair removes it.
    if (packetsC === 0) {
      expect(repaired.outcome, repaired.reason).toBe('removed');
      return;
    }
    expect(repaired.outcome, repaired.reason).toBe('repaired');
    expect({ bytes: repaired.keptBytes, packets: repaired.packets }).toEqual({ bytes: keptC, packets: packetsC });
    expect(statSync(forC).size).toBe(keptC);
    expect(readFileSync(repaired.finalPath!).equals(readFileSync(forC))).toBe(true);
    expect(existsSync(forTs)).toBe(false);
  });

  it('keeps what each case says it keeps (the rules, not only the agreement)', () => {
    const g = good().length;
    const kept = (what: string) => {
      const f = join(dir, 'k.pcap.part');
      writeFileSync(f, torn[what]!);
      return Number(execFileSync(cutTool, [f, String(T0)], { encoding: 'utf8' }).split(' ')[0]);
    };
    expect(kept('a garbage length, with bytes enough after it')).toBe(g);
    expect(kept('a length just past the largest plausible record')).toBe(g);
    expect(kept('a long record the file\'s own snaplen allows')).toBe(torn['a long record the file\'s own snaplen allows']!.length);
    expect(kept('a nanosecond fraction of a second or more')).toBe(g);
    expect(kept('stale data: a record two days before the first')).toBe(g);
    expect(kept('a record within a day of the first (kept)')).toBe(g + 2 * 76);
  });
});

// A file written before imports made every record valid may hold a fraction of a second of 10^9 or
// more: the catalog reads the instant as every reader does (carried into the seconds), so such a
// file is not taken for sorted and extraction does not stop reading it early.
describe('the catalog\'s summary of a file with an over-long fraction', () => {
  const { dir, cleanup } = tempDir('frac');
  afterAll(() => cleanup());

  it('carries the fraction into the seconds: the file is unsorted and its span right', () => {
    const f = join(dir, 'legacy.pcap');
    // 10.0 s, 11.5 s (as 10 s + 1.5e9 ns), 11.0 s
    writeFileSync(f, Buffer.concat([encodeGlobalHeader({ snaplen: 262144, linktype: 1 }), rawRecord(sec0 + 10, 0, 60, 60), rawRecord(sec0 + 10, 1_500_000_000, 60, 60), rawRecord(sec0 + 11, 0, 60, 60)]));
    const s = summarizePcap(f);
    expect(s.sorted).toBe(false);
    expect(s.maxNs).toBe(BigInt(sec0 + 11) * S + 500_000_000n);
    expect(s.lastNs).toBe(BigInt(sec0 + 11) * S);
  });
});
