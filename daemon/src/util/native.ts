// Where the native tools live: build/native in a checkout, or QE_NATIVE_DIR (the .deb's libexec).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout (or installed package) root: the folder holding package.json above this module. */
export const packageRoot = (() => {
  let dir = fileURLToPath(new URL('.', import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = join(dir, '..');
    if (up === dir) throw new Error('cannot find the Qe-Packets package root (no package.json above this module)');
    dir = up;
  }
  return dir;
})();

export const nativeDir = process.env.QE_NATIVE_DIR ?? join(packageRoot, 'build', 'native');

export function nativeTool(name: 'qe-capture' | 'qe-extract' | 'qe-flowstat' | 'qe-index'): string {
  const path = join(nativeDir, name);
  if (!existsSync(path)) throw new Error(`${path} does not exist: build it with \`npm run build\` (or set QE_NATIVE_DIR)`);
  return path;
}
