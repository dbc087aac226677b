// Finds the native helpers (build/native/qe-*): QE_NATIVE_DIR on an installed appliance, else the
// build/native directory of the checkout this module runs from (as source under vitest or as
// compiled JavaScript under build/).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function nativeBinary(name: string): string {
  const dir = process.env.QE_NATIVE_DIR ?? join(checkoutRoot(), 'build', 'native');
  const path = join(dir, name);
  if (!existsSync(path)) {
    throw new Error(`${path} does not exist: build it with \`make -C daemon/native\` (or set QE_NATIVE_DIR)`);
  }
  return path;
}

function checkoutRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the Qe-Packets checkout (no package.json above this module)');
    dir = up;
  }
}
