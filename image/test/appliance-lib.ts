// What the appliance boot tests share: a deploy-time admin key, the OVF environment ISO, SSH as the
// admin through a forwarded port, frames injected into the capture NIC, and reading back what the
// appliance stored. The capture NIC is a QEMU UDP socket backend: every datagram sent to its port
// reaches the guest as one Ethernet frame, the way a mirror port delivers traffic.
import { createSocket } from 'node:dgram';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { testFrames, seqOf, seqOffset } from '../../test/lib/frames.js';
import { readRecords } from '../../test/lib/cli.js';
import { bootToLogin } from '../src/boot.js';
import { imageDir } from '../src/build-base.js';

/** Generous limits: a TCG boot of the appliance takes 2-3 minutes; a failed one is stopped long
 * before (console-watch.ts: panic, grub rescue, UEFI shell, stopped QEMU, silent console). */
const BOOT_TIMEOUT_MS = 25 * 60_000;
const CAPTURE_TIMEOUT_MS = 12 * 60_000;
/** `npm run test:image` boots every deployment; CI (CI=true) only the qcow2 by UEFI, the OVA's VMDK
 * by SeaBIOS and the virt-v2v import, to stay in its time budget (README, Tests).
 * QE_IMAGE_FULL=1 asks for the full matrix in CI too. */
export const fullMatrix = process.env.CI !== 'true' || process.env.QE_IMAGE_FULL === '1';

/** Test frames sent into the capture NIC of each deployment. */
export const FRAMES = 400;

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A fresh key pair for the admin; returns the private key's path and the public key. */
export async function adminKey(dir: string): Promise<{ file: string; pub: string }> {
  const file = join(dir, 'admin');
  await execa('rm', ['-f', file, `${file}.pub`]);
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'admin@qe-test', '-f', file]);
  return { file, pub: (await readFile(`${file}.pub`, 'utf8')).trim() };
}

/** The OVF environment ISO transport: a CD-ROM labelled "OVF ENV" holding ovf-env.xml. */
export async function ovfEnvIso(dir: string, props: Record<string, string>): Promise<string> {
  await mkdir(join(dir, 'iso'), { recursive: true });
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1">
  <PropertySection>
${Object.entries(props).map(([k, v]) => `    <Property oe:key="${k}" oe:value="${v}"/>`).join('\n')}
  </PropertySection>
</Environment>
`;
  await writeFile(join(dir, 'iso', 'ovf-env.xml'), xml);
  const iso = join(dir, 'ovf-env.iso');
  await execa('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'OVF ENV', '-J', '-r', '-o', iso, join(dir, 'iso')]);
  return iso;
}

export type Ssh = (cmd: string, opts?: { user?: string; extra?: string[]; binary?: boolean }) => ReturnType<typeof execa>;

export function sshAs(port: number, keyFile: string): Ssh {
  return (cmd, opts = {}) =>
    execa(
      'ssh',
      [
        '-i', keyFile, '-p', String(port),
        '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', '-o', 'LogLevel=ERROR',
        ...(opts.extra ?? []),
        `${opts.user ?? 'admin'}@127.0.0.1`, cmd,
      ],
      { reject: false, timeout: 180_000, ...(opts.binary ? { encoding: 'buffer' } : {}) },
    ) as ReturnType<typeof execa>;
}

export interface ApplianceStatus {
  state: string;
  figures: { interfaces: { name: string; up: boolean }[]; store: { capacityBytes: number; paths: string[] } };
}

/** Polls `qe-packets status --json` as the admin until every interface captures. */
export async function waitForCapturing(ssh: Ssh, timeoutMs: number): Promise<{ status?: ApplianceStatus; last: string }> {
  const t0 = Date.now();
  let last = '';
  while (Date.now() - t0 < timeoutMs) {
    const res = await ssh('qe-packets status --json');
    last = `${String(res.stdout)}${String(res.stderr)}`;
    const text = String(res.stdout).trim();
    // Until the daemon answers, status --json prints {"state": "unknown", ...} without figures.
    const parsed = text.startsWith('{') ? (JSON.parse(text) as ApplianceStatus & { figures?: unknown }) : undefined;
    if (parsed?.figures && parsed.figures.interfaces.length > 0 && parsed.figures.interfaces.every((x) => x.up)) return { status: parsed, last };
    await new Promise((ok) => setTimeout(ok, 5000));
  }
  return { last };
}

/** Sends count test frames (sequence numbers from 0) into the capture NIC's UDP socket backend. */
export async function injectFrames(port: number, count: number): Promise<void> {
  const sock = createSocket('udp4');
  try {
    for (const f of testFrames({ count, seed: 7, vlanShare: 0.2 })) {
      await new Promise<void>((ok, fail) => sock.send(f, port, '127.0.0.1', (e) => (e ? fail(e) : ok())));
      // Paced: QEMU's socket backend drops what the guest's virtio queue cannot take at once.
      await new Promise((ok) => setTimeout(ok, 2));
    }
  } finally {
    sock.close();
  }
}

/**
 * Extracts the last hour from the appliance's store over SSH into a local pcap (checked with
 * capinfos), and returns the sequence numbers of the test frames in it.
 */
export async function storedTestFrames(ssh: Ssh, out: string): Promise<{ seqs: number[]; seqsByTime: number[]; capinfos: string }> {
  const res = await ssh("qe-packets extract --from '1h ago' -w -", { binary: true });
  if (res.exitCode !== 0) throw new Error(`qe-packets extract over SSH exited ${res.exitCode}: ${Buffer.from(res.stderr as unknown as Uint8Array).toString()}`);
  await writeFile(out, res.stdout as unknown as Uint8Array);
  const capinfos = (await execa('capinfos', ['-c', '-t', out])).stdout;
  const isTestFrame = (d: Buffer) => d.length >= 24 && d.readUInt16BE(seqOffset(d) - 2) === 0x88b5;
  const frames = (await readRecords([out])).filter((r) => isTestFrame(r.data));
  const seqs = frames.map((r) => seqOf(r.data));
  // By capture timestamp (a stable sort): the order the NIC received them in.
  const seqsByTime = [...frames].sort((a, b) => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : 0)).map((r) => seqOf(r.data));
  return { seqs, seqsByTime, capinfos };
}

export interface Observed {
  accel: 'kvm' | 'tcg';
  bootSeconds: number;
  maxSilentSeconds: number;
  failedUnits: string;
  capturingAfterSeconds?: number;
  status?: ApplianceStatus;
  lastStatus: string;
  hostname: string;
  /** Sequence numbers of the stored test frames in file order, and ordered by their capture timestamps. */
  seqs: number[];
  seqsByTime: number[];
  capinfos: string;
  metrics: string;
  rootBytes: number;
  sudo: number;
  sshdConfig: string;
  passwordLogin: string;
  machineId: string;
  hostKey: string;
  /** 'disk DRIVER' and 'nic DRIVER' lines. */
  drivers: string;
  blame: string;
  firstbootLog: string;
  firewall: string;
  service: string;
}

/** Boots one deployment, feeds its capture NIC, and collects what the checks look at. */
export async function deployAndObserve(o: {
  name: string;
  disk: string;
  format: 'qcow2' | 'raw' | 'vmdk';
  firmware: 'bios' | 'uefi';
  keyFile: string;
  model: string;
  diskArgs?: (store: string) => string[];
  extraArgs?: string[];
}): Promise<Observed> {
  const work = join(imageDir(), 'appliance-test', o.name);
  const store = join(work, 'store.qcow2');
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', store, '8G']);
  const [sshPort, metricsPort, inject, sink] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const ssh: Ssh = sshAs(sshPort, o.keyFile);
  const seen = { lastStatus: '', hostname: '', seqs: [] as number[], seqsByTime: [] as number[], capinfos: '', metrics: '', rootBytes: 0, sudo: -1, sshdConfig: '', passwordLogin: '', machineId: '', hostKey: '', drivers: '', blame: '', firstbootLog: '', firewall: '', service: '' } as Omit<Observed, 'accel' | 'bootSeconds' | 'maxSilentSeconds' | 'failedUnits'>;
  const t0 = Date.now();
  const r = await bootToLogin({
    disk: o.disk,
    format: o.format,
    firmware: o.firmware,
    timeoutMs: BOOT_TIMEOUT_MS,
    memoryMiB: 2048,
    serialLog: join(work, 'serial.log'),
    // Management first (SSH and metrics forwarded), then the capture NIC on a UDP socket backend.
    nics: [
      `user,model=${o.model},hostfwd=tcp:127.0.0.1:${sshPort}-:22,hostfwd=tcp:127.0.0.1:${metricsPort}-:9464`,
      `socket,model=${o.model},udp=127.0.0.1:${sink},localaddr=127.0.0.1:${inject}`,
    ],
    diskArgs: o.diskArgs?.(store),
    extraArgs: [...(o.diskArgs ? [] : ['-drive', `file=${store},format=qcow2,if=virtio`]), ...(o.extraArgs ?? [])],
    whileUp: async () => {
      const capturing = await waitForCapturing(ssh, CAPTURE_TIMEOUT_MS);
      seen.lastStatus = capturing.last;
      if (capturing.status) {
        seen.status = capturing.status;
        seen.capturingAfterSeconds = (Date.now() - t0) / 1000;
        await injectFrames(inject, FRAMES);
        // storage.flush_interval is 1 s: what was sent is on disk two seconds later.
        await new Promise((ok) => setTimeout(ok, 3000));
        Object.assign(seen, await storedTestFrames(ssh, join(work, 'extracted.pcap')));
        seen.metrics = (await execa('curl', ['-sf', '--max-time', '60', `http://127.0.0.1:${metricsPort}/metrics`], { reject: false })).stdout;
      }
      seen.hostname = String((await ssh('hostname')).stdout).trim();
      seen.rootBytes = Number(String((await ssh('df -B1 --output=size / | tail -1')).stdout).trim());
      seen.sudo = (await ssh('sudo -n true')).exitCode ?? -1;
      seen.sshdConfig = String((await ssh("sudo -n sshd -T | grep -E '^(permitrootlogin|passwordauthentication|kbdinteractiveauthentication|pubkeyauthentication) '")).stdout);
      const pw = await ssh('true', { extra: ['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password,keyboard-interactive'] });
      seen.passwordLogin = `${pw.exitCode} ${String(pw.stderr)}`;
      seen.machineId = String((await ssh('cat /etc/machine-id')).stdout).trim();
      seen.firewall = String((await ssh('sudo -n nft list chain inet filter input')).stdout);
      // Type=notify: "active" only after the daemon sent READY=1.
      seen.service = String((await ssh('systemctl show -p ActiveState -p SubState -p Type qe-packets.service')).stdout).trim();
      seen.hostKey = String((await ssh('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub')).stdout).trim();
      // The drivers actually bound: the root disk's controller (its PCI device's driver) and each NIC's.
      seen.drivers = String(
        (await ssh(`disk=$(lsblk -no PKNAME "$(findmnt -no SOURCE /)"); pci=$(readlink -f /sys/class/block/$disk | grep -o '.*/0000:[0-9a-f:.]*'); echo "disk $(basename "$(readlink "$pci/driver")")"; for n in /sys/class/net/*/device/driver; do echo "nic $(basename "$(readlink "$n")")"; done`)).stdout,
      ).trim();
      // Where the boot's time went (the bench reports it).
      seen.blame = String((await ssh('systemd-analyze blame --no-pager | head -8')).stdout).trim();
      seen.firstbootLog = String((await ssh('journalctl -b -o short-monotonic --no-pager -u qe-packets-firstboot.service')).stdout).trim();
    },
  });
  const observed: Observed = { ...seen, accel: r.accel, bootSeconds: r.seconds, maxSilentSeconds: r.maxSilentSeconds, failedUnits: r.failedUnits };
  await writeFile(join(work, 'observed.json'), `${JSON.stringify({ ...observed, seqs: observed.seqs.length }, null, 2)}\n`);
  console.log(`${o.name}: login after ${r.seconds.toFixed(0)} s, capturing after ${observed.capturingAfterSeconds?.toFixed(0) ?? 'never'} s under ${r.accel}; longest console silence ${r.maxSilentSeconds.toFixed(0)} s`);
  return observed;
}


/** The qcow2 deployed as on KVM (q35, UEFI, virtio) on a 10 GiB disk of the user's, settings by SMBIOS credentials. */
export async function deployOnKvm(o: { name: string; qcow2: string; key: { file: string; pub: string }; hostname?: string }): Promise<Observed> {
  const disk = join(imageDir(), 'appliance-test', o.name, 'system.qcow2');
  await mkdir(dirname(disk), { recursive: true });
  // The image as a backing file, enlarged: first boot grows the root to it.
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', o.qcow2, '-F', 'qcow2', disk, '10G']);
  const credential = (k: string, v: string) => ['-smbios', `type=11,value=io.systemd.credential:qe.${k}=${v}`];
  return deployAndObserve({
    name: o.name,
    disk,
    format: 'qcow2',
    firmware: 'uefi',
    keyFile: o.key.file,
    model: 'virtio-net-pci',
    extraArgs: [...credential('admin_ssh_key', o.key.pub), ...(o.hostname ? credential('hostname', o.hostname) : [])],
  });
}
