// The update package ships package.json's `dependencies` (npm prune --omit=dev) beside the daemon's
// JavaScript (build/daemon). So `dependencies` must be exactly what the daemon's code loads at run
// time: a package listed there and never loaded is dead weight in every .deb (zx was, before it
// moved to the build), and a package the daemon loads from devDependencies is missing on the box.
import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { root } from './lib/cli.js';

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Bare package names a TypeScript source loads: import/export … from, import(), require(), createRequire(…)(…). */
export function loadedPackages(source: string): Set<string> {
  const out = new Set<string>();
  const specifier =
    /(?:^\s*(?:import|export)\b[^;'"]*?\bfrom\s+|^\s*import\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|createRequire\([^)]*\)\s*\(\s*)['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(specifier)) {
    const spec = m[1]!;
    if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || builtinModules.includes(spec)) continue;
    const parts = spec.split('/');
    out.add(spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!);
  }
  return out;
}

function shippedSources(): Map<string, Set<string>> {
  const dir = join(root, 'daemon', 'src');
  const byFile = new Map<string, Set<string>>();
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !e.name.endsWith('.ts')) continue;
    const path = join(e.parentPath, e.name);
    byFile.set(relative(root, path), loadedPackages(readFileSync(path, 'utf8')));
  }
  return byFile;
}

describe('runtime dependencies', () => {
  const byFile = shippedSources();
  const loaded = new Set([...byFile.values()].flatMap((s) => [...s]));

  it('finds what a source loads, in every form the daemon uses', () => {
    const found = loadedPackages(
      "import { z } from 'zod';\nimport type { X } from '@scope/pkg/sub';\nconst sd = createRequire(import.meta.url)('sd-notify');\n" +
        "const help = `since 15m ago, or from '15m ago'`;\nimport 'side-effect';\nawait import('yaml');\nimport { readFile } from 'node:fs/promises';\nimport { join } from 'path';\nimport { a } from './local.js';\n",
    );
    expect([...found].sort()).toEqual(['@scope/pkg', 'sd-notify', 'side-effect', 'yaml', 'zod']);
  });

  it('lists in dependencies exactly the packages the daemon loads', () => {
    const declared = Object.keys(pkg.dependencies).sort();
    const unused = declared.filter((d) => !loaded.has(d));
    const undeclared = [...loaded].filter((d) => !(d in pkg.dependencies)).sort();
    const where = (d: string) => [...byFile].filter(([, s]) => s.has(d)).map(([f]) => f);
    expect(unused, 'in dependencies (so shipped in the .deb) but loaded by nothing under daemon/src: move to devDependencies').toEqual([]);
    expect(
      undeclared.map((d) => `${d} (${where(d).join(', ')})`),
      'loaded by the daemon but not in dependencies: the installed package would miss it',
    ).toEqual([]);
  });

  it('keeps the build-only tools out of the package', () => {
    for (const tool of ['zx', 'typescript', 'vitest', 'node-gyp']) expect(pkg.devDependencies, tool).toHaveProperty(tool);
  });
});
