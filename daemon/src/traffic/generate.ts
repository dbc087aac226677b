// Deterministic synthetic traffic for tests and benchmarks: frames of a named profile, written as a
// nanosecond pcap file (streamed, so multi-gigabyte files are fine) or as a trafgen config.
//
//   node build/daemon/src/traffic/generate.js --profile imix --count 1000000 -w imix.pcap
//   node build/daemon/src/traffic/generate.js --profile 64 --trafgen 64.cfg
//
// Frame lengths are pcap lengths, i.e. without the 4-byte FCS: see sizes.ts for each profile.

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mixedFrames } from './mixed.js';
import { PcapFileWriter } from './pcap-writer.js';
import { Prng } from './prng.js';
import { sizedFrames, type SizeProfile } from './sizes.js';
import { writeTrafgenConfig } from './trafgen-config.js';

export { trafgenConfig, writeTrafgenConfig } from './trafgen-config.js';
export { WIRE_CYCLE, pcapLength, type SizeProfile } from './sizes.js';

export const PROFILES = ['64', '1500', 'imix', 'mixed'] as const;
export type Profile = (typeof PROFILES)[number];

export function isProfile(s: string): s is Profile {
  return (PROFILES as readonly string[]).includes(s);
}

/** Endless frames of a profile; the same profile and seed always give the same bytes. */
export function frameStream(profile: Profile, seed = 1): Generator<Buffer> {
  const rng = new Prng(seed);
  return profile === 'mixed' ? mixedFrames(rng) : sizedFrames(profile, rng);
}

export function* generateFrames(profile: Profile, count: number, seed = 1): Generator<Buffer> {
  if (count <= 0) return;
  let n = 0;
  for (const f of frameStream(profile, seed)) {
    yield f;
    if (++n >= count) return;
  }
}

export interface PcapFileOptions {
  profile: Profile;
  /** Number of frames; unbounded when only maxBytes is given. */
  count?: number;
  /** Stop before the file would grow past this many bytes. */
  maxBytes?: number;
  seed?: number;
  /** Nanosecond timestamps (default) or microsecond. */
  nanos?: boolean;
  /** Timestamp of the first frame; default 2026-01-01T00:00:00Z. */
  startNs?: bigint;
  /** Gap between consecutive timestamps; default 1 µs. */
  intervalNs?: bigint;
  snaplen?: number;
}

export interface PcapFileResult {
  packets: number;
  /** File size in bytes. */
  bytes: number;
  /** Sum of frame lengths (what a capture must store). */
  frameBytes: number;
}

export async function writePcapFile(path: string, o: PcapFileOptions): Promise<PcapFileResult> {
  if (o.count === undefined && o.maxBytes === undefined) throw new RangeError('give count or maxBytes');
  const w = await PcapFileWriter.create(path, {
    ...(o.nanos !== undefined ? { nanos: o.nanos } : {}),
    ...(o.snaplen !== undefined ? { snaplen: o.snaplen } : {}),
  });
  const count = o.count ?? Number.POSITIVE_INFINITY;
  const maxBytes = o.maxBytes ?? Number.POSITIVE_INFINITY;
  const interval = o.intervalNs ?? 1000n;
  let ts = o.startNs ?? 1_767_225_600_000_000_000n;
  let frameBytes = 0;
  try {
    if (count > 0) {
      for (const f of frameStream(o.profile, o.seed ?? 1)) {
        if (w.bytes + 16 + f.length > maxBytes) break;
        const pending = w.add(ts, f);
        if (pending) await pending;
        frameBytes += f.length;
        ts += interval;
        if (w.packets >= count) break;
      }
    }
  } finally {
    await w.close();
  }
  return { packets: w.packets, bytes: w.bytes, frameBytes };
}

const USAGE = `usage: generate.js --profile 64|1500|imix|mixed [--seed N]
         (--count N | --size BYTES) -w FILE.pcap [--micro] [--interval-ns N] [--start-ns N]
       generate.js --profile 64|1500|imix [--seed N] [--frames N] --trafgen FILE.cfg`;

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      profile: { type: 'string' },
      count: { type: 'string' },
      size: { type: 'string' },
      seed: { type: 'string', default: '1' },
      write: { type: 'string', short: 'w' },
      trafgen: { type: 'string' },
      frames: { type: 'string' },
      micro: { type: 'boolean', default: false },
      'interval-ns': { type: 'string' },
      'start-ns': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const profile = values.profile ?? '';
  if (values.help || !isProfile(profile) || (!values.write && !values.trafgen)) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const seed = Number(values.seed);
  if (values.trafgen) {
    if (profile === 'mixed') {
      process.stderr.write('trafgen configs exist for 64, 1500 and imix only\n');
      return 2;
    }
    await writeTrafgenConfig(values.trafgen, {
      profile: profile as SizeProfile,
      seed,
      ...(values.frames ? { frames: Number(values.frames) } : {}),
    });
  }
  if (values.write) {
    if (!values.count && !values.size) {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    const r = await writePcapFile(values.write, {
      profile,
      seed,
      nanos: !values.micro,
      ...(values.count ? { count: Number(values.count) } : {}),
      ...(values.size ? { maxBytes: parseSize(values.size) } : {}),
      ...(values['interval-ns'] ? { intervalNs: BigInt(values['interval-ns']) } : {}),
      ...(values['start-ns'] ? { startNs: BigInt(values['start-ns']) } : {}),
    });
    process.stdout.write(`${JSON.stringify({ file: values.write, ...r })}\n`);
  }
  return 0;
}

/** "2GB", "512MiB", "1e9" → bytes (decimal units for kB/MB/GB, binary for KiB/MiB/GiB). */
export function parseSize(s: string): number {
  const m = /^\s*([\d.e+]+)\s*([kmgt]?i?b?)?\s*$/i.exec(s);
  if (!m) throw new RangeError(`bad size: ${s}`);
  const unit = (m[2] ?? '').toLowerCase().replace(/b$/, '');
  const powers: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30, ti: 2 ** 40 };
  const p = powers[unit];
  if (p === undefined) throw new RangeError(`bad size unit: ${s}`);
  return Math.floor(Number(m[1]) * p);
}

function invokedDirectly(): boolean {
  const arg = process.argv[1];
  if (!arg) return false;
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
