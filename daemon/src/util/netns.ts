// Throw-away network namespaces and veth pairs for the demo, the tests and the benchmarks.
// Everything made here is recorded so that one cleanup removes it, even after a failure.
import { execa } from 'execa';

export const ip = (...args: string[]) => execa('ip', args);
export const inNs = (ns: string, cmd: string, ...args: string[]) => execa('ip', ['netns', 'exec', ns, cmd, ...args]);

export class Lab {
  private namespaces: string[] = [];
  private links: string[] = [];

  async namespace(name: string): Promise<string> {
    await ip('netns', 'add', name);
    this.namespaces.push(name);
    await inNs(name, 'ip', 'link', 'set', 'lo', 'up');
    // No router solicitations or MLD reports: the only frames are the ones a test sends.
    await inNs(name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
    return name;
  }

  /** A veth pair; each end goes to a namespace, or stays in the root namespace when undefined. */
  async veth(a: string, nsA: string | undefined, b: string, nsB: string | undefined): Promise<void> {
    await ip('link', 'add', a, ...(nsA ? ['netns', nsA] : []), 'type', 'veth', 'peer', 'name', b, ...(nsB ? ['netns', nsB] : []));
    if (!nsA) this.links.push(a);
    if (!nsB) this.links.push(b);
    for (const [dev, ns] of [[a, nsA], [b, nsB]] as const) {
      if (!ns) await execa('sysctl', ['-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`]).catch(() => {});
      await (ns ? inNs(ns, 'ip', 'link', 'set', dev, 'up') : ip('link', 'set', dev, 'up'));
    }
  }

  /** Copies every frame seen on `dev` (both directions) to `to`: a switch's mirror (SPAN) port. */
  async mirror(ns: string, dev: string, to: string): Promise<void> {
    await inNs(ns, 'tc', 'qdisc', 'add', 'dev', dev, 'clsact');
    for (const dir of ['ingress', 'egress'])
      await inNs(ns, 'tc', 'filter', 'add', 'dev', dev, dir, 'protocol', 'all', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'mirror', 'dev', to);
  }

  async cleanup(): Promise<void> {
    for (const l of this.links.splice(0)) await ip('link', 'del', l).catch(() => {});
    for (const ns of this.namespaces.splice(0).reverse()) await ip('netns', 'del', ns).catch(() => {});
  }
}
