// The command runs from a bundle (scripts/bundle-cli.mjs): what esbuild cannot see, it leaves out,
// and the loss shows only when that code runs. Two ways to lose a module, both checked here.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cliPath, root } from './lib/cli.js';

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile() && e.name.endsWith('.ts')) out.push(join(e.parentPath, e.name));
  return out;
}

describe('the bundled command', () => {
  it('imports no module by a computed path (esbuild would leave it out of the bundle without a word)', async () => {
    const computed: string[] = [];
    for (const f of await sources(join(root, 'daemon', 'src'))) {
      const text = await readFile(f, 'utf8');
      text.split('\n').forEach((line, i) => {
        if (/\bimport\(\s*[^'"\s)]/.test(line)) computed.push(`${f.slice(root.length + 1)}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(computed).toEqual([]);
  });

  it('loads every command it lists (each is a chunk of its own)', async () => {
    const usage = await execa(process.execPath, [cliPath, '--help']);
    const names = [...usage.stdout.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]!);
    expect(names).toEqual(expect.arrayContaining(['capture', 'extract', 'flows', 'stats', 'index', 'status', 'token', 'demo', 'firstboot']));
    for (const name of names) {
      const r = await execa(process.execPath, [cliPath, name, '--help'], { reject: false, all: true });
      expect(r.exitCode, `${name} --help: ${r.all}`).toBe(0);
      expect(r.all, name).toMatch(/usage/i);
    }
  });
});
