// First boot: the appliance settings written where the system reads them. Everything goes under
// `root`, so the same code configures a running appliance (/) or an image mounted elsewhere.
import { chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { Document, isMap, parseDocument } from 'yaml';
import { parseConfigText } from '../config/load.js';
import { writeFileAtomic } from '../provision/write-file.js';
import { physicalLinks } from '../util/sys-class-net.js';
import type { ApplianceSettings } from './settings.js';

export const ADMIN_USER = 'admin';
export const ADMIN_GROUPS = ['qe-packets', 'adm', 'systemd-journal', 'sudo'];
export const DONE_STAMP = 'var/lib/qe-packets/firstboot.done';

/** Physical NICs in hardware order (first: management). */
export const physicalNics = physicalLinks;

export interface FirstBootPlan {
  management: string;
  capture: string;
  files: string[];
  /** The provisioning command first boot runs (qe-packets arguments). */
  provision: string[];
  notes: string[];
}

/** The capture section's interfaces, set through yaml's Document API so comments survive. */
export function setCaptureInterfaces(text: string, source: string, names: string[]): string {
  const doc = text.trim() ? parseDocument(text) : new Document({});
  if (doc.errors.length || !isMap(doc.contents)) throw new Error(`${source}: does not parse as a configuration; fix it before first boot writes to it`);
  doc.setIn(['capture', 'interfaces'], doc.createNode(names));
  const out = doc.toString();
  parseConfigText(out, source);
  return out;
}

export const QUALEVENT_TOKEN = '/etc/qe-packets/qualevent.token';

/** qualevent.url (and token_file) set in the config, comments kept, the result checked. */
export function setQualevent(text: string, source: string, url: string, tokenFile: string | undefined): string {
  const doc = text.trim() ? parseDocument(text) : new Document({});
  if (doc.errors.length || !isMap(doc.contents)) throw new Error(`${source}: does not parse as a configuration; fix it before first boot writes to it`);
  doc.setIn(['qualevent', 'url'], url);
  if (tokenFile) doc.setIn(['qualevent', 'token_file'], tokenFile);
  const out = doc.toString();
  parseConfigText(out, source);
  return out;
}

function managementNetwork(nic: string, s: ApplianceSettings): string {
  const lines = ['# Written by qe-packets firstboot from the appliance settings.', '[Match]', `Name=${nic}`, '', '[Network]'];
  if (!s.mgmt) lines.push('DHCP=ipv4');
  else {
    lines.push(`Address=${s.mgmt.address}/${s.mgmt.prefix}`);
    if (s.mgmt.gateway) lines.push(`Gateway=${s.mgmt.gateway}`);
    for (const d of s.mgmt.dns) lines.push(`DNS=${d}`);
  }
  return `${lines.join('\n')}\n`;
}

// The capture NIC listens only: no address, no router solicitation, nothing sent onto a mirror port.
function captureNetwork(nic: string): string {
  return [
    '# Written by qe-packets firstboot: the capture NIC receives only.',
    '[Match]',
    `Name=${nic}`,
    '',
    '[Link]',
    'Promiscuous=yes',
    'ARP=no',
    '',
    '[Network]',
    'LinkLocalAddressing=no',
    'IPv6AcceptRA=no',
    'LLMNR=no',
    'MulticastDNS=no',
    'ConfigureWithoutCarrier=yes',
    '',
  ].join('\n');
}

async function ownerOf(root: string, user: string): Promise<{ uid: number; gid: number } | undefined> {
  const passwd = await readFile(join(root, 'etc/passwd'), 'utf8').catch(() => '');
  const line = passwd.split('\n').find((l) => l.startsWith(`${user}:`));
  if (!line) return undefined;
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/**
 * The admin's key, and the admin itself on a running system: an account without a password,
 * reachable by this key only, that reads the store and the logs and administers through sudo.
 */
export async function installAdminKey(root: string, key: string, notes: string[]): Promise<string> {
  if (!(await ownerOf(root, ADMIN_USER)) && root === '/') {
    await execa('useradd', ['--create-home', '--user-group', '--shell', '/bin/bash', ADMIN_USER]);
  }
  if (root === '/') {
    // Logs (adm, systemd-journal) and the store (qe-packets) without sudo; groups that do not exist are skipped.
    const groups = (await readFile('/etc/group', 'utf8')).split('\n').map((l) => l.split(':')[0]);
    const wanted = ADMIN_GROUPS.filter((g) => groups.includes(g));
    if (wanted.length) await execa('usermod', ['--append', '--groups', wanted.join(','), ADMIN_USER]);
  }
  // The admin has a key and no password: sudo cannot ask for one, so it does not.
  await writeFileAtomic(join(root, 'etc/sudoers.d/qe-packets-admin'), `# Written by qe-packets firstboot.\n${ADMIN_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
  const ssh = join(root, `home/${ADMIN_USER}/.ssh`);
  await mkdir(ssh, { recursive: true, mode: 0o700 });
  const keys = join(ssh, 'authorized_keys');
  await writeFile(keys, `${key}\n`, { mode: 0o600 });
  const owner = await ownerOf(root, ADMIN_USER);
  if (owner) {
    await chown(ssh, owner.uid, owner.gid);
    await chown(keys, owner.uid, owner.gid);
  } else notes.push(`user ${ADMIN_USER} does not exist under ${root}: authorized_keys written but not given to it`);
  return `/home/${ADMIN_USER}/.ssh/authorized_keys`;
}

export async function applySettings(
  s: ApplianceSettings,
  o: { root: string; configPath: string; nics: string[] },
): Promise<FirstBootPlan> {
  const notes: string[] = [];
  const files: string[] = [];
  const at = (p: string) => join(o.root, p);
  if (o.nics.length < 2 && s.captureInterface === 'auto')
    notes.push(`only ${o.nics.length} NIC${o.nics.length === 1 ? '' : 's'} found (${o.nics.join(', ') || 'none'}): the capture interface needs a second one; set capture_interface or add a NIC`);
  const capture = s.captureInterface === 'auto' ? (o.nics[1] ?? o.nics[0] ?? 'eth1') : s.captureInterface;
  const management = o.nics.find((n) => n !== capture) ?? 'eth0';

  await writeFileAtomic(at('etc/hostname'), `${s.hostname}\n`);
  const hosts = await readFile(at('etc/hosts'), 'utf8').catch(() => '127.0.0.1\tlocalhost\n');
  const kept = hosts.split('\n').filter((l) => l && !/^127\.0\.1\.1\s/.test(l));
  await writeFileAtomic(at('etc/hosts'), `${[...kept.slice(0, 1), `127.0.1.1\t${s.hostname}`, ...kept.slice(1)].join('\n')}\n`);
  files.push('/etc/hostname', '/etc/hosts');

  await writeFileAtomic(at('etc/systemd/network/10-qe-management.network'), managementNetwork(management, s));
  await writeFileAtomic(at('etc/systemd/network/20-qe-capture.network'), captureNetwork(capture));
  files.push('/etc/systemd/network/10-qe-management.network', '/etc/systemd/network/20-qe-capture.network');

  if (s.adminSshKey) files.push(await installAdminKey(o.root, s.adminSshKey, notes));
  else notes.push('no admin SSH key given: set the admin_ssh_key property (vApp options) and reboot; there are no passwords');

  const config = at(o.configPath.replace(/^\//, ''));
  let text = setCaptureInterfaces(await readFile(config, 'utf8').catch(() => ''), o.configPath, [capture]);
  if (s.qualevent) {
    if (s.qualevent.token) {
      // Readable by the daemon's group, as the config (root:qe-packets 0640); never by others.
      const group = await stat(config).then((st) => st.gid, () => 0);
      await writeFileAtomic(at(QUALEVENT_TOKEN.replace(/^\//, '')), `${s.qualevent.token}\n`, { mode: 0o640 });
      await chown(at(QUALEVENT_TOKEN.replace(/^\//, '')), 0, group).catch(() => {});
      files.push(QUALEVENT_TOKEN);
    }
    text = setQualevent(text, o.configPath, s.qualevent.url, s.qualevent.token ? QUALEVENT_TOKEN : undefined);
  }
  await writeFileAtomic(config, text);
  files.push(o.configPath);

  const provision = ['provision', 'storage', '--profile', s.storageProfile === 'auto' ? 'max' : s.storageProfile, '--disks', 'auto', '--yes', '--config', o.configPath];
  return { management, capture, files, provision, notes };
}
