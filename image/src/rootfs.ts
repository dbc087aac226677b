// System configuration of the base: what makes it an appliance root rather than a plain
// debootstrap (mounts by UUID, consoles, no passwords, per-instance identity, network).
import { mkdir, writeFile, appendFile, rm, readdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { HOSTNAME, INITRAMFS_MODULES } from './config.js';
import { chroot } from './debootstrap.js';
import type { Disk } from './disk.js';

export async function writeFstab(root: string, disk: Disk): Promise<void> {
  await writeFile(
    join(root, 'etc/fstab'),
    `# Mounted by UUID: the disk is a different device on every hypervisor (sda, vda, nvme0n1).
UUID=${disk.rootUuid} / ext4 errors=remount-ro 0 1
UUID=${disk.espUuid} /boot/efi vfat umask=0077,nofail 0 2
`,
  );
}

export async function writeIdentity(root: string): Promise<void> {
  await writeFile(join(root, 'etc/hostname'), `${HOSTNAME}\n`);
  await writeFile(join(root, 'etc/hosts'), `127.0.0.1\tlocalhost\n127.0.1.1\t${HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
}

export async function addInitramfsModules(root: string): Promise<void> {
  const file = join(root, 'etc/initramfs-tools/modules');
  const have = (await readFile(file, 'utf8').catch(() => '')).split('\n').map((l) => l.trim());
  const missing = INITRAMFS_MODULES.filter((m) => !have.includes(m));
  if (missing.length) await appendFile(file, `# VMware paravirtual SCSI and NIC (Qe-Packets image)\n${missing.join('\n')}\n`);
}

/** DHCP on every Ethernet interface until first-boot configuration (OVF properties) narrows it to
 * the management interface; a capture interface with an address would also be harmless here, it
 * gets none once configured. Not required for "online": boot never waits on a DHCP server. */
export async function configureNetwork(root: string): Promise<void> {
  await mkdir(join(root, 'etc/systemd/network'), { recursive: true });
  await writeFile(
    join(root, 'etc/systemd/network/80-qe-dhcp.network'),
    `[Match]
Name=en* eth*

[Network]
DHCP=yes

[Link]
RequiredForOnline=no
`,
  );
  await chroot(root, ['systemctl', 'enable', 'systemd-networkd.service', 'systemd-resolved.service']);
  await rm(join(root, 'etc/resolv.conf'), { force: true });
  await symlink('../run/systemd/resolve/stub-resolv.conf', join(root, 'etc/resolv.conf'));
}

/**
 * No password works anywhere: root is locked, sshd takes keys only. The admin key arrives later
 * (OVF property or provisioning). SSH host keys and the machine ID are removed so that every
 * instance made from the image creates its own on first boot instead of sharing the build's.
 */
export async function secure(root: string): Promise<void> {
  await chroot(root, ['passwd', '--lock', 'root']);
  await mkdir(join(root, 'etc/ssh/sshd_config.d'), { recursive: true });
  await writeFile(
    join(root, 'etc/ssh/sshd_config.d/50-qe-packets.conf'),
    `# Qe-Packets appliance: keys only.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
`,
  );
  for (const f of await readdir(join(root, 'etc/ssh'))) {
    if (/^ssh_host_.*_key(\.pub)?$/.test(f)) await rm(join(root, 'etc/ssh', f));
  }
  await writeFile(
    join(root, 'etc/systemd/system/qe-ssh-hostkeys.service'),
    `[Unit]
Description=Create this instance's SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
`,
  );
  await chroot(root, ['systemctl', 'enable', 'qe-ssh-hostkeys.service']);
  // Empty, not absent: systemd then treats the next boot as the first and writes a new ID.
  await writeFile(join(root, 'etc/machine-id'), '');
  await rm(join(root, 'var/lib/dbus/machine-id'), { force: true });
}

/**
 * One line in the kernel log, so on every console including the serial one, when the boot has
 * reached multi-user.target: which firmware booted it and which units failed. It is what an
 * operator watching a serial console and the boot test (image/src/boot.ts) wait for; systemd's own
 * status lines stop once a getty owns the serial console. DefaultDependencies=no lets it be both
 * wanted by and ordered after multi-user.target, as systemd-update-utmp-runlevel is.
 */
export const BOOT_COMPLETE_MARKER = 'qe-packets: boot complete:';

export async function addBootReport(root: string): Promise<void> {
  await writeFile(
    join(root, 'usr/local/sbin/qe-boot-report'),
    `#!/bin/sh
# Reports the end of the boot on the kernel log (all consoles).
fw=bios; [ -d /sys/firmware/efi ] && fw=uefi
failed=$(systemctl list-units --state=failed --plain --no-legend 2>/dev/null | awk '{print $1}' | paste -sd, -)
echo "<5>${BOOT_COMPLETE_MARKER} firmware=$fw failed-units=\${failed:-none}" > /dev/kmsg
`,
    { mode: 0o755 },
  );
  await writeFile(
    join(root, 'etc/systemd/system/qe-boot-report.service'),
    `[Unit]
Description=Report the end of the boot on the consoles
DefaultDependencies=no
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/qe-boot-report

[Install]
WantedBy=multi-user.target
`,
  );
  await chroot(root, ['systemctl', 'enable', 'qe-boot-report.service']);
}

/** Removes what the build leaves that an instance must not inherit or does not need. */
export async function clean(root: string): Promise<void> {
  await chroot(root, ['apt-get', 'clean']);
  for (const d of ['var/lib/apt/lists', 'tmp', 'var/tmp']) {
    const dir = join(root, d);
    for (const f of await readdir(dir).catch(() => [] as string[])) {
      if (f !== 'lock' && f !== 'partial') await rm(join(dir, f), { recursive: true, force: true });
    }
  }
  for (const f of ['var/log/dpkg.log', 'var/log/apt/term.log', 'var/log/apt/history.log', 'var/log/bootstrap.log', 'var/log/alternatives.log']) {
    await rm(join(root, f), { force: true });
  }
}
