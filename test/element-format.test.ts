// The elements file and the counters' numbers have one C header (daemon/native/element-format.h)
// and one TypeScript copy (daemon/src/elements/helper-file.ts): every #define must equal its
// constant and every constant must have its #define. Then the TypeScript side is held to the
// header's rules: the file's text, its limits, the histogram's bucket rule and the percentile.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as format from '../daemon/src/elements/helper-file.js';
import { elementsFileText, ElementsFileError, rttBucket, rttBucketMiddleUs, rttHistDelta, rttPercentileMs, writeElementsFile } from '../daemon/src/elements/helper-file.js';
import { headerConstants, type Value } from './lib/c-header.js';
import { root } from './lib/cli.js';

const headerText = readFileSync(join(root, 'daemon', 'native', 'element-format.h'), 'utf8');

function drift(text: string, mod: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const c = headerConstants(text);
  for (const [name, v] of c) {
    if (name === 'QE_ELEMENT_FORMAT_H') continue;
    const t = mod[name.replace(/^QE_/, '')] as Value | undefined;
    if (t === undefined) problems.push(`${name} (${JSON.stringify(v)}) has no TypeScript constant`);
    else if (t !== v) problems.push(`${name} is ${JSON.stringify(v)} in the header but ${JSON.stringify(t)} in helper-file.ts`);
  }
  for (const [k, v] of Object.entries(mod))
    if (k.startsWith('ELEM_') && (typeof v === 'number' || typeof v === 'string') && !c.has(`QE_${k}`)) problems.push(`helper-file.ts has ${k} but the header has no QE_${k}`);
  return problems;
}

describe('element format: header and TypeScript copy', () => {
  it('agrees both ways', () => {
    expect(headerConstants(headerText).size).toBeGreaterThanOrEqual(11);
    expect(drift(headerText, format as unknown as Record<string, unknown>)).toEqual([]);
  });

  it('fails when one side drifts', () => {
    const mod = format as unknown as Record<string, unknown>;
    expect(drift(headerText.replace('#define QE_ELEM_MAX 256', '#define QE_ELEM_MAX 512'), mod)).toEqual(['QE_ELEM_MAX is 512 in the header but 256 in helper-file.ts']);
    expect(drift(headerText.replace('#define QE_ELEM_RTT_Q3 110218', '#define QE_ELEM_RTT_Q3 110218\n#define QE_ELEM_NEW 1'), mod)).toEqual(['QE_ELEM_NEW (1) has no TypeScript constant']);
    expect(drift(headerText, { ...mod, ELEM_EXTRA: 3 })).toEqual(['helper-file.ts has ELEM_EXTRA but the header has no QE_ELEM_EXTRA']);
  });

  it('keeps the quarter-power thresholds what the header says they are', () => {
    for (const k of [1, 2, 3]) expect(headerConstants(headerText).get(`QE_ELEM_RTT_Q${k}`)).toBe(Math.ceil(2 ** (k / 4) * 65536));
  });
});

describe('the elements file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qe-elem-format-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('lists elements and their custom filters in order, one line each', () => {
    const text = elementsFileText([
      { filter: 'host 10.1.2.3 and\ntcp port 443', custom: ['icmp[icmptype] == icmp-unreach'] },
      { filter: 'udp port 53', custom: [] },
    ]);
    expect(text).toBe('qe-elements 1\nelement 0 host 10.1.2.3 and tcp port 443\ncustom 0 0 icmp[icmptype] == icmp-unreach\nelement 1 udp port 53\n');
    expect(elementsFileText([])).toBe('qe-elements 1\n');
  });

  it('refuses what the helper would refuse, naming the element and the limit', () => {
    expect(() => elementsFileText(Array.from({ length: 257 }, () => ({ filter: 'tcp', custom: [] })))).toThrow(/257 elements; the capture helper takes at most 256/);
    expect(() => elementsFileText([{ filter: 'tcp', custom: [] }, { filter: 'x'.repeat(8193), custom: [] }])).toThrow(/elements\[1\]\.filter: the filter is 8193 bytes; .* at most 8192/);
    expect(() => elementsFileText([{ filter: 'tcp', custom: Array(9).fill('udp') as string[] }])).toThrow(ElementsFileError);
  });

  it('is written whole, readable by its owner only', () => {
    const p = join(dir, 'elements');
    writeFileSync(p, 'old', { mode: 0o644 });
    writeElementsFile(p, [{ filter: 'tcp', custom: [] }]);
    expect(readFileSync(p, 'utf8')).toBe('qe-elements 1\nelement 0 tcp\n');
    expect(statSync(p).mode & 0o777).toBe(0o600);
  });
});

describe('the round-trip histogram', () => {
  it('puts a value in the bucket whose span holds it', () => {
    for (const us of [1, 2, 3, 5, 100, 999, 1000, 1189, 1190, 50_000, 100_000, 2_999_999]) {
      const b = rttBucket(us);
      expect(2 ** (b / 4)).toBeLessThanOrEqual(us * 1.00002);
      expect(2 ** ((b + 1) / 4)).toBeGreaterThan(us);
    }
    expect(rttBucket(0)).toBe(0);
    expect(rttBucket(1)).toBe(0);
    expect(rttBucket(2)).toBe(4);
    expect(rttBucket(1024)).toBe(40);
    expect(rttBucket(2 ** 40)).toBe(95);
  });

  it('reads the 95th percentile as the middle of its bucket, within 9%', () => {
    const hist: Array<[number, number]> = [[rttBucket(1000), 90], [rttBucket(100_000), 10]];
    expect(rttPercentileMs(hist)).toBeCloseTo(rttBucketMiddleUs(rttBucket(100_000)) / 1000, 6);
    expect(Math.abs(rttPercentileMs(hist)! - 100) / 100).toBeLessThan(0.09);
    expect(Math.abs(rttPercentileMs([[rttBucket(1000), 96], [rttBucket(100_000), 4]])! - 1) / 1).toBeLessThan(0.09);
    expect(rttPercentileMs([])).toBeNull();
    expect(rttPercentileMs([[3, 0]])).toBeNull();
  });

  it('takes a window as the difference of two cumulative histograms', () => {
    expect(rttHistDelta([[40, 5], [60, 2]], [[40, 5], [50, 1]])).toEqual([[60, 2]]);
  });
});
