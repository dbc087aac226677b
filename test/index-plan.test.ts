// The filter planner: which index lookups narrow a BPF expression. A plan may only be wider than
// the filter (ALL where unsure), never narrower: test/index-agreement.test.ts holds it to a scan.
import { describe, expect, it } from 'vitest';
import { describePlan, planFilter } from '../daemon/src/index/plan.js';
import type { IndexField } from '../daemon/src/index/format.js';

const DEFAULT: IndexField[] = ['ip', 'port', 'proto', 'vlan'];
const EVERY: IndexField[] = ['mac', 'ip', 'port', 'proto', 'vlan', 'tunnel'];
const plan = (f: string, fields: IndexField[] = EVERY) => describePlan(planFilter(f, fields));
const ALL = 'ALL (no narrowing)';

describe('filter planner', () => {
  it.each([
    ['host 10.0.0.5', 'ipv4 10.0.0.5'],
    ['src host 10.0.0.5', 'ipv4 10.0.0.5'],
    ['dst host 10.0.0.5', 'ipv4 10.0.0.5'],
    ['src or dst host 10.0.0.5', 'ipv4 10.0.0.5'],
    ['src and dst host 10.0.0.5', 'ipv4 10.0.0.5'],
    ['ip host 10.0.0.5', 'ipv4 10.0.0.5'],
    ['arp host 10.0.0.5', 'ipv4 10.0.0.5'],
    ['src 10.0.0.5', 'ipv4 10.0.0.5'],
    ['dst 10.0.0.5', 'ipv4 10.0.0.5'],
    ['10.0.0.5', 'ipv4 10.0.0.5'],
    ['ip6 host 2001:db8::1', 'ipv6 2001:db8:0:0:0:0:0:1'.replace(/(^|:)0(:0)+(:|$)/, '::')],
    ['host ::ffff:10.0.0.1', 'ipv6 ::ffff:a00:1'],
    ['net 10.0.0.0/8', 'ipv4 10.0.0.0..10.255.255.255'],
    ['net 10.1', 'ipv4 10.1.0.0..10.1.255.255'],
    ['net 192.168.4.0 mask 255.255.252.0', 'ipv4 192.168.4.0..192.168.7.255'],
    ['src net 10.0.0.0/32', 'ipv4 10.0.0.0'],
    ['net 2001:db8::/32', 'ipv6 2001:db8::..2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['port 53', '(port 53 or port 0)'],
    ['src port 53', '(port 53 or port 0)'],
    ['tcp port 443', '((port 443 or port 0) and proto 6)'],
    ['udp dst port 53', '((port 53 or port 0) and proto 17)'],
    ['portrange 1000-1010', '(port 1000..1010 or port 0)'],
    ['tcp portrange 10-1', '((port 1..10 or port 0) and proto 6)'],
    ['ip proto 17', 'proto 17'],
    ['ip6 proto 58', 'proto 58'],
    ['proto \\tcp', 'proto 6'],
    ['ip proto \\udp', 'proto 17'],
    ['tcp', 'proto 6'],
    ['udp', 'proto 17'],
    ['icmp', 'proto 1'],
    ['icmp6', 'proto 58'],
    ['sctp', 'proto 132'],
    ['vlan 100', 'vlan 100'],
    ['vlan', 'vlan 0..4095'],
    ['ether host 02:00:00:00:00:01', 'mac 02:00:00:00:00:01'],
    ['ether src 2:0:0:0:0:1', 'mac 02:00:00:00:00:01'],
    ['ether dst 0200.0000.0001', 'mac 02:00:00:00:00:01'],
    ['host 10.0.0.1 and port 80', '(ipv4 10.0.0.1 and (port 80 or port 0))'],
    ['host 10.0.0.1 && port 80', '(ipv4 10.0.0.1 and (port 80 or port 0))'],
    ['host 10.0.0.1 or host 10.0.0.2', '(ipv4 10.0.0.1 or ipv4 10.0.0.2)'],
    ['host 10.0.0.1 || 10.0.0.2', '(ipv4 10.0.0.1 or ipv4 10.0.0.2)'],
    // libpcap carries the qualifiers of the primitive before a bare value.
    ['host 10.0.0.1 or 10.0.0.2 or 10.0.0.3', '(ipv4 10.0.0.1 or ipv4 10.0.0.2 or ipv4 10.0.0.3)'],
    ['tcp port 80 or 443', '(((port 80 or port 0) and proto 6) or ((port 443 or port 0) and proto 6))'],
    ['port 53 and (10.0.0.1 or 10.0.0.2)', '(port 53 or port 0)'], // `port 10.0.0.1`: not understood
    ['host 10.0.0.1 and (10.0.0.2 or 10.0.0.3)', '(ipv4 10.0.0.1 and (ipv4 10.0.0.2 or ipv4 10.0.0.3))'],
    // `and` and `or` have one precedence and group to the left.
    ['host 10.0.0.1 or host 10.0.0.2 and port 80', '((ipv4 10.0.0.1 or ipv4 10.0.0.2) and (port 80 or port 0))'],
    ['port 80 and host 10.0.0.1 or host 10.0.0.2', '(((port 80 or port 0) and ipv4 10.0.0.1) or ipv4 10.0.0.2)'],
    ['(host 10.0.0.1 or host 10.0.0.2) and (port 80 or port 443)', '((ipv4 10.0.0.1 or ipv4 10.0.0.2) and (port 80 or port 0 or port 443))'],
    // `not X` may hold any block.
    ['not host 10.0.0.1', ALL],
    ['! port 22', ALL],
    ['host 10.0.0.1 and not port 22', 'ipv4 10.0.0.1'],
    ['host 10.0.0.1 or not port 22', ALL],
    ['not (host 10.0.0.1 and port 22)', ALL],
    // Not understood: ALL.
    ['host example.com', ALL],
    ['port domain', ALL],
    ['greater 100', ALL],
    ['len > 100', ALL],
    ['tcp[tcpflags] & (tcp-syn|tcp-ack) != 0', ALL],
    ['(ip[0] & 0xf) > 5 and host 10.0.0.1', 'ipv4 10.0.0.1'],
    ['ip', ALL],
    ['ip6', ALL],
    ['arp', ALL],
    ['broadcast', ALL],
    ['ether broadcast', ALL],
    ['ether proto 0x0800', ALL],
    ['gateway 10.0.0.1', ALL],
    ['ip6 proto 0', ALL], // hop-by-hop: the index holds the upper-layer header after it
    ['ip proto 51', ALL],
    ['HOST 10.0.0.1', ALL],
    ['host 10.0.0', ALL],
    ['host 10.0.0.256', ALL],
    ['port 70000', ALL],
    ['vlan 5000', ALL],
    ['host (', ALL],
    ['host 10.0.0.1 and', ALL],
    // After `vlan`, libpcap reads the rest at shifted offsets: keys hold only on the top `and` chain.
    ['vlan 100 and host 10.0.0.1', '(vlan 100 and ipv4 10.0.0.1)'],
    ['vlan and host 10.0.0.1', '(vlan 0..4095 and ipv4 10.0.0.1)'],
    ['vlan 100 or host 10.0.0.1', ALL],
    ['(vlan 100 or tcp) and host 10.0.0.1', ALL],
    ['host 10.0.0.1 or vlan 100', '(ipv4 10.0.0.1 or vlan 100)'],
    ['vlan 100 and host 10.0.0.1 or host 10.0.0.2', ALL],
    ['not vlan 100 and host 10.0.0.1', ALL],
    ['mpls and host 10.0.0.1', 'ipv4 10.0.0.1'],
    ['pppoes and host 10.0.0.1', 'ipv4 10.0.0.1'],
    // After a tunnel keyword libpcap reads the inner packet, which the index may not hold.
    ['geneve and host 10.0.0.1', ALL],
    ['vxlan and port 80', ALL],
    ['host 10.0.0.2 and geneve and host 10.0.0.1', 'ipv4 10.0.0.2'],
  ])('%s → %s', (filter, expected) => {
    expect(plan(filter)).toBe(expected);
  });

  it('leaves a field the index lacks to a scan', () => {
    expect(plan('ether host 02:00:00:00:00:01', DEFAULT)).toBe(ALL);
    expect(plan('ether host 02:00:00:00:00:01 and host 10.0.0.1', DEFAULT)).toBe('ipv4 10.0.0.1');
    expect(plan('ether host 02:00:00:00:00:01 or host 10.0.0.1', DEFAULT)).toBe(ALL);
    expect(plan('host 10.0.0.1 and port 80', ['port'])).toBe('(port 80 or port 0)');
    expect(plan('host 10.0.0.1', [])).toBe(ALL);
  });

  it('plans no filter as ALL', () => {
    expect(plan('')).toBe(ALL);
    expect(describePlan(planFilter(undefined, EVERY))).toBe(ALL);
  });
});
