import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { DEFAULT_CONFIG_PATH } from '../config/config.js';
import { ADMIN_USER, DONE_STAMP, applySettings, installAdminKey, physicalNics } from '../appliance/apply.js';
import { OvfEnvError, parseOvfEnvironment } from '../appliance/ovf-env.js';
import { findOvfEnvironment } from '../appliance/ovf-source.js';
import { findSettingsFiles } from '../appliance/settings-files.js';
import { growRoot } from '../appliance/grow-root.js';
import { ensureApiCertificate, type CertOutcome } from '../appliance/api-cert.js';
import { readSettings, redactSettings } from '../appliance/settings.js';
import { writeFileAtomic } from '../provision/write-file.js';
import { toJson } from '../util/json.js';
import { log } from '../util/log.js';
import { packageRoot } from '../util/native.js';
import { EXIT } from './common.js';

export const firstbootHelp = `usage: qe-packets firstboot [--ovf-env FILE] [--root DIR] [--config FILE] [--no-storage] [--json]

Applies the appliance settings given at import (the OVF properties: hostname, management
address, gateway, DNS, admin SSH key, capture interface, storage profile), read from VMware's
guestinfo, an "OVF ENV" CD-ROM, or --ovf-env FILE; from systemd credentials named qe.PROPERTY
(KVM: -smbios type=11,value=io.systemd.credential:qe.admin_ssh_key=...); or from files named
PROPERTY in qe-packets/ on the EFI system partition (a flashed disk). Without any, the defaults
(DHCP on the first NIC, capture on the second, all of the store disk). Then provisions the store disk with
\`qe-packets provision storage\`. qe-packets-firstboot.service runs it at every boot: after the
first, only the admin SSH key is taken again (how a new key reaches an appliance with no passwords),
and the root filesystem grows to the end of its disk (an enlarged virtual disk grows at the next boot).

  --ovf-env FILE   read the OVF environment from FILE
  --root DIR       configure the system mounted at DIR (an image) instead of this one; implies --no-storage
  --config FILE    the daemon's configuration (default ${DEFAULT_CONFIG_PATH}), inside --root
  --no-storage     do not provision the store disk (print the command instead)
  --no-grow        do not grow the root partition and filesystem to the end of their disk
  --nics A,B       the NICs in hardware order, instead of reading /sys/class/net (first: management)
  --json           print what was done as JSON

A bad setting is reported (property, value, fix) and falls back to its default; the others are applied.`;

export async function firstbootCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { 'ovf-env': { type: 'string' }, nics: { type: 'string' }, root: { type: 'string' }, config: { type: 'string' }, 'no-storage': { type: 'boolean' }, 'no-grow': { type: 'boolean' }, json: { type: 'boolean' } },
  });
  const root = values.root ?? '/';
  const configPath = values.config ?? DEFAULT_CONFIG_PATH;
  // Files on the ESP, then systemd credentials, then the OVF environment: the later win.
  const sources: string[] = [];
  let props: Record<string, string> = {};
  for (const f of values['ovf-env'] ? [] : await findSettingsFiles(root)) {
    props = { ...props, ...f.props };
    sources.push(f.source);
  }
  try {
    const env = await findOvfEnvironment(values['ovf-env']);
    if (env) {
      props = { ...props, ...parseOvfEnvironment(env.xml, env.source) };
      sources.push(env.source);
    }
  } catch (e) {
    const why = e instanceof OvfEnvError ? e.message : `${values['ovf-env']}: ${(e as Error).message}`;
    process.stderr.write(`error: ${why}; fix: give an ovf-env.xml (DSP0243 OVF environment)\n`);
    return EXIT.config;
  }
  const source = sources.length ? sources.join(' + ') : 'defaults (no OVF environment, credential or ESP settings found)';
  const { settings, problems } = readSettings(props);
  for (const p of problems) log('error', `OVF property ${p.key} = ${JSON.stringify(p.value)}: ${p.message}; fix: ${p.fix}`);
  // Every boot, not only the first: a virtual disk enlarged later grows at the next boot.
  if (root === '/' && !values['no-grow'])
    await growRoot().then(
      (g) => log('info', g.message),
      (e: Error) => log('warn', `root filesystem not grown: ${e.message}`),
    );
  // After the first boot only the admin key is taken again: it is how a key forgotten at import,
  // or a new one, reaches an appliance that has no passwords.
  if (existsSync(join(root, DONE_STAMP))) {
    const notes: string[] = [];
    if (settings.adminSshKey) await installAdminKey(root, settings.adminSshKey, notes);
    for (const n of notes) log('warn', n);
    log('info', `first boot already done (${join(root, DONE_STAMP)}): ${settings.adminSshKey ? 'admin key updated' : 'nothing to do'}`);
    return EXIT.ok;
  }
  const nics = values.nics ? values.nics.split(',').map((n) => n.trim()).filter(Boolean) : await physicalNics();
  // Before the config is written and checked: off loopback, a config without a certificate is refused.
  const cert = await ensureApiCertificate({ root, configPath, hostname: settings.hostname, addresses: settings.mgmt ? [settings.mgmt.address] : [] }).catch(
    (e: Error): CertOutcome => ({ made: false, why: `could not make one: ${e.message}` }),
  );
  log(cert.made || !cert.why.startsWith('could not') ? 'info' : 'warn', cert.made ? `api: self-signed certificate for ${cert.names.join(', ')} in ${cert.cert}, SHA-256 ${cert.fingerprint}` : `api: no certificate made (${cert.why})`);
  const plan = await applySettings(settings, { root, configPath, nics });
  if (root === '/') await execa('hostname', [settings.hostname], { reject: false }); // the running system too, not only the next boot
  for (const n of plan.notes) log('warn', n);
  // The capture_tuning role installs a per-interface unit (offloads off, rings, promiscuous);
  // the capture interface is known only now.
  let tuning: string | undefined;
  if (existsSync(join(root, 'etc/systemd/system/qe-capture-tuning@.service'))) {
    tuning = `qe-capture-tuning@${plan.capture}.service`;
    const r = await execa('systemctl', [`--root=${root}`, 'enable', tuning], { reject: false, all: true });
    if (r.exitCode !== 0) log('warn', `could not enable ${tuning}: ${r.all}`);
    else if (root === '/' && existsSync('/run/systemd/system')) await execa('systemctl', ['start', '--no-block', tuning], { reject: false });
  }
  let storage: 'provisioned' | 'skipped' | 'failed' = 'skipped';
  if (!values['no-storage'] && root === '/') {
    const r = await execa(process.execPath, [join(packageRoot, 'build', 'daemon', 'src', 'cli.js'), ...plan.provision], { reject: false, all: true });
    process.stderr.write(r.all ? `${r.all}\n` : '');
    storage = r.exitCode === 0 ? 'provisioned' : 'failed';
  } else log('info', `store disk not provisioned here; to do it: qe-packets ${plan.provision.join(' ')}`);
  // Only a completed first boot is stamped: a failed provisioning is tried again at the next boot.
  if (storage !== 'failed') await writeFileAtomic(join(root, DONE_STAMP), `${new Date().toISOString()} from ${source}\n`);
  if (values.json) process.stdout.write(`${toJson({ source, settings: redactSettings(settings), problems, ...plan, tuning: tuning ?? null, storage, adminUser: ADMIN_USER, apiCertificate: cert })}\n`);
  else log('info', `first boot from ${source}: host ${settings.hostname}, management ${plan.management} (${settings.mgmt ? `${settings.mgmt.address}/${settings.mgmt.prefix}` : 'DHCP'}), capture ${plan.capture}, storage ${settings.storageProfile}: ${storage}, qualevent ${settings.qualevent?.url ?? 'off'}`);
  // A running networkd takes the new files now. At boot it is not running yet (this unit is
  // ordered before it) and reads them when it starts: asking it to reload then would wait for a
  // D-Bus activation that cannot happen before this unit ends (50 s of timeouts under TCG).
  if (root === '/' && (await execa('systemctl', ['is-active', '--quiet', 'systemd-networkd.service'], { reject: false })).exitCode === 0)
    await execa('networkctl', ['reload'], { reject: false });
  return storage === 'failed' ? EXIT.failure : problems.length ? EXIT.config : EXIT.ok;
}
