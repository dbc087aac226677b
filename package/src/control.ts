// The DEBIAN/control of qe-packets: what the package is and what it needs.

export interface ControlInput {
  version: string;
  /** From dpkg-shlibdeps: the libraries the shipped ELF files link. */
  shlibDepends: string[];
  /** Size of the installed tree in KiB. */
  installedSizeKiB: number;
}

/**
 * Needs the shared libraries cannot tell: adduser for postinst, libpcap >= 1.10 (the BPF and
 * immediate-mode features the helper uses), openssl for the API certificate first boot makes
 * (daemon/src/appliance/api-cert.ts; ca-certificates pulls it in today, nothing promises it will).
 */
export const EXPLICIT_DEPENDS = ['adduser', 'libpcap0.8 (>= 1.10)', 'libsystemd0', 'openssl'];

const VERSION_PATTERN = /^[0-9][A-Za-z0-9.+~-]*$/;

export function checkVersion(version: string): string {
  if (!VERSION_PATTERN.test(version))
    throw new Error(`version '${version}' is not a Debian version: start with a digit and use only letters, digits and . + ~ - (e.g. 0.1.0 or 0.2.0~rc1)`);
  return version;
}

/** Explicit needs first; a shared-library need on the same package is dropped in favour of the explicit one. */
export function mergeDepends(explicit: string[], shlibs: string[]): string[] {
  const name = (dep: string) => dep.split(/[\s(]/)[0]!;
  const named = new Set(explicit.map(name));
  return [...explicit, ...shlibs.filter((d) => !named.has(name(d)))];
}

export function controlFile(input: ControlInput): string {
  return [
    'Package: qe-packets',
    `Version: ${checkVersion(input.version)}`,
    'Architecture: amd64',
    'Maintainer: Qe-Packets <qe-packets@localhost>',
    `Installed-Size: ${input.installedSizeKiB}`,
    `Depends: ${mergeDepends(EXPLICIT_DEPENDS, input.shlibDepends).join(', ')}`,
    // `provision storage` formats with XFS (an appliance's first boot does); RAID layouts need mdadm.
    'Recommends: xfsprogs',
    'Suggests: mdadm',
    'Section: net',
    'Priority: optional',
    'Description: full packet capture appliance daemon',
    ' Qe-Packets captures traffic from mirror ports and taps to standard pcap files with',
    ' retention, extraction by time and filter, Prometheus metrics and a systemd unit.',
    ' Ships its own Node.js 20 runtime in /usr/lib/qe-packets/node.',
    '',
  ].join('\n');
}
