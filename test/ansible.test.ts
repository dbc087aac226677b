// The Ansible playbook for real: ansible-lint (production profile, offline), then site.yml
// applied through the chroot connection to a Debian 12 root made by debootstrap, the result
// checked file by file, and a second run that must change nothing.
import { mkdtemp, readFile, readlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDeb } from '../package/src/build-deb.js';
import { freshRoot, inRoot, removeRoot } from './lib/chroot.js';
import { root as checkout } from './lib/cli.js';

const ansibleDir = join(checkout, 'ansible');
const HDD4 = 4000787030016;

/** The recap line's counters for the one host. */
function recap(output: string): Record<string, number> {
  const line = /^testroot\s+:\s+(.*)$/m.exec(output)?.[1];
  if (!line) throw new Error(`no PLAY RECAP line for testroot in:\n${output.slice(-3000)}`);
  return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

describe('ansible/', () => {
  let work: string;
  let root: string;
  let inventory: string;

  // The playbook runs inside a private mount namespace with /proc and /sys in the root, so the
  // package's `check-config` sees the interfaces; nothing stays mounted afterwards.
  const playbook = (inv: string, extra: string[] = []) =>
    execa('unshare', ['-m', 'sh', '-c', 'mount --rbind /sys "$0/sys" && mount -t proc proc "$0/proc" && shift && exec ansible-playbook "$@"', root, 'x', '-i', inv, 'site.yml', ...extra], {
      cwd: ansibleDir, reject: false, all: true, timeout: 600_000, // The run's TMPDIR (test/global-setup.ts) is not in the Debian root, where ansible's chroot
      // connection runs its modules with this environment.
      env: { ANSIBLE_FORCE_COLOR: '0', ANSIBLE_NOCOLOR: '1', TMPDIR: '/tmp' },
    });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'qe-ansible-'));
    const deb = await buildDeb({ outDir: work, compress: 'gzip' });
    root = await freshRoot('qe-ansible-root-');
    // lsblk --json --bytes of a box with a system disk and four 4 TB disks: the storage role plans from it.
    await writeFile(join(work, 'disks.json'), JSON.stringify({
      blockdevices: [
        { name: 'sda', size: 480103981056, type: 'disk', pttype: 'gpt', children: [{ name: 'sda1', size: 480102932480, type: 'part', mountpoints: ['/'] }] },
        ...['sdb', 'sdc', 'sdd', 'sde'].map((name) => ({ name, size: HDD4, type: 'disk' })),
      ],
    }));
    inventory = join(work, 'hosts.yml');
    await writeFile(inventory, [
      'qe_packets:',
      '  hosts:',
      '    testroot:',
      '      ansible_connection: community.general.chroot',
      `      ansible_host: ${root}`,
      '  vars:',
      `    qe_packets_deb: ${deb}`,
      '    qe_packets_interfaces: [lo]',
      '    capture_tuning_interfaces: [lo]',
      '    hardening_management_networks: [192.0.2.0/24, "2001:db8::/32"]',
      `    storage_inventory: ${join(work, 'disks.json')}`,
      '',
    ].join('\n'));
  }, 900_000);
  afterAll(async () => {
    if (root) await removeRoot(root);
    if (work) await removeRoot(work);
  });

  it('passes ansible-lint with the production profile, offline', async () => {
    const res = await execa('ansible-lint', ['--offline', '--profile', 'production', '--nocolor'], { cwd: ansibleDir, reject: false, all: true, timeout: 300_000 });
    expect(res.all).toMatch(/Passed with production profile/);
    expect(res.exitCode).toBe(0);
  }, 300_000);

  it('refuses an empty management network before changing anything, naming the variable', async () => {
    const bad = join(work, 'bad.yml');
    await writeFile(bad, (await readFile(inventory, 'utf8')).replace(/hardening_management_networks: .*/, 'hardening_management_networks: []'));
    const res = await playbook(bad);
    expect(res.all).toMatch(/hardening_management_networks is empty: set it to the networks/);
    expect(recap(res.all)).toMatchObject({ failed: 1, changed: 0 });
  }, 300_000);

  it('applies site.yml to a Debian 12 root: package, config, unit, tuning, sysctls, firewall, SSH, node exporter', async () => {
    const res = await playbook(inventory);
    expect(recap(res.all), res.all.slice(-4000)).toMatchObject({ failed: 0, unreachable: 0 });
    expect(res.all).toMatch(/10TB: 4 disk\(s\), raid none, capacity 10TB, files of 1GiB \(9313\).*plan only/);

    // qe_packets: the package, the user, the config from the variables, the unit enabled at boot.
    expect((await inRoot(root, ['dpkg-query', '-W', '-f=${Status}', 'qe-packets'])).stdout).toBe('install ok installed');
    expect((await inRoot(root, ['getent', 'passwd', 'qe-packets'])).exitCode).toBe(0);
    const config = await readFile(join(root, 'etc/qe-packets/config.yaml'), 'utf8');
    expect(config).toContain('interfaces: ["lo"]');
    expect(config).toContain('paths: ["/var/lib/qe-packets/store"]');
    expect((await inRoot(root, ['qe-packets', 'check-config'])).exitCode).toBe(0);
    const wants = join(root, 'etc/systemd/system/multi-user.target.wants');
    expect(await readlink(join(wants, 'qe-packets.service'))).toBe('/lib/systemd/system/qe-packets.service');

    // capture_tuning: persistent sysctls, the tuning script and unit, enabled for the interface.
    const sysctl = await readFile(join(root, 'etc/sysctl.d/60-qe-capture.conf'), 'utf8');
    expect(sysctl).toMatch(/^net\.core\.rmem_max = 268435456$/m);
    expect(sysctl).toMatch(/^net\.core\.netdev_max_backlog = 250000$/m);
    const script = await readFile(join(root, 'usr/local/sbin/qe-capture-tuning'), 'utf8');
    expect(script).toContain('for feature in gro lro gso tso; do');
    expect(script).toContain('ip link set dev "$iface" promisc on');
    expect(script).toMatch(/ethtool -G "\$iface" rx "\$rx"/);
    expect((await execa('sh', ['-n', join(root, 'usr/local/sbin/qe-capture-tuning')], { reject: false })).exitCode).toBe(0);
    expect(await readlink(join(wants, 'qe-capture-tuning@lo.service'))).toBe('/etc/systemd/system/qe-capture-tuning@.service');

    // hardening: key-only SSH without root, sshd accepts the result, a firewall nft accepts, root locked.
    const sshd = await readFile(join(root, 'etc/ssh/sshd_config.d/50-qe-hardening.conf'), 'utf8');
    for (const line of ['PermitRootLogin no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no']) expect(sshd).toContain(line);
    const effective = (await inRoot(root, ['/usr/sbin/sshd', '-T'])).stdout;
    expect(effective).toMatch(/^permitrootlogin no$/m);
    expect(effective).toMatch(/^passwordauthentication no$/m);
    const nft = await readFile(join(root, 'etc/nftables.conf'), 'utf8');
    expect(nft).toContain('policy drop;');
    expect(nft).toMatch(/ip saddr \{ 192\.0\.2\.0\/24 \} tcp dport \{ 22, 9464, 9100, 8443 \} accept/);
    expect(nft).toMatch(/ip6 saddr \{ 2001:db8::\/32 \} tcp dport \{ 22, 9464, 9100, 8443 \} accept/);
    expect((await inRoot(root, ['/usr/sbin/nft', '-c', '-f', '/etc/nftables.conf'])).exitCode).toBe(0);
    // nftables.service is WantedBy=sysinit.target (links point into the root: read them, do not follow them).
    expect(await readlink(join(root, 'etc/systemd/system/sysinit.target.wants/nftables.service'))).toBe('/lib/systemd/system/nftables.service');
    expect((await readFile(join(root, 'etc/shadow'), 'utf8')).split('\n').find((l) => l.startsWith('root:'))).toMatch(/^root:!/);

    // monitoring: node exporter configured and enabled.
    expect(await readFile(join(root, 'etc/default/prometheus-node-exporter'), 'utf8')).toMatch(/^ARGS=--web.listen-address=:9100$/m);
    expect(await readlink(join(wants, 'prometheus-node-exporter.service'))).toBe('/lib/systemd/system/prometheus-node-exporter.service');

    // systemd's own check of the units as installed in the root.
    const verify = await execa('systemd-analyze', ['verify', `--root=${root}`, '/lib/systemd/system/qe-packets.service'], { reject: false, all: true });
    expect(verify.exitCode, verify.all).toBe(0);
  }, 600_000);

  it('the tuning script it wrote really tunes a NIC: offloads off, promiscuous, up (a veth pair in a namespace)', async () => {
    const ns = `qe-tune-${process.pid}`;
    const inNs = (...argv: string[]) => execa('ip', ['netns', 'exec', ns, ...argv], { reject: false, all: true });
    await execa('ip', ['netns', 'add', ns]);
    try {
      await execa('ip', ['-n', ns, 'link', 'add', 'qa', 'type', 'veth', 'peer', 'name', 'qb']);
      // GRO on first, so that "off" afterwards is the script's doing (veth starts with TSO and GSO on).
      await inNs('ethtool', '-K', 'qa', 'gro', 'on');
      // veth has no rings (ethtool -g is unsupported): the script leaves them and carries on.
      const run = await inNs('sh', join(root, 'usr/local/sbin/qe-capture-tuning'), 'qa');
      expect(run.exitCode, run.all).toBe(0);
      expect(run.all).not.toMatch(/cannot turn (gro|gso|tso) off/);
      const features = (await inNs('ethtool', '-k', 'qa')).stdout;
      for (const f of ['generic-receive-offload', 'generic-segmentation-offload', 'tcp-segmentation-offload', 'large-receive-offload'])
        expect(features).toMatch(new RegExp(`^${f}: off`, 'm'));
      const link = (await inNs('ip', 'link', 'show', 'qa')).stdout;
      expect(link).toMatch(/<[^>]*PROMISC[^>]*>/);
      expect(link).toMatch(/<[^>]*\bUP\b[^>]*>/);
    } finally {
      await execa('ip', ['netns', 'del', ns], { reject: false });
    }
  });

  it('changes nothing when run again', async () => {
    const res = await playbook(inventory);
    expect(recap(res.all), res.all.slice(-4000)).toMatchObject({ failed: 0, changed: 0 });
  }, 600_000);
});
