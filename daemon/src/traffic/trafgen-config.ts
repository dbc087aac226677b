// trafgen (netsniff-ng) cannot read pcap; it sends packets described in its own config language.
// We describe each frame as its literal bytes, taken from the same generator the pcap files use,
// so trafgen and tcpreplay offer identical frames. trafgen sends the packets of a config round
// robin, so a whole number of profile cycles keeps the IMIX proportions exact.

import { writeFile } from 'node:fs/promises';
import { WIRE_CYCLE, sizedFrames, type SizeProfile } from './sizes.js';
import { Prng } from './prng.js';

export interface TrafgenConfigOptions {
  profile: SizeProfile;
  seed?: number;
  /** Distinct frames in the config; rounded up to whole profile cycles. Default 48. */
  frames?: number;
}

export function trafgenConfig(o: TrafgenConfigOptions): string {
  const cycle = WIRE_CYCLE[o.profile].length;
  const n = Math.ceil((o.frames ?? 48) / cycle) * cycle;
  const seed = o.seed ?? 1;
  const lines = [
    `/* Qe-Packets generated: profile ${o.profile}, seed ${seed}, ${n} frames (pcap lengths, no FCS). */`,
  ];
  const frames = sizedFrames(o.profile, new Prng(seed));
  for (let i = 0; i < n; i++) {
    const f = frames.next().value as Buffer;
    const bytes: string[] = [];
    for (const byte of f) bytes.push(`0x${byte.toString(16).padStart(2, '0')}`);
    const rows: string[] = [];
    for (let k = 0; k < bytes.length; k += 16) rows.push(`  ${bytes.slice(k, k + 16).join(', ')}`);
    lines.push('{', rows.join(',\n'), '}');
  }
  return `${lines.join('\n')}\n`;
}

export async function writeTrafgenConfig(path: string, o: TrafgenConfigOptions): Promise<void> {
  await writeFile(path, trafgenConfig(o));
}
