// The index format has one C header (daemon/native/index-format.h) and one TypeScript copy
// (daemon/src/index/format.ts). Every #define and enum member of the header must equal its
// TypeScript constant, and every TypeScript constant must have its #define: a number changed on one
// side only fails here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as format from '../daemon/src/index/format.js';
import { root } from './lib/cli.js';
import { camel, headerConstants, type Value } from './lib/c-header.js';

const headerText = readFileSync(join(root, 'daemon', 'native', 'index-format.h'), 'utf8');

/** The TypeScript constant a header name stands for, by the naming rule both files follow. */
function tsValue(mod: Record<string, unknown>, name: string): Value | undefined {
  const n = name.replace(/^QE_IDX_/, '');
  const group = /^(H|S|E)_(.+)$/.exec(n);
  if (group) return (mod[`IDX_${group[1]}`] as Record<string, number>)[camel(group[2]!)];
  if (n.startsWith('FIELD_')) return (mod.IDX_FIELDS as Record<string, number>)[n.slice(6).toLowerCase()];
  if (n.startsWith('KEY_')) return (mod.IDX_KEY as Record<string, number>)[n.slice(4).toLowerCase()];
  if (n === 'MAGIC') return (mod.IDX_MAGIC as Buffer).toString('latin1');
  if (n === 'MAGIC_LEN') return (mod.IDX_MAGIC as Buffer).length;
  const v = mod[`IDX_${n}`];
  return typeof v === 'number' || typeof v === 'string' ? v : undefined;
}

/** Every difference between the header text and the module, as sentences (none: they agree). */
function drift(text: string, mod: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const c = headerConstants(text);
  for (const [name, v] of c) {
    if (name === 'QE_INDEX_FORMAT_H') continue;
    const t = tsValue(mod, name);
    if (t === undefined) problems.push(`${name} (${JSON.stringify(v)}) has no TypeScript constant`);
    else if (t !== v) problems.push(`${name} is ${JSON.stringify(v)} in the header but ${JSON.stringify(t)} in format.ts`);
  }
  // The other way: every TypeScript number or string names a header constant.
  const named = new Set<string>();
  for (const [k, v] of Object.entries(mod)) {
    if (typeof v === 'number' || typeof v === 'string') named.add(`QE_${k}`);
    else if (Buffer.isBuffer(v)) named.add(`QE_${k}`);
    else if (v && typeof v === 'object')
      for (const f of Object.keys(v)) {
        const prefix = k === 'IDX_FIELDS' ? 'QE_IDX_FIELD_' : k === 'IDX_KEY' ? 'QE_IDX_KEY_' : `QE_${k}_`;
        named.add(prefix + f.replace(/[A-Z]/g, (ch) => `_${ch}`).toUpperCase());
      }
  }
  for (const n of named) if (!c.has(n)) problems.push(`format.ts has ${n.replace(/^QE_/, '')} but the header has no ${n}`);
  return problems;
}

describe('index format: header and TypeScript copy', () => {
  it('reads every constant of the header', () => {
    const c = headerConstants(headerText);
    expect(c.get('QE_IDX_MAGIC')).toBe('QEIDX\r\n\x1a');
    expect(c.get('QE_IDX_BLOCK_SIZE_MAX')).toBe(1 << 24);
    expect(c.get('QE_IDX_SEGMENT_MAGIC')).toBe(0x47455351);
    expect(c.get('QE_IDX_FIELD_TUNNEL')).toBe(32);
    expect(c.get('QE_IDX_KEY_PROTO')).toBe(6);
    expect(c.size).toBeGreaterThan(50);
  });

  it('agrees with format.ts, both ways', () => {
    expect(drift(headerText, format as unknown as Record<string, unknown>)).toEqual([]);
  });

  it('fails when one side drifts', () => {
    const mod = format as unknown as Record<string, unknown>;
    const bumped = headerText.replace('#define QE_IDX_ENTRY_LEN 40', '#define QE_IDX_ENTRY_LEN 48');
    expect(drift(bumped, mod)).toEqual(['QE_IDX_ENTRY_LEN is 48 in the header but 40 in format.ts']);
    const newKey = headerText.replace('QE_IDX_KEY_PROTO = 6,', 'QE_IDX_KEY_PROTO = 6,\n\tQE_IDX_KEY_TEID = 7,');
    expect(drift(newKey, mod)).toEqual(['QE_IDX_KEY_TEID (7) has no TypeScript constant']);
    const tsOnly = { ...mod, IDX_S: { ...(mod.IDX_S as object), flags: 62 } };
    expect(drift(headerText, tsOnly)).toEqual(['format.ts has IDX_S_FLAGS but the header has no QE_IDX_S_FLAGS']);
    const magic = headerText.replace('"QEIDX\\r\\n\\x1a"', '"QEIDX\\r\\n\\x1b"');
    expect(drift(magic, mod)).toEqual(['QE_IDX_MAGIC is "QEIDX\\r\\n\\u001b" in the header but "QEIDX\\r\\n\\u001a" in format.ts']);
  });
});
