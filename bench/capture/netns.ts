// The live test bench: a veth pair whose sending end lives in its own network namespace (where the
// generator runs) and whose receiving end stays in the root namespace (where the capture tools
// run). IPv6 is off on both ends and no addresses are assigned, so the kernel itself sends
// nothing: every frame on the wire is one the generator offered.

import { readFile } from 'node:fs/promises';
import { onCleanup } from './cleanup.js';
import { linkNumber } from '../../daemon/src/util/sys-class-net.js';
import { run } from './proc.js';

export const NAMESPACE = 'qe-bench-gen';
export const CAPTURE_IF = 'qe-bench0';
export const GENERATOR_IF = 'qe-bench1';

export interface LinkCounters {
  rxPackets: number;
  rxBytes: number;
  rxDropped: number;
  txPackets: number;
  txBytes: number;
  txDropped: number;
}

export async function namespaceExists(): Promise<boolean> {
  const r = await run('ip', ['netns', 'list']);
  return r.stdout.split('\n').some((l) => l.split(' ')[0] === NAMESPACE);
}

/** Creates the pair; registers its removal with the cleanup list. */
export async function createBench(): Promise<void> {
  if (await namespaceExists()) {
    throw new Error(
      `network namespace ${NAMESPACE} already exists: another benchmark may be running. ` +
        `If not, remove the leftover with: ip netns del ${NAMESPACE}; ip link del ${CAPTURE_IF}`,
    );
  }
  const linkLeft = await run('ip', ['link', 'show', CAPTURE_IF], { reject: false });
  if (linkLeft.exitCode === 0) throw new Error(`interface ${CAPTURE_IF} already exists; remove it with: ip link del ${CAPTURE_IF}`);

  onCleanup('remove namespace and veth', destroyBench);
  await run('ip', ['netns', 'add', NAMESPACE]);
  await run('ip', ['link', 'add', CAPTURE_IF, 'type', 'veth', 'peer', 'name', GENERATOR_IF, 'netns', NAMESPACE]);
  // Before the links come up, so no IPv6 router solicitation or DAD frame is ever sent.
  await run('sysctl', ['-qw', `net.ipv6.conf.${CAPTURE_IF}.disable_ipv6=1`]);
  await run('ip', ['netns', 'exec', NAMESPACE, 'sysctl', '-qw', `net.ipv6.conf.${GENERATOR_IF}.disable_ipv6=1`]);
  await run('ip', ['link', 'set', CAPTURE_IF, 'up']);
  await run('ip', ['-n', NAMESPACE, 'link', 'set', GENERATOR_IF, 'up']);
}

export async function destroyBench(): Promise<void> {
  // Deleting the namespace deletes its veth end, and with it the peer.
  await run('ip', ['netns', 'del', NAMESPACE], { reject: false });
  await run('ip', ['link', 'del', CAPTURE_IF], { reject: false });
}

export async function counters(ifname: string, namespace?: string): Promise<LinkCounters> {
  const args = [...(namespace ? ['-n', namespace] : []), '-j', '-s', 'link', 'show', 'dev', ifname];
  const r = await run('ip', args);
  const s = (JSON.parse(r.stdout) as { stats64: { rx: Record<string, number>; tx: Record<string, number> } }[])[0]!.stats64;
  return {
    rxPackets: s.rx.packets ?? 0,
    rxBytes: s.rx.bytes ?? 0,
    rxDropped: s.rx.dropped ?? 0,
    txPackets: s.tx.packets ?? 0,
    txBytes: s.tx.bytes ?? 0,
    txDropped: s.tx.dropped ?? 0,
  };
}

export function delta(a: LinkCounters, b: LinkCounters): LinkCounters {
  return {
    rxPackets: b.rxPackets - a.rxPackets,
    rxBytes: b.rxBytes - a.rxBytes,
    rxDropped: b.rxDropped - a.rxDropped,
    txPackets: b.txPackets - a.txPackets,
    txBytes: b.txBytes - a.txBytes,
    txDropped: b.txDropped - a.txDropped,
  };
}

export async function ifindex(ifname: string): Promise<number> {
  const index = await linkNumber(ifname, 'ifindex');
  if (index === undefined) throw new Error(`${ifname}: no such interface (the kernel has no ifindex for it)`);
  return index;
}

/** Packet sockets bound to an interface (root namespace): a capture is armed once its appears. */
export async function packetSockets(index: number): Promise<number> {
  const text = await readFile('/proc/net/packet', 'utf8');
  return text
    .split('\n')
    .slice(1)
    .filter((l) => l.trim().split(/\s+/)[4] === String(index)).length;
}
