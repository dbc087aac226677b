// Every repository path the docs name exists in the checkout: a renamed or deleted file must take
// its mentions with it. Paths are backticked names starting with a top-level folder of the repo
// and relative markdown links; build outputs, globs and placeholders (<name>, VERSION, …) are not
// files of the checkout and are left out.
import { readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { root } from './lib/cli.js';

const NOT_IN_CHECKOUT = /^(build|dist|node_modules)(\/|$)/;
const PLACEHOLDER = /[<>*?{}]|\.\.\.|…|\bVERSION\b|\bN\b/;

/** Paths a markdown file names, relative to the repository root. */
export function namedPaths(markdown: string, docPath: string, topLevel: Set<string>): string[] {
  const out = new Set<string>();
  for (const [, code] of markdown.matchAll(/`([^`\s]+)`/g)) {
    const p = code!.replace(/[.,:;)]+$/, '').replace(/:\d+(-\d+)?$/, '');
    if (topLevel.has(p.split('/')[0]!) && p.includes('/')) out.add(normalize(p));
  }
  for (const [, target] of markdown.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:|^#/.test(target!)) continue;
    out.add(relative(root, join(root, dirname(docPath), target!.replace(/#.*$/, ''))));
  }
  return [...out].filter((p) => !NOT_IN_CHECKOUT.test(p) && !PLACEHOLDER.test(p)).map((p) => p.replace(/\/$/, ''));
}

async function tracked(): Promise<{ files: Set<string>; dirs: Set<string> }> {
  const files = new Set((await execa('git', ['ls-files'], { cwd: root })).stdout.split('\n'));
  const dirs = new Set<string>();
  for (const f of files) for (let d = dirname(f); d !== '.'; d = dirname(d)) dirs.add(d);
  return { files, dirs };
}

describe('paths named in the docs exist in the checkout', async () => {
  const { files, dirs } = await tracked();
  const topLevel = new Set([...files].map((f) => f.split('/')[0]!).filter((t) => dirs.has(t)));
  const docs = ['README.md', 'bench/README.md', ...[...files].filter((f) => /^docs\/[^/]+\.md$/.test(f))];
  for (const doc of docs) {
    it(doc, async () => {
      const named = namedPaths(await readFile(join(root, doc), 'utf8'), doc, topLevel);
      if (doc === 'README.md') expect(named.length).toBeGreaterThan(10);
      expect(named.filter((p) => !files.has(p) && !dirs.has(p))).toEqual([]);
    });
  }
  it('source comments cite native sources and docs that exist (filename.ts once cited daemon/native/names.c)', async () => {
    const sources = [...files].filter((f) => /^(daemon\/src|bench|image\/src|package\/src)\/.*\.ts$/.test(f));
    const cited = new Set<string>();
    for (const f of sources)
      for (const [p] of (await readFile(join(root, f), 'utf8')).matchAll(/\b(daemon\/native\/[\w.-]+\.[ch]|docs\/[\w.-]+\.md)\b/g)) cited.add(p);
    expect(cited.size).toBeGreaterThan(0);
    expect([...cited].filter((p) => !files.has(p))).toEqual([]);
  });
  it('catches a path that is not there, backticked or linked', () => {
    const named = namedPaths('see `daemon/native/names.c` and [the store](STORE.md), not `build/x.js` or `image/<stage>.sh`', 'docs/X.md', topLevel);
    expect(named.sort()).toEqual(['daemon/native/names.c', 'docs/STORE.md']);
    expect(named.filter((p) => !files.has(p))).toEqual(['daemon/native/names.c']);
  });
});
