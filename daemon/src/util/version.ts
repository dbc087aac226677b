// The package's version, read from package.json in one place: the CLI's --version, the health
// report and metrics, the .deb and the appliance images all name the same one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './native.js';

let cached: string | undefined;

export function packageVersion(root = packageRoot): string {
  if (root !== packageRoot) return readVersion(root);
  cached ??= readVersion(root);
  return cached;
}

function readVersion(root: string): string {
  const file = join(root, 'package.json');
  const { version } = JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown };
  if (typeof version !== 'string' || !version) throw new Error(`${file}: no "version" string`);
  return version;
}
