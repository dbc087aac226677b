// The flags of `provision storage`, checked and turned into numbers. Every error names the flag,
// the value and the fix.
import { SIZE_HELP, parseSize } from '../config/units.js';

export type RaidLevel = 'none' | '0' | '10' | '6';
export const RAID_LEVELS: RaidLevel[] = ['none', '0', '10', '6'];

export interface Profile {
  /** As given: 10TB, 20TB, 40TB or custom:SIZE. */
  name: string;
  /** What storage.capacity will say: 10TB, or the SIZE of custom:SIZE. */
  capacityText: string;
  capacityBytes: number;
  defaultRaid: RaidLevel;
  raidReason: string;
}

// The profiles are the capture volume promised (storage.capacity), in SI terabytes (10^12 bytes):
// what disks are sold in. Every profile defaults to one filesystem per disk (see docs/PROVISIONING.md,
// "Provisioning storage"): the daemon already spreads files over several paths, choosing the one
// with the most room, so RAID adds no throughput; RAID 6 costs a read-modify-write on every
// partial stripe and a long degraded rebuild at full capture rate; and a lost disk loses only
// the oldest captures it held, while the other disks keep capturing.
const NONE_REASON =
  'one XFS per disk: the daemon spreads files over every path, so there is no RAID write penalty and no rebuild; a lost disk loses only its own files while the others keep capturing';
export const PROFILES: Record<string, Profile> = {
  '10TB': { name: '10TB', capacityText: '10TB', capacityBytes: 10e12, defaultRaid: 'none', raidReason: NONE_REASON },
  '20TB': { name: '20TB', capacityText: '20TB', capacityBytes: 20e12, defaultRaid: 'none', raidReason: NONE_REASON },
  '40TB': { name: '40TB', capacityText: '40TB', capacityBytes: 40e12, defaultRaid: 'none', raidReason: NONE_REASON },
};

export class ProvisionError extends Error {
  override name = 'ProvisionError';
  constructor(readonly reasons: string[]) {
    super(reasons.join('\n'));
  }
}

const PROFILE_FIX = 'use 10TB, 20TB, 40TB or custom:SIZE (e.g. custom:15TB), or max (all the disks hold)';

export function parseProfile(v: string | undefined): Profile {
  if (v === undefined) throw new ProvisionError([`--profile is missing; ${PROFILE_FIX}`]);
  const known = PROFILES[v.trim().toUpperCase()];
  if (known) return known;
  // All the chosen disks can hold: the capacity is known only once the disks are (see planStorage).
  if (v.trim().toLowerCase() === 'max') return { name: 'max', capacityText: 'max', capacityBytes: 0, defaultRaid: 'none', raidReason: NONE_REASON };
  const m = /^custom:(.+)$/i.exec(v.trim());
  if (!m) throw new ProvisionError([`--profile ${v}: not a profile; ${PROFILE_FIX}`]);
  const bytes = parseSize(m[1]!);
  if (bytes === undefined || bytes === 0) throw new ProvisionError([`--profile ${v}: ${m[1]} is not a size; write custom: and ${SIZE_HELP}`]);
  return { name: v.trim(), capacityText: m[1]!.replace(/\s+/g, ''), capacityBytes: bytes, defaultRaid: 'none', raidReason: NONE_REASON };
}

export function parseRaid(v: string | undefined): RaidLevel | undefined {
  if (v === undefined) return undefined;
  const t = v.trim().toLowerCase().replace(/^raid/, '');
  if ((RAID_LEVELS as string[]).includes(t)) return t as RaidLevel;
  throw new ProvisionError([`--raid ${v}: not a supported layout; use none (one filesystem per disk), 0, 10 or 6`]);
}

export function parseDisks(v: string | undefined): 'auto' | string[] {
  if (v === undefined || v.trim() === 'auto') return 'auto';
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((d) => !d.startsWith('/dev/'));
  if (!list.length || bad.length) throw new ProvisionError([`--disks ${v}: ${bad.length ? `${bad.join(', ')} is not a device path` : 'empty'}; write auto, or whole disks separated by commas, e.g. /dev/sdb,/dev/sdc`]);
  const dup = list.find((d, i) => list.indexOf(d) !== i);
  if (dup) throw new ProvisionError([`--disks ${v}: ${dup} is listed twice; list each disk once`]);
  return list;
}

export function parseFileSize(v: string | undefined): { text: string; bytes: number } {
  const text = (v ?? '1GiB').replace(/\s+/g, '');
  const bytes = parseSize(text);
  if (bytes === undefined || bytes < 1024 * 1024)
    throw new ProvisionError([`--file-size ${v}: ${bytes === undefined ? 'not a size' : 'below 1MiB'}; write ${SIZE_HELP} (1GiB suits most appliances)`]);
  return { text, bytes };
}

export function parseMode(v: string | undefined): 'circular' | 'linear' {
  if (v === undefined) return 'circular';
  if (v === 'circular' || v === 'linear') return v;
  throw new ProvisionError([`--mode ${v}: not a mode; use circular (delete the oldest files) or linear (stop when full)`]);
}

const RATE_UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/** "10Gbps", "2.5 Gbit/s", "800Mbps" → bits per second. */
export function parseRate(v: string | undefined): { text: string; bitsPerSecond: number } {
  const text = v ?? '10Gbps';
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:bps|bit\/s|b\/s)\s*$/.exec(text);
  const bps = m ? Number(m[1]) * RATE_UNITS[m[2]!.toLowerCase()]! : 0;
  if (!m || !(bps > 0)) throw new ProvisionError([`--rate ${text}: not a rate; write bits per second with a unit, e.g. 10Gbps, 2.5Gbps, 800Mbps`]);
  return { text: text.replace(/\s+/g, ''), bitsPerSecond: bps };
}
