// Stenographer on the same traffic: its server (which runs stenotype and answers stenoread) captures
// a slice of the benchmark's traffic replayed live on the bench veth. Its disk is a second copy of
// the traffic, so it gets a slice, not the whole store (see the disk plan in index.ts); our side of
// the comparison is a store built from the same slice file.

import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runGenerator } from '../capture/generators.js';
import { CAPTURE_IF, GENERATOR_IF, NAMESPACE, packetSockets } from '../capture/netns.js';
import { TimedProcess, freePort, run, sleep } from '../capture/proc.js';
import { countPcap } from '../capture/count.js';
import { round } from '../capture/stats.js';
import type { Query } from './query.js';

const CERTS = '/etc/stenographer/certs';

async function which(bin: string): Promise<boolean> {
  return (await run('sh', ['-c', `command -v ${bin}`], { reject: false })).exitCode === 0;
}

/** Installs the Debian package if it is missing; returns why Stenographer cannot run, if it cannot. */
export async function ensureStenographer(log: (s: string) => void): Promise<string | undefined> {
  if (!(await which('stenographer')) || !(await which('stenoread'))) {
    log('stenographer is not installed: apt-get install -y stenographer');
    const r = await run('sh', ['-c', 'DEBIAN_FRONTEND=noninteractive apt-get install -y stenographer jq curl'], { reject: false, timeoutMs: 600_000 });
    if (r.exitCode !== 0) return `apt-get install stenographer failed: ${r.stderr.slice(-300)}`;
  }
  for (const b of ['stenographer', 'stenotype', 'stenoread', 'setpriv', 'jq', 'curl']) if (!(await which(b))) return `${b} not found on PATH`;
  if ((await run('id', ['-u', 'stenographer'], { reject: false })).exitCode !== 0) return 'user stenographer does not exist';
  const r = await run('test', ['-r', join(CERTS, 'client_key.pem')], { reject: false });
  if (r.exitCode !== 0) return `no client key in ${CERTS} (the package's stenokeys.sh makes it)`;
  return undefined;
}

export interface Steno {
  config: string;
  proc: TimedProcess;
  dir: string;
}

/** Starts the server (as user stenographer, as its package runs it) capturing on the bench veth. */
export async function startStenographer(workDir: string, ifindex: number, cpu: number): Promise<Steno> {
  const dir = join(workDir, 'steno');
  const pkt = join(dir, 'packets');
  const idx = join(dir, 'index');
  for (const d of [dir, pkt, idx]) await mkdir(d, { recursive: true });
  // Its user must reach the folders: the bench's work folder is opened for traversal (index.ts);
  // folders above it are left as they are.
  const uid = Number((await run('id', ['-u', 'stenographer'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'stenographer'])).stdout.trim());
  for (const d of [dir, pkt, idx]) await chown(d, uid, gid);
  const config = join(dir, 'config');
  await writeFile(
    config,
    JSON.stringify({
      Threads: [{ PacketsDirectory: pkt, IndexDirectory: idx, MaxDirectoryFiles: 30000, DiskFreePercentage: 1 }],
      StenotypePath: '/usr/sbin/stenotype',
      Interface: CAPTURE_IF,
      Port: await freePort(),
      Host: '127.0.0.1',
      // The same ring as every capture row of bench:capture (256 MiB); 128 MB files (its default of
      // 128 async writes needs --filesize_mb ≥ --aiops); its default file age (60 s) decides when
      // an answer becomes available, and is what a user gets.
      Flags: ['--blocks=256', '--filesize_mb=128', '--seccomp=none'],
      CertPath: CERTS,
    }),
  );
  await chmod(config, 0o644);
  const before = await packetSockets(ifindex);
  const proc = TimedProcess.start(
    // Its server makes a temporary folder of links to the thread folders: in one it owns.
    ['env', `TMPDIR=${dir}`, 'setpriv', '--reuid', 'stenographer', '--regid', 'stenographer', '--init-groups', 'stenographer', `--config=${config}`, '--syslog=false'],
    { cpu, timeFile: join(workDir, 'steno-time.txt') },
  );
  const until = Date.now() + 30_000;
  while ((await packetSockets(ifindex)) <= before) {
    if (Date.now() > until) {
      const m = await proc.stop('SIGKILL', 2000);
      throw new Error(`stenographer never opened a packet socket on ${CAPTURE_IF}: ${m.stderr.slice(-600)}`);
    }
    await sleep(200);
  }
  return { config, proc, dir };
}

export function stenoreadCommand(s: Steno, q: Query, out: string): string[] {
  // stenoread pipes the server's answer through tcpdump; -Z root so tcpdump may write here.
  return ['env', `STENOGRAPHER_CONFIG=${s.config}`, 'stenoread', q.steno!, '-n', '-Z', 'root', '-w', out];
}

/** Replays the slice file on the veth at `pps`; stenotype captures it on the other end. */
export async function replaySlice(file: string, packets: number, pps: number, cpu: number) {
  // Frames of up to two VLAN tags and a full payload exceed a 1500-byte MTU: veth would drop them.
  await run('ip', ['link', 'set', CAPTURE_IF, 'mtu', '9000']);
  await run('ip', ['-n', NAMESPACE, 'link', 'set', GENERATOR_IF, 'mtu', '9000']);
  const seconds = Math.ceil(packets / pps) + 5;
  return runGenerator({ kind: 'tcpreplay', pps, packets }, { trafgenConfig: '', pcap: file }, seconds, cpu);
}

/**
 * Polls stenoread until every query returns `expected` packets: how long after the traffic was
 * sent Stenographer's answer is complete.
 */
export async function waitComplete(s: Steno, queries: readonly Query[], expected: Record<string, number>, sentAt: number, maxS: number, scratch: string, log: (m: string) => void) {
  const polls: { atS: number; counts: Record<string, number | undefined> }[] = [];
  for (;;) {
    const counts: Record<string, number | undefined> = {};
    for (const q of queries) {
      const out = join(scratch, `poll-${q.id}.pcap`);
      const r = await run(stenoreadCommand(s, q, out)[0]!, stenoreadCommand(s, q, out).slice(1), { reject: false, timeoutMs: 120_000 });
      counts[q.id] = r.exitCode === 0 ? (await countPcap(out).catch(() => undefined))?.packets : undefined;
    }
    const atS = (Date.now() - sentAt) / 1000;
    polls.push({ atS: round(atS, 1)!, counts });
    const done = queries.every((q) => counts[q.id] !== undefined && counts[q.id]! >= expected[q.id]!);
    if (done) return { completeAfterS: round(atS, 1)!, polls };
    if (atS > maxS) {
      log(`stenoread still incomplete after ${maxS} s: ${JSON.stringify(counts)} of ${JSON.stringify(expected)}`);
      return { completeAfterS: undefined, polls };
    }
    if (polls.length % 6 === 1) log(`stenoread after ${atS.toFixed(0)} s: ${JSON.stringify(counts)} of ${JSON.stringify(expected)}`);
    await sleep(5000);
  }
}
