// The software bill of materials beside the images (CycloneDX 1.5 JSON): every Debian package
// installed in the finished image, the npm dependencies the update package ships, and the Node.js
// runtime. Written here rather than with @cyclonedx/cyclonedx-library: the document is a flat list
// of components that two inputs (dpkg's status file, package-lock.json) give directly, and that
// library brings a dependency tree larger than the rest of the build's.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { NODE } from '../../package/src/node-runtime.js';
import { ensurePartitionNodes, PART } from './disk.js';
import { Cleanup, sh } from './log.js';

export interface DebPackage {
  name: string;
  version: string;
  arch: string;
}

/** The packages dpkg's status file records as installed. */
export function parseDpkgStatus(text: string): DebPackage[] {
  const out: DebPackage[] = [];
  for (const stanza of text.split(/\n\n+/)) {
    const field = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(stanza)?.[1]?.trim();
    const [name, version, arch, status] = [field('Package'), field('Version'), field('Architecture'), field('Status')];
    if (name && version && arch && status === 'install ok installed') out.push({ name, version, arch });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** dpkg's status file read from the root partition of a raw disk, without mounting it (debugfs). */
export async function imageDpkgStatus(raw: string): Promise<string> {
  const cleanup = new Cleanup();
  try {
    const loop = await sh`losetup --find --show --partscan --read-only ${raw}`;
    cleanup.push(`losetup -d ${loop}`, () => sh`losetup -d ${loop}`.then(() => undefined));
    await ensurePartitionNodes(loop, [PART.root]);
    return await sh`debugfs -R ${'cat /var/lib/dpkg/status'} ${loop}p${PART.root}`;
  } finally {
    await cleanup.runAll();
  }
}

export interface NpmPackage {
  name: string;
  version: string;
  license?: string;
}

/** The production dependencies of a package-lock.json (lockfile v2/v3). */
export function npmProductionPackages(lock: { packages?: Record<string, { version?: string; dev?: boolean; license?: string }> }): NpmPackage[] {
  const seen = new Map<string, NpmPackage>();
  for (const [path, p] of Object.entries(lock.packages ?? {})) {
    if (!path || p.dev || !p.version) continue;
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    seen.set(`${name}@${p.version}`, { name, version: p.version, ...(p.license ? { license: p.license } : {}) });
  }
  return [...seen.values()].sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

export interface SbomInput {
  name: string;
  version: string;
  /** Seconds since the epoch (SOURCE_DATE_EPOCH): two builds of the same inputs write the same document. */
  timestamp: number;
  debs: DebPackage[];
  npm: NpmPackage[];
}

const purlEncode = (s: string) => encodeURIComponent(s).replace(/%40/g, '@');

export function cycloneDx(i: SbomInput): Record<string, unknown> {
  const components = [
    ...i.debs.map((d) => ({
      type: 'library',
      'bom-ref': `deb:${d.name}@${d.version}`,
      name: d.name,
      version: d.version,
      purl: `pkg:deb/debian/${purlEncode(d.name)}@${purlEncode(d.version)}?arch=${d.arch}&distro=debian-12`,
    })),
    ...i.npm.map((p) => ({
      type: 'library',
      'bom-ref': `npm:${p.name}@${p.version}`,
      name: p.name,
      version: p.version,
      purl: `pkg:npm/${p.name.startsWith('@') ? `%40${p.name.slice(1)}` : p.name}@${p.version}`,
      ...(p.license ? { licenses: [{ license: { id: p.license } }] } : {}),
    })),
    {
      type: 'platform',
      'bom-ref': `node:${NODE.version}`,
      name: 'node',
      version: NODE.version,
      purl: `pkg:npm/${NODE.pkg}@${NODE.version}`,
      hashes: [{ alg: 'SHA-512', content: Buffer.from(NODE.integrity.slice('sha512-'.length), 'base64').toString('hex') }],
    },
  ];
  // A serial number derived from the contents, not random: the same inputs give the same file.
  const serial = createHash('sha256').update(JSON.stringify(components)).digest('hex');
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: `urn:uuid:${serial.slice(0, 8)}-${serial.slice(8, 12)}-5${serial.slice(13, 16)}-8${serial.slice(17, 20)}-${serial.slice(20, 32)}`,
    version: 1,
    metadata: {
      timestamp: new Date(i.timestamp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      component: { type: 'operating-system', 'bom-ref': i.name, name: i.name, version: i.version, description: 'Qe-Packets full packet capture appliance image' },
    },
    components,
  };
}

export async function sbomForImage(raw: string, lockPath: string, name: string, version: string, timestamp: number): Promise<string> {
  const debs = parseDpkgStatus(await imageDpkgStatus(raw));
  if (!debs.some((d) => d.name === 'qe-packets')) throw new Error(`${raw}: qe-packets is not installed in the image's dpkg database: was stage 2 (packer) complete?`);
  const npm = npmProductionPackages(JSON.parse(await readFile(lockPath, 'utf8')));
  return `${JSON.stringify(cycloneDx({ name, version, timestamp, debs, npm }), null, 2)}\n`;
}
