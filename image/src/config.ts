// What goes into the base image. Everything here is an input of the cache hash (see cache.ts):
// changing a package, the mirror or the Node.js pin rebuilds the base.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export const SUITE = 'bookworm';
export const ARCH = 'amd64';
/** Sparse raw disk; the root filesystem fills what the two boot partitions leave. */
export const DISK_SIZE_MIB = 4096;
export const HOSTNAME = 'qe-packets';

/** Installed with apt inside the chroot after a minbase debootstrap, without recommends so the
 * image holds only what is listed and what it depends on. */
export const PACKAGES: readonly string[] = [
  'linux-image-amd64', // the generic kernel: it carries vmw_pvscsi and vmxnet3, and real NIC drivers for bare metal
  'initramfs-tools',
  'systemd-sysv', 'systemd-resolved', 'dbus', 'udev', 'kmod',
  'grub-efi-amd64', 'grub-efi-amd64-bin', 'grub-pc-bin', // both firmware paths (bootloader.ts)
  'openssh-server',
  'open-vm-tools', // VMware: guestinfo (OVF properties), clean shutdown, time
  'qemu-guest-agent', // KVM/Proxmox
  'chrony', 'nftables', 'ethtool', 'iproute2',
  'prometheus-node-exporter',
  'openssl', // first boot makes the API's self-signed certificate with it (daemon/src/appliance/api-cert.ts)
  'ca-certificates', 'less', 'procps', 'e2fsprogs', 'dosfstools', 'gdisk', 'cloud-guest-utils',
  'libpcap0.8', // the capture helper's one run-time library
  'zstd',
  'python3', 'python3-apt', // Ansible's modules run in the guest (stage 2, and ansible/site.yml on a deployed appliance)
  'adduser', // the update package creates its user with it
  'sudo', // the admin account (key login only, no password) administers through it
  'xfsprogs', // the store disk, formatted at first boot (qe-packets provision storage)
];

/** Modules that must be in the initramfs because the root disk or the first NIC sits behind them
 * on VMware hardware (paravirtual SCSI, vmxnet3). */
export const INITRAMFS_MODULES: readonly string[] = ['vmw_pvscsi', 'vmxnet3'];

/** Node.js: the product's one pin, shared with the update package. */
export { NODE } from '../../package/src/node-runtime.js';

export interface Mirrors {
  debian: string;
  security: string;
}

/**
 * The Debian mirror is the one this machine's apt already uses, so the build works wherever apt
 * works; QE_IMAGE_MIRROR / QE_IMAGE_SECURITY_MIRROR override it.
 */
export function findMirrors(root = '/etc/apt'): Mirrors {
  const uris: string[] = [];
  const files: string[] = [];
  if (existsSync(join(root, 'sources.list'))) files.push(join(root, 'sources.list'));
  const dir = join(root, 'sources.list.d');
  if (existsSync(dir)) {
    for (const f of readdirSync(dir).sort()) if (/\.(list|sources)$/.test(f)) files.push(join(dir, f));
  }
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    if (f.endsWith('.sources')) {
      // deb822: one stanza per blank-line-separated block; keep the URIs of stanzas for our suite.
      for (const stanza of text.split(/\n\s*\n/)) {
        const get = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim() ?? '';
        if (!get('Types').split(/\s+/).includes('deb')) continue; // not deb-src
        const suites = get('Suites').split(/\s+/);
        if (suites.some((s) => s.startsWith(SUITE))) uris.push(...get('URIs').split(/\s+/).map((u) => `${u} ${suites.join(',')}`));
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (m && m[2]!.startsWith(SUITE)) uris.push(`${m[1]} ${m[2]}`);
      }
    }
  }
  const pick = (suite: string) =>
    uris.find((u) => u.split(' ')[1]!.split(',').includes(suite))?.split(' ')[0]?.replace(/\/+$/, '');
  const debian = process.env.QE_IMAGE_MIRROR ?? pick(SUITE);
  const security = process.env.QE_IMAGE_SECURITY_MIRROR ?? pick(`${SUITE}-security`) ?? 'http://deb.debian.org/debian-security';
  if (!debian) {
    throw new Error(
      `no apt source for Debian ${SUITE} in ${files.join(', ') || root}: add one (e.g. "deb http://deb.debian.org/debian ${SUITE} main") ` +
        'or set QE_IMAGE_MIRROR to a Debian mirror URL',
    );
  }
  return { debian, security };
}
