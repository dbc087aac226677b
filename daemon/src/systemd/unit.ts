// The systemd unit, filled in for where Qe-Packets is installed (the package: /usr/lib/qe-packets).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/native.js';

export interface UnitPaths {
  /** Where package.json, build/ and node_modules/ are. */
  libDir: string;
  /** A Node.js >= 20 binary. */
  node: string;
}

export function renderUnit(paths: UnitPaths): string {
  const template = readFileSync(join(packageRoot, 'daemon', 'systemd', 'qe-packets.service.in'), 'utf8');
  return template.replaceAll('@LIBDIR@', paths.libDir).replaceAll('@NODE@', paths.node);
}
