// The README's first command: a real capture of real conversations on a throw-away mirror port.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../util/native.js';
import { parseArgs } from 'node:util';
import { execa, type ResultPromise } from 'execa';
import { CaptureSupervisor, type Counters } from '../capture/supervisor.js';
import { parseConfigText } from '../config/load.js';
import { formatSize } from '../config/units.js';
import { writePcapFile } from '../traffic/generate.js';
import { Lab, inNs } from '../util/netns.js';

export const demoHelp = `usage: qe-packets demo [--seconds N] [--keep]

Needs root (network namespaces). Builds a client and a server namespace joined by a veth pair,
mirrors every frame between them to a capture interface (like a switch's SPAN port), runs real
HTTP and DNS-style traffic (plain and on VLAN 100) for N seconds (default 10) while capturing
it into a small store in a temporary folder, prints live counters, then opens the files in
tshark. Everything is removed at the end, also on Ctrl-C; --keep leaves the store folder.`;

const demoConfig = (iface: string, store: string) => `# qe-packets demo: the embedded default configuration
capture:
  interfaces: [${iface}]
  snaplen: 262144
  buffer: 64MiB
storage:
  paths: [${store}]
  capacity: 256MiB
  mode: circular
  file_size: 2MiB
  file_duration: 5s
  flush_interval: 1s
`;

async function need(tool: string, pkg: string): Promise<void> {
  const found = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
  if (found.exitCode !== 0) throw new Error(`${tool} is missing: install it with apt-get install ${pkg} (./qe-packets --setup does it)`);
}

interface DemoOptions {
  seconds: number;
  keep: boolean;
}

/** The options, or why they cannot run (said on stderr; the demo exits 2). */
function readOptions(argv: string[]): DemoOptions | undefined {
  const { values } = parseArgs({ args: argv, options: { seconds: { type: 'string', default: '10' }, keep: { type: 'boolean' } } });
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 3600) {
    process.stderr.write(`error: --seconds ${values.seconds}: give a number of seconds from 1 to 3600\n`);
    return undefined;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('error: the demo creates network namespaces and needs root: run sudo ./qe-packets demo\n');
    return undefined;
  }
  return { seconds, keep: values.keep ?? false };
}

interface MirrorLab {
  nsClient: string;
  nsServer: string;
  clientDev: string;
  /** The capture interface: a copy of every frame between client and server. */
  span: string;
}

/** Client and server namespaces on a veth pair, every frame between them mirrored to `span`. */
async function buildMirror(lab: Lab, id: string): Promise<MirrorLab> {
  const nsClient = await lab.namespace(`qe-demo-${id}-client`);
  const nsServer = await lab.namespace(`qe-demo-${id}-server`);
  const span = `qd${id}span`;
  await lab.veth(`qd${id}c`, nsClient, `qd${id}s`, nsServer);
  await lab.veth(`qd${id}m`, nsServer, span, undefined);
  await lab.mirror(nsServer, `qd${id}s`, `qd${id}m`);
  for (const [ns, dev, host] of [[nsClient, `qd${id}c`, 1], [nsServer, `qd${id}s`, 2]] as const) {
    await inNs(ns, 'ip', 'addr', 'add', `10.77.0.${host}/24`, 'dev', dev);
  }
  return { nsClient, nsServer, clientDev: `qd${id}c`, span };
}

/** The store and its configuration written and shown, and capture started on the mirror port. */
async function startCapture(dir: string, span: string): Promise<{ sup: CaptureSupervisor; store: string }> {
  const store = join(dir, 'store');
  await execa('mkdir', ['-p', store]);
  const text = demoConfig(span, store);
  await writeFile(join(dir, 'config.yaml'), text);
  process.stdout.write(`Capturing the mirror port ${span} into ${store} with:\n\n${text}\n`);
  const config = parseConfigText(text, join(dir, 'config.yaml'));
  const sup = new CaptureSupervisor(config);
  sup.on('log', (level, line) => level !== 'info' && process.stderr.write(`${level}: ${line}\n`));
  sup.start();
  return { sup, store };
}

/**
 * Real HTTP and DNS-style conversations, and a replayed mix; returns the client, which ends after
 * `seconds` (in an object: a bare ResultPromise would be awaited to its end by the caller's await).
 */
async function startTraffic(dir: string, m: MirrorLab, seconds: number, peers: ResultPromise[]): Promise<{ client: ResultPromise }> {
  // Run as a script of its own (in each namespace): the tsc output, not the bundled command.
  const peer = join(packageRoot, 'build', 'daemon', 'src', 'demo', 'traffic-peer.js');
  const server = execa('ip', ['netns', 'exec', m.nsServer, process.execPath, peer, 'server', '10.77.0.2'], { stdio: 'inherit' });
  peers.push(server);
  await new Promise((r) => setTimeout(r, 500));
  const client = execa('ip', ['netns', 'exec', m.nsClient, process.execPath, peer, 'client', '10.77.0.2', String(seconds)], { stdio: 'inherit' });
  peers.push(client);
  // Beside the live conversations, a replayed mix the demo's own stacks do not make: VLAN and
  // QinQ tagged frames, IPv6, ICMP, ARP (this kernel may lack 802.1Q devices, a replay needs none).
  const mixed = join(dir, 'mixed.pcap');
  await writePcapFile(mixed, { profile: 'mixed', count: 400, seed: 7 });
  if ((await execa('sh', ['-c', 'command -v tcpreplay'], { reject: false })).exitCode === 0)
    peers.push(execa('ip', ['netns', 'exec', m.nsClient, 'tcpreplay', '-q', '--pps', '200', '-i', m.clientDev, mixed], { reject: false }));
  return { client };
}

/** Live counters once a second until the client ends or the demo is interrupted. */
async function showProgress(sup: CaptureSupervisor, span: string, client: ResultPromise, interrupted: () => boolean): Promise<void> {
  const start = Date.now();
  while (client.exitCode === null && !interrupted()) {
    await Promise.race([client.catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
    const t = sup.totals(span);
    const lost = t.kernel_drops + t.if_drops + t.writer_drops;
    process.stdout.write(
      `  ${((Date.now() - start) / 1000).toFixed(0).padStart(3)}s  ${span}: ${String(t.received).padStart(7)} packets seen, ` +
        `${String(t.written).padStart(7)} written (${formatSize(t.written_bytes)}), ${lost} lost, ${sup.closedCount} files closed\n`,
    );
  }
}

/** The files written, opened by the real tshark and capinfos. */
async function showFiles(store: string, totals: Counters): Promise<void> {
  const files = (await readdir(store)).filter((f) => f.endsWith('.pcap')).sort();
  process.stdout.write(`\n${totals.written} packets in ${files.length} pcap files (${totals.kernel_drops + totals.if_drops + totals.writer_drops} lost):\n`);
  for (const f of files) process.stdout.write(`  ${f}\n`);
  const paths = files.map((f) => join(store, f));
  // tshark's -c counts packets read, not packets shown: with a display filter the lines are cut here.
  const show = async (title: string, args: string[], maxLines = Infinity) => {
    process.stdout.write(`\n$ ${title}\n`);
    const r = await execa('tshark', args, { reject: false, env: { ...process.env, LC_ALL: 'C' } });
    const lines = r.stdout.split('\n').filter((l) => !l.startsWith('Running as user'));
    process.stdout.write(`${lines.slice(0, maxLines).join('\n')}\n`);
  };
  if (paths.length) {
    await show(`tshark -r ${files[0]} -c 12`, ['-r', paths[0]!, '-c', '12']);
    await show(`tshark -r ${files[0]} -Y http | head -6`, ['-r', paths[0]!, '-Y', 'http'], 6);
    await show(`tshark -r ${files[0]} -Y vlan | head -4`, ['-r', paths[0]!, '-Y', 'vlan'], 4);
    await show(`tshark -q -z io,phs -r ${files[0]}`, ['-q', '-z', 'io,phs', '-r', paths[0]!]);
    const caps = await execa('capinfos', ['-T', '-c', '-u', '-a', '-e', ...paths], { reject: false });
    process.stdout.write(`\n$ capinfos -T -c -u -a -e <files>\n${caps.stdout}\n`);
  }
}

export async function demoCommand(argv: string[]): Promise<number> {
  const opts = readOptions(argv);
  if (!opts) return 2;
  await need('ip', 'iproute2');
  await need('tc', 'iproute2');
  await need('tshark', 'tshark');

  const id = randomBytes(2).toString('hex');
  const lab = new Lab();
  const dir = await mkdtemp(join(tmpdir(), 'qe-demo-'));
  const peers: ResultPromise[] = [];
  let sup: CaptureSupervisor | undefined;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const mirror = await buildMirror(lab, id);
    const capture = await startCapture(dir, mirror.span);
    sup = capture.sup;
    await sup.waitUntilCapturing(15_000);
    const { client } = await startTraffic(dir, mirror, opts.seconds, peers);
    await showProgress(sup, mirror.span, client, () => interrupted);
    await sup.stop();
    const totals = sup.totals(mirror.span);
    sup = undefined;
    if (interrupted) {
      process.stdout.write('\ninterrupted: cleaning up\n');
      return 130;
    }
    await showFiles(capture.store, totals);
    process.stdout.write(opts.keep ? `\nThe store stays in ${capture.store}\n` : '\nDone; the namespaces, interfaces and store were removed (--keep keeps the store).\n');
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // Everything is removed, also on Ctrl-C: the peers, capture, the namespaces and (unless --keep) the store.
    for (const p of peers) p.kill('SIGTERM');
    await Promise.allSettled(peers);
    await sup?.stop();
    await lab.cleanup();
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  }
}
