// Community ID v1 against the values the specification publishes (corelight/community-id-spec,
// baseline/baseline_deflt.json: seed 0, base64), each flow in both directions where the spec
// lists both. ICMP rows give the type as sport and the code (or counter-type) as dport.
import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import { communityId, icmpPorts } from '../daemon/src/flows/community-id.js';
import { addressBytes } from '../daemon/src/flows/address.js';

const baseline: [proto: number, saddr: string, daddr: string, sport: number | null, dport: number | null, id: string][] = [
  [58, 'fe80::200:86ff:fe05:80da', 'fe80::260:97ff:fe07:69ea', 135, 136, '1:dGHyGvjMfljg6Bppwm3bg0LO8TY='],
  [58, 'fe80::260:97ff:fe07:69ea', 'fe80::200:86ff:fe05:80da', 136, 135, '1:dGHyGvjMfljg6Bppwm3bg0LO8TY='],
  [58, 'fe80::260:97ff:fe07:69ea', 'fe80::200:86ff:fe05:80da', 135, 136, '1:zavyT/cezQr1fmImYCwYnMXbgck='],
  [58, 'fe80::200:86ff:fe05:80da', 'fe80::260:97ff:fe07:69ea', 136, 135, '1:zavyT/cezQr1fmImYCwYnMXbgck='],
  [58, '3ffe:501:1800:2345::2', '3ffe:507:0:1:200:86ff:fe05:80da', 3, 0, '1:2ObVBgIn28oZvibYZhZMBgh7WdQ='],
  [58, '3ffe:501:410:0:2c0:dfff:fe47:33e', '3ffe:507:0:1:200:86ff:fe05:80da', 1, 4, '1:hLZd0XGWojozrvxqE0dWB1iM6R0='],
  [58, '3ffe:507:0:1:200:86ff:fe05:80da', '3ffe:501:0:1001::2', 128, 129, '1:+TW+HtLHvV1xnGhV1lv7XoJrqQg='],
  [58, '3ffe:501:0:1001::2', '3ffe:507:0:1:200:86ff:fe05:80da', 129, 128, '1:+TW+HtLHvV1xnGhV1lv7XoJrqQg='],
  [58, 'fe80::200:86ff:fe05:80da', 'ff02::2', 133, 134, '1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0='],
  [58, 'fe80::260:97ff:fe07:69ea', 'ff02::1', 134, 133, '1:pkvHqCL88/tg1k4cPigmZXUtL00='],
  [1, '192.168.0.89', '192.168.0.1', 8, 0, '1:X0snYXpgwiv9TZtqg64sgzUn6Dk='],
  [1, '192.168.0.1', '192.168.0.89', 0, 8, '1:X0snYXpgwiv9TZtqg64sgzUn6Dk='],
  [1, '10.0.0.1', '10.0.0.2', 11, 0, '1:YHxtAirCG//0OzkcVAukqKQN9xM='],
  [6, '2001:470:e5bf:dead:4957:2174:e82c:4887', '2607:f8b0:400c:c03::1a', 63943, 25, '1:/qFaeAR+gFe1KYjMzVDsMv+wgU4='],
  [6, '2607:f8b0:400c:c03::1a', '2001:470:e5bf:dead:4957:2174:e82c:4887', 25, 63943, '1:/qFaeAR+gFe1KYjMzVDsMv+wgU4='],
  [132, '192.168.170.8', '192.168.170.56', 7, 7, '1:MP2EtRCAUIZvTw6MxJHLV7N7JDs='],
  [132, '192.168.170.56', '192.168.170.8', 7, 7, '1:MP2EtRCAUIZvTw6MxJHLV7N7JDs='],
  [6, '128.232.110.120', '66.35.250.204', 34855, 80, '1:LQU9qZlK+B5F3KDmev6m5PMibrg='],
  [6, '66.35.250.204', '128.232.110.120', 80, 34855, '1:LQU9qZlK+B5F3KDmev6m5PMibrg='],
  [17, '192.168.1.52', '8.8.8.8', 54585, 53, '1:d/FP5EW3wiY1vCndhwleRRKHowQ='],
  [17, '8.8.8.8', '192.168.1.52', 53, 54585, '1:d/FP5EW3wiY1vCndhwleRRKHowQ='],
  [46, '10.1.12.1', '10.1.12.2', null, null, '1:KHlLkgoJW7ifUTyTSgyVfkFHzKw='],
  [46, '10.1.12.2', '10.1.12.1', null, null, '1:KHlLkgoJW7ifUTyTSgyVfkFHzKw='],
];

describe('Community ID v1', () => {
  it.each(baseline)('proto %i %s -> %s (%s, %s) is the spec\'s %s', (proto, saddr, daddr, sport, dport, id) => {
    expect(isIP(saddr)).toBeGreaterThan(0);
    expect(communityId({ proto, src: addressBytes(saddr), dst: addressBytes(daddr), sport: sport ?? 0, dport: dport ?? 0 })).toBe(id);
  });

  it('maps ICMP types through the two-way table, one-way types keep their code and their order', () => {
    expect(icmpPorts(1, 8, 0)).toEqual({ sport: 8, dport: 0, oneWay: false });
    expect(icmpPorts(1, 0, 0)).toEqual({ sport: 0, dport: 8, oneWay: false });
    expect(icmpPorts(1, 10, 0)).toEqual({ sport: 10, dport: 9, oneWay: false });
    expect(icmpPorts(1, 3, 3)).toEqual({ sport: 3, dport: 3, oneWay: true });
    expect(icmpPorts(58, 136, 0)).toEqual({ sport: 136, dport: 135, oneWay: false });
    expect(icmpPorts(58, 1, 4)).toEqual({ sport: 1, dport: 4, oneWay: true });
    // One-way: the sender stays first even when its address is the larger, so the two
    // directions of an unreachable differ; an echo and its reply do not.
    const a = addressBytes('10.0.0.9');
    const b = addressBytes('10.0.0.1');
    expect(communityId({ proto: 1, src: a, dst: b, sport: 3, dport: 1 })).not.toBe(communityId({ proto: 1, src: b, dst: a, sport: 3, dport: 1 }));
    expect(communityId({ proto: 1, src: a, dst: b, sport: 8, dport: 0 })).toBe(communityId({ proto: 1, src: b, dst: a, sport: 0, dport: 0 }));
  });

  it('equal addresses: the ports decide the order', () => {
    const a = addressBytes('10.0.0.1');
    expect(communityId({ proto: 6, src: a, dst: a, sport: 80, dport: 1234 })).toBe(communityId({ proto: 6, src: a, dst: a, sport: 1234, dport: 80 }));
  });
});
