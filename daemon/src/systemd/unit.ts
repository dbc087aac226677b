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

/** `qe-packets` (the daemon), `qe-packets-firstboot` (the appliance's first boot) or `qe-packets-console-setup` (its console fallback). */
export function renderUnit(paths: UnitPaths, name: 'qe-packets' | 'qe-packets-firstboot' | 'qe-packets-console-setup' = 'qe-packets'): string {
  const template = readFileSync(join(packageRoot, 'daemon', 'systemd', `${name}.service.in`), 'utf8');
  return template.replaceAll('@LIBDIR@', paths.libDir).replaceAll('@NODE@', paths.node);
}
