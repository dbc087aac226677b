// The checks every deployment of the appliance must pass, whatever its hardware and its settings'
// transport (apart from appliance-lib.ts, which bench/image.ts runs outside vitest).
import { expect } from 'vitest';
import { FRAMES, type Observed } from './appliance-lib.js';

/** What every deployment must show, whatever its hardware and its settings' transport. */
export function expectCapturingAppliance(v: Observed, hostname: string): void {
  expect(v.failedUnits).toBe('none');
  expect(v.hostname).toBe(hostname);
  expect(v.status, `qe-packets status over SSH as admin never showed capture; last answer: ${v.lastStatus}`).toBeDefined();
  expect(v.status!.figures.interfaces).toHaveLength(1);
  expect(v.status!.figures.store.paths[0]).toMatch(/^\/srv\/qe-packets\/store/);
  // First boot provisioned the empty 8 GiB store disk.
  expect(v.status!.figures.store.capacityBytes).toBeGreaterThanOrEqual(6e9);
  // Every frame sent into the capture NIC is in the store, once, and the capture timestamps give
  // the order they were sent in. The file order itself may swap a VLAN-tagged frame with an
  // untagged one next to it: that is the guest kernel's delivery order to packet sockets when a
  // NAPI poll hands several frames over at once (docs/IMAGES.md), what tcpdump sees too.
  expect(v.capinfos).toMatch(/Number of packets:\s+\d+/);
  const sent = Array.from({ length: FRAMES }, (_, i) => i);
  expect([...v.seqs].sort((a, b) => a - b)).toEqual(sent);
  expect(v.seqsByTime).toEqual(sent);
  const displaced = v.seqs.filter((s, i) => s !== i).length;
  if (displaced) console.log(`${displaced} of ${FRAMES} frames stored out of their sending order, each next to its place`);
  expect(v.seqs.every((s, i) => Math.abs(s - i) <= 8)).toBe(true);
  // Prometheus can scrape it through the management NIC.
  expect(v.metrics).toMatch(/^qe_packets_\w+/m);
  // Administration by key and sudo; no password or keyboard-interactive login, no root login.
  expect(v.sudo).toBe(0);
  expect(v.sshdConfig).toMatch(/^permitrootlogin no$/m);
  expect(v.sshdConfig).toMatch(/^passwordauthentication no$/m);
  expect(v.sshdConfig).toMatch(/^kbdinteractiveauthentication no$/m);
  expect(v.passwordLogin).toMatch(/Permission denied \(publickey\)/);
  // The daemon reached READY (Type=notify) and the firewall admits only SSH, the metrics ports and the API.
  expect(v.service.split('\n').sort()).toEqual(['ActiveState=active', 'SubState=running', 'Type=notify']);
  expect(v.firewall).toMatch(/policy drop;/);
  const ports = (v.firewall.match(/dport \{[^}]*\}/g) ?? []).map((m) => (m.match(/\d+/g) ?? []).map(Number).sort((a, b) => a - b));
  expect(ports).toEqual([[22, 8443, 9100, 9464], [22, 8443, 9100, 9464]]); // IPv4 and IPv6
  expect(v.machineId).toMatch(/^[0-9a-f]{32}$/);
  expect(v.hostKey).toMatch(/^256 SHA256:/);
}
