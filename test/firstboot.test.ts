// First boot of an appliance: the settings a user gave at import (an OVF environment document, as
// VMware's guestinfo or the OVF ENV ISO carry it) applied to a system root, and the unit that runs it.
import { chmod, chown, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { growRoot } from '../daemon/src/appliance/grow-root.js';
import { ensurePartitionNodes } from '../image/src/disk.js';
import { renderUnit } from '../daemon/src/systemd/unit.js';
import { cli, root, tempDir } from './lib/cli.js';

function ovfEnv(props: Record<string, string>): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"
    xmlns:ve="http://www.vmware.com/schema/ovfenv" oe:id="" ve:vCenterId="vm-42">
  <PlatformSection><Kind>VMware ESXi</Kind><Version>8.0.2</Version><Vendor>VMware, Inc.</Vendor><Locale>en</Locale></PlatformSection>
  <PropertySection>
${Object.entries(props).map(([k, v]) => `    <Property oe:key="${k}" oe:value="${v.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}"/>`).join('\n')}
  </PropertySection>
  <ve:EthernetAdapterSection><ve:Adapter ve:mac="00:50:56:aa:bb:01" ve:network="Management" ve:unitNumber="7"/></ve:EthernetAdapterSection>
</Environment>
`;
}

const isRoot = process.getuid?.() === 0;
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFy0e0k2Vj8xk7mQnYV7Z4oQ8h3u9m2l8cJ0bq1Xr5Wd ops@example';

async function systemRoot(): Promise<string> {
  const dir = await tempDir('qe-root-');
  await mkdir(join(dir, 'etc/qe-packets'), { recursive: true });
  await writeFile(join(dir, 'etc/hosts'), '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost ip6-localhost\n');
  await writeFile(join(dir, 'etc/passwd'), `root:x:0:0:root:/root:/bin/bash\n${'admin'}:x:1000:1000::/home/admin:/bin/bash\n`);
  await writeFile(join(dir, 'etc/qe-packets/config.yaml'), '# the shipped configuration\ncapture:\n  interfaces: []  # set at first boot\nstorage:\n  paths: [/var/lib/qe-packets/store]\n');
  return dir;
}

describe('qe-packets firstboot', () => {
  it('applies every setting from the OVF environment: hostname, static management address, DNS, SSH key, capture NIC, profile', async () => {
    const sys = await systemRoot();
    const env = join(sys, 'ovf-env.xml');
    await writeFile(env, ovfEnv({ hostname: 'cap-01', mgmt_address: '192.0.2.10/24', mgmt_gateway: '192.0.2.1', dns_servers: '192.0.2.53, 198.51.100.53', admin_ssh_key: KEY, capture_interface: 'auto', storage_profile: '10TB' }));
    // The package ships the config readable by the daemon's group only; first boot must keep that.
    const configPath = join(sys, 'etc/qe-packets/config.yaml');
    const [uid, gid] = isRoot ? [0, 4242] : [process.getuid!(), process.getgid!()];
    await chown(configPath, uid, gid);
    await chmod(configPath, 0o640);
    const res = await cli(['firstboot', '--ovf-env', env, '--root', sys, '--nics', 'ens192,ens224', '--json']);
    expect(res.exitCode, res.all).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out).toMatchObject({ management: 'ens192', capture: 'ens224', problems: [], storage: 'skipped' });
    const configStat = await stat(configPath);
    expect([configStat.uid, configStat.gid, configStat.mode & 0o7777]).toEqual([uid, gid, 0o640]);
    expect(out.provision).toEqual(['provision', 'storage', '--profile', '10TB', '--disks', 'auto', '--yes', '--config', '/etc/qe-packets/config.yaml']);
    expect(await readFile(join(sys, 'etc/hostname'), 'utf8')).toBe('cap-01\n');
    expect(await readFile(join(sys, 'etc/hosts'), 'utf8')).toBe('127.0.0.1\tlocalhost\n127.0.1.1\tcap-01\n::1\tlocalhost ip6-localhost\n');
    const mgmt = await readFile(join(sys, 'etc/systemd/network/10-qe-management.network'), 'utf8');
    expect(mgmt).toContain('Name=ens192\n');
    expect(mgmt).toContain('Address=192.0.2.10/24\nGateway=192.0.2.1\nDNS=192.0.2.53\nDNS=198.51.100.53\n');
    const capture = await readFile(join(sys, 'etc/systemd/network/20-qe-capture.network'), 'utf8');
    expect(capture).toContain('Name=ens224\n');
    expect(capture).toContain('LinkLocalAddressing=no');
    expect(capture).not.toMatch(/^(Address|DHCP)=/m);
    const keys = join(sys, 'home/admin/.ssh/authorized_keys');
    expect(await readFile(keys, 'utf8')).toBe(`${KEY}\n`);
    const st = await stat(keys);
    expect(st.mode & 0o777).toBe(0o600);
    expect([st.uid, st.gid]).toEqual([1000, 1000]);
    const sudoers = join(sys, 'etc/sudoers.d/qe-packets-admin');
    expect(await readFile(sudoers, 'utf8')).toMatch(/^admin ALL=\(ALL:ALL\) NOPASSWD: ALL$/m);
    expect((await stat(sudoers)).mode & 0o777).toBe(0o440);
    const visudo = await execa('visudo', ['-cf', sudoers], { reject: false, all: true });
    expect(visudo.exitCode, visudo.all).toBe(0);
    const config = await readFile(join(sys, 'etc/qe-packets/config.yaml'), 'utf8');
    expect(parseYaml(config)).toEqual({ capture: { interfaces: ['ens224'] }, storage: { paths: ['/var/lib/qe-packets/store'] } });
    expect(config).toContain('# the shipped configuration');
    expect(await readFile(join(sys, 'var/lib/qe-packets/firstboot.done'), 'utf8')).toContain(env);
  });

  it('sets the reports to Qe-Server from qualevent_url and qualevent_token, the token in a file of its own and never printed', async () => {
    const sys = await systemRoot();
    const env = join(sys, 'ovf-env.xml');
    const token = 'qe7.Zm9vYmFyYmF6-token';
    await writeFile(env, ovfEnv({ hostname: 'cap-02', admin_ssh_key: KEY, qualevent_url: 'https://qe-server.example/api/events', qualevent_token: token }));
    const configPath = join(sys, 'etc/qe-packets/config.yaml');
    const gid = isRoot ? 4242 : process.getgid!();
    if (isRoot) await chown(configPath, 0, gid);
    const res = await cli(['firstboot', '--ovf-env', env, '--root', sys, '--nics', 'ens192,ens224', '--json']);
    expect(res.exitCode, res.all).toBe(0);
    expect(res.all).not.toContain(token);
    const out = JSON.parse(res.stdout);
    expect(out.settings.qualevent).toEqual({ url: 'https://qe-server.example/api/events', token: '(set)' });
    expect(out.files).toContain('/etc/qe-packets/qualevent.token');
    expect(parseYaml(await readFile(configPath, 'utf8')).qualevent).toEqual({ url: 'https://qe-server.example/api/events', token_file: '/etc/qe-packets/qualevent.token' });
    const tokenFile = join(sys, 'etc/qe-packets/qualevent.token');
    expect(await readFile(tokenFile, 'utf8')).toBe(`${token}\n`);
    const st = await stat(tokenFile);
    expect(st.mode & 0o777).toBe(0o640);
    if (isRoot) expect([st.uid, st.gid]).toEqual([0, gid]);
  });

  it('refuses a bad qualevent_url or token by property and fix, never showing the token, and sets nothing of it', async () => {
    const sys = await systemRoot();
    const env = join(sys, 'ovf-env.xml');
    await writeFile(env, ovfEnv({ admin_ssh_key: KEY, qualevent_url: 'https://ops:pw@qe-server.example/e', qualevent_token: 'two words-secret' }));
    const res = await cli(['firstboot', '--ovf-env', env, '--root', sys, '--nics', 'ens192,ens224', '--json']);
    expect(res.exitCode, res.all).toBe(2);
    expect(res.stderr).toContain('OVF property qualevent_token = "(hidden)": not a token');
    expect(res.all).not.toContain('words-secret');
    const out = JSON.parse(res.stdout);
    expect(out.problems).toEqual([
      expect.objectContaining({ key: 'qualevent_url', fix: expect.stringMatching(/qualevent_token/) }),
      { key: 'qualevent_token', value: '(hidden)', message: expect.stringMatching(/spaces/), fix: expect.any(String) },
    ]);
    expect(parseYaml(await readFile(join(sys, 'etc/qe-packets/config.yaml'), 'utf8')).qualevent).toBeUndefined();
  });

  it('makes a self-signed API certificate for the host name and management address when the API listens off loopback without one', async () => {
    const sys = await systemRoot();
    const configPath = join(sys, 'etc/qe-packets/config.yaml');
    await writeFile(configPath, `${await readFile(configPath, 'utf8')}api:\n  listen: 0.0.0.0:8443\n`);
    const env = join(sys, 'ovf-env.xml');
    await writeFile(env, ovfEnv({ hostname: 'cap-02', mgmt_address: '192.0.2.20/24' }));
    const res = await cli(['firstboot', '--ovf-env', env, '--root', sys, '--nics', 'ens192,ens224', '--json']);
    expect(res.exitCode, res.all).toBe(0);
    const made = JSON.parse(res.stdout).apiCertificate;
    expect(made).toMatchObject({ made: true, cert: '/etc/qe-packets/api.crt', key: '/etc/qe-packets/api.key', names: ['cap-02', '192.0.2.20'] });
    const text = (await execa('openssl', ['x509', '-in', join(sys, 'etc/qe-packets/api.crt'), '-noout', '-text', '-fingerprint', '-sha256'])).stdout;
    expect(text).toContain('Subject: CN = cap-02');
    expect(text).toMatch(/DNS:cap-02, IP Address:192\.0\.2\.20/);
    expect(text).toContain(`sha256 Fingerprint=${made.fingerprint}`);
    expect((await stat(join(sys, 'etc/qe-packets/api.key'))).mode & 0o777).toBe(0o640);
    expect(parseYaml(await readFile(configPath, 'utf8')).api).toEqual({ listen: '0.0.0.0:8443', tls: { cert: '/etc/qe-packets/api.crt', key: '/etc/qe-packets/api.key' } });
    // On loopback (the default), nothing is made: plain HTTP is allowed there.
    const plain = await systemRoot();
    const res2 = await cli(['firstboot', '--root', plain, '--nics', 'ens192,ens224', '--json']);
    expect(JSON.parse(res2.stdout).apiCertificate).toMatchObject({ made: false });
    expect(await stat(join(plain, 'etc/qe-packets/api.crt')).catch(() => undefined)).toBeUndefined();
  });

  it('enables the capture tuning unit for the capture interface when the tuning role installed it', async () => {
    const sys = await systemRoot();
    await mkdir(join(sys, 'etc/systemd/system'), { recursive: true });
    await writeFile(
      join(sys, 'etc/systemd/system/qe-capture-tuning@.service'),
      '[Unit]\nDescription=tuning of %i\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/qe-capture-tuning %i\n[Install]\nWantedBy=multi-user.target\n',
    );
    const res = await cli(['firstboot', '--root', sys, '--nics', 'ens192,ens224', '--json']);
    expect(res.exitCode, res.all).toBe(0);
    expect(JSON.parse(res.stdout).tuning).toBe('qe-capture-tuning@ens224.service');
    const link = join(sys, 'etc/systemd/system/multi-user.target.wants/qe-capture-tuning@ens224.service');
    expect((await execa('readlink', [link])).stdout).toMatch(/qe-capture-tuning@\.service$/);
  });

  it('falls back per setting on bad values, naming the property, the value and the fix, and applies the rest', async () => {
    const sys = await systemRoot();
    const env = join(sys, 'ovf-env.xml');
    await writeFile(env, ovfEnv({ hostname: 'bad_host!', mgmt_address: '192.0.2.10/24', dns_servers: '192.0.2.53,10.0.0', admin_ssh_key: 'my password is secret', storage_profile: '15TB', capture_interface: 'ens256' }));
    const res = await cli(['firstboot', '--ovf-env', env, '--root', sys, '--nics', 'ens192,ens224,ens256', '--json']);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain('OVF property hostname = "bad_host!": not a host name; fix: use letters, digits and inner hyphens');
    expect(res.stderr).toContain('OVF property dns_servers = "192.0.2.53,10.0.0": 10.0.0 is not IPv4 addresses');
    expect(res.stderr).toContain('OVF property admin_ssh_key = "my password is secret": not an OpenSSH public key');
    expect(res.stderr).toContain('OVF property storage_profile = "15TB": not a storage profile; fix: choose one of auto, 10TB, 20TB, 40TB');
    const out = JSON.parse(res.stdout);
    expect(out.settings.hostname).toBe('qe-packets');
    expect(out.capture).toBe('ens256');
    expect(out.management).toBe('ens192');
    expect(out.provision).toContain('max');
    expect(await readFile(join(sys, 'etc/systemd/network/10-qe-management.network'), 'utf8')).toContain('Address=192.0.2.10/24\nDNS=192.0.2.53\n');
  });

  it('without an OVF environment: DHCP on the first NIC, capture on the second, the whole store disk', async () => {
    const sys = await systemRoot();
    const res = await cli(['firstboot', '--root', sys, '--nics', 'enp1s0,enp2s0', '--json']);
    expect(res.exitCode, res.all).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.source).toMatch(/^defaults/);
    expect(out).toMatchObject({ management: 'enp1s0', capture: 'enp2s0' });
    expect(out.provision.slice(0, 4)).toEqual(['provision', 'storage', '--profile', 'max']);
    expect(await readFile(join(sys, 'etc/systemd/network/10-qe-management.network'), 'utf8')).toContain('DHCP=ipv4');
    expect(out.notes).toContain('no admin SSH key given: set the admin_ssh_key property (vApp options) and reboot; there are no passwords');
    // A later boot with a key: only the key is applied.
    const env = join(sys, 'ovf-env.xml');
    await writeFile(env, ovfEnv({ hostname: 'other', admin_ssh_key: KEY }));
    const again = await cli(['firstboot', '--ovf-env', env, '--root', sys, '--nics', 'enp1s0,enp2s0']);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stderr).toContain('first boot already done');
    expect(await readFile(join(sys, 'home/admin/.ssh/authorized_keys'), 'utf8')).toBe(`${KEY}\n`);
    expect(await readFile(join(sys, 'etc/hostname'), 'utf8')).toBe('qe-packets\n');
  });

  it('takes settings from files on the ESP and from systemd credentials (KVM SMBIOS), credentials winning', async () => {
    const sys = await systemRoot();
    await mkdir(join(sys, 'boot/efi/qe-packets'), { recursive: true });
    await writeFile(join(sys, 'boot/efi/qe-packets/admin_ssh_key'), `${KEY}\r\n`);
    await writeFile(join(sys, 'boot/efi/qe-packets/hostname'), 'from-esp\n');
    await writeFile(join(sys, 'boot/efi/qe-packets/not_a_property'), 'ignored');
    await mkdir(join(sys, 'run/credentials/@system'), { recursive: true });
    await writeFile(join(sys, 'run/credentials/@system/qe.hostname'), 'from-credential');
    await writeFile(join(sys, 'run/credentials/@system/other.app.setting'), 'ignored');
    const res = await cli(['firstboot', '--root', sys, '--nics', 'enp1s0,enp2s0', '--json']);
    expect(res.exitCode, res.all).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.source).toBe(`${join(sys, 'boot/efi/qe-packets')}/{hostname,admin_ssh_key} + ${join(sys, 'run/credentials/@system')}/qe.{hostname}`);
    expect(out.settings).toMatchObject({ hostname: 'from-credential', adminSshKey: KEY });
    expect(await readFile(join(sys, 'home/admin/.ssh/authorized_keys'), 'utf8')).toBe(`${KEY}\n`);
  });

  it('refuses a document that is not an OVF environment', async () => {
    const sys = await systemRoot();
    await writeFile(join(sys, 'x.xml'), '<html><body>not it</body></html>');
    const res = await cli(['firstboot', '--ovf-env', join(sys, 'x.xml'), '--root', sys, '--nics', 'a,b']);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain('no <Environment> element: not an OVF environment document');
  });

  it('runs from units that systemd-analyze verify accepts: first boot, and the console fallback', async () => {
    const dir = await tempDir();
    for (const name of ['qe-packets-firstboot', 'qe-packets-console-setup'] as const) {
      const unit = join(dir, `${name}.service`);
      await writeFile(unit, renderUnit({ libDir: root.replace(/\/$/, ''), node: process.execPath }, name));
      const res = await execa('systemd-analyze', ['verify', unit], { reject: false, all: true });
      expect(res.all).toBe('');
      expect(await readFile(unit, 'utf8')).toMatch(new RegExp(`^ExecStart=.* ${name.replace('qe-packets-', '')}$`, 'm'));
    }
  });

  it('asks on the console for the admin key when none was given: refuses a password, installs a key, then has nothing to do', async () => {
    const sys = await systemRoot();
    const res = await cli(['console-setup', '--root', sys], { input: `my secret password\n${KEY}\n` });
    expect(res.exitCode, res.all).toBe(0);
    expect(res.stdout).toContain('no administrator key was given at deployment');
    expect(res.stdout).toContain('that is not an OpenSSH public key');
    expect(res.stdout).toContain('key installed: log in with ssh admin@');
    expect(await readFile(join(sys, 'home/admin/.ssh/authorized_keys'), 'utf8')).toBe(`${KEY}\n`);
    const again = await cli(['console-setup', '--root', sys], { input: '\n' });
    expect(again.stdout).toMatch(/the admin already has a key .*: nothing to do/);
    const skipped = await cli(['console-setup', '--root', await systemRoot()], { input: '\n' });
    expect(skipped.stdout).toContain('skipped: no key installed');
  });
});

describe.skipIf(process.getuid?.() !== 0)('root filesystem growth (loop device; runs as root in CI)', () => {
  // XFS here: growing a mounted ext4 needs CAP_SYS_RESOURCE, which this sandbox does not grant; the
  // appliance boot test (image/test) grows its real ext4 root.
  it('grows the partition and its filesystem to the end of an enlarged disk, and says so when there is nothing to grow', async () => {
    const dir = await tempDir('qe-grow-');
    const img = join(dir, 'disk.raw');
    // A 1 GiB disk whose root partition ends at 401 MiB, as an image written to a larger disk.
    await execa('truncate', ['-s', '1G', img]);
    await execa('sgdisk', ['-n', '1:2048:+400M', '-t', '1:8304', img]);
    const loop = (await execa('losetup', ['--find', '--show', '--partscan', img])).stdout.trim();
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    try {
      await ensurePartitionNodes(loop, [1]);
      await execa('mkfs.xfs', ['-q', `${loop}p1`]);
      await execa('mount', [`${loop}p1`, mnt]);
      const size = async () => Number((await execa('findmnt', ['-bno', 'SIZE', '--mountpoint', mnt])).stdout.trim());
      const before = await size();
      const grown = await growRoot(mnt);
      expect(grown.grown, grown.message).toBe(true);
      expect(await size()).toBeGreaterThan(before + 500 * 2 ** 20);
      // GPT stays valid: the backup header moved to the new end.
      expect((await execa('sgdisk', ['-v', img], { reject: false })).stdout).toMatch(/No problems found/);
      const again = await growRoot(mnt);
      expect(again).toMatchObject({ grown: false, message: `${loop}p1 already fills ${loop}` });
    } finally {
      await execa('umount', [mnt], { reject: false });
      await execa('losetup', ['-d', loop], { reject: false });
    }
  });
});
