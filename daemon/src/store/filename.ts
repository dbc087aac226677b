// Names of capture files: `<YYYYMMDDTHHMMSS.nnnnnnnnnZ>_<iface>[~N].pcap[.part]`.
// The fixed-width UTC start time first makes names sort by time; daemon/native/writer.c
// (format_base) writes the same. `~N` marks a name taken by another file, so the interface part
// holds no raw `~`: every byte of the interface name but letters, digits and . _ @ : + - is
// written as %XX (a Linux interface may be named eth0~1, or wlan-ü), and names round-trip.
import { basename, dirname, isAbsolute, resolve } from 'node:path';

export const PCAP_EXT = '.pcap';
export const PART_EXT = '.part';
const TS_LEN = 26;
const NAME_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{9})Z_([^~]+)(?:~(\d+))*\.pcap(\.part)?$/; // older versions could write ~N~M: the last counts
const PLAIN = /^[A-Za-z0-9._@:+-]$/;
const ASCII_UNESCAPED = /^[\x00-\x24\x26-\x7f]*$/;

export interface CaptureFileName {
  firstNs: bigint;
  iface: string;
  /** Set when the natural name was taken and a suffix was added. */
  collision?: number;
  /** True while the file is still being written (or was left by a crash). */
  partial: boolean;
}

export function formatTimestamp(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const iso = new Date(ms).toISOString(); // 2026-11-25T01:33:00.123Z
  const nanos = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}.${nanos}Z`;
}

/** The interface name as it appears in file names. */
export function encodeIface(iface: string): string {
  let out = '';
  for (const byte of Buffer.from(iface, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += PLAIN.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function decodeIface(s: string): string {
  // ASCII with nothing escaped (the names of nearly every store): the name's text is the interface's.
  if (ASCII_UNESCAPED.test(s)) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const hex = s[i] === '%' ? /^[0-9A-Fa-f]{2}/.exec(s.slice(i + 1, i + 3)) : null;
    if (hex) {
      bytes.push(parseInt(hex[0], 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

export function formatFileName(firstNs: bigint, iface: string, collision?: number): string {
  const suffix = collision ? `~${collision}` : '';
  return `${formatTimestamp(firstNs)}_${encodeIface(iface)}${suffix}${PCAP_EXT}`;
}

export function parseFileName(name: string): CaptureFileName | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, nanos, iface, coll, part] = m;
  const ms = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!);
  if (Number.isNaN(ms)) return undefined;
  return {
    firstNs: BigInt(ms) * 1_000_000n + BigInt(nanos!),
    iface: decodeIface(iface!),
    ...(coll ? { collision: Number(coll) } : {}),
    partial: part !== undefined,
  };
}

/**
 * Why `path` is not a file capture may write (undefined when it is): a closed or part capture file
 * directly inside one of the store paths. Paths a helper reports are checked with this before
 * anything acts on them: retention deletes what it is told is a capture.
 */
export function outsideStore(storePaths: readonly string[], path: string, opts: { partial: boolean }): string | undefined {
  if (!isAbsolute(path) || resolve(path) !== path) return 'not an absolute, normalised path';
  const name = basename(path);
  const parsed = parseFileName(name);
  if (!parsed || parsed.partial !== opts.partial) return `not named like a ${opts.partial ? 'part' : 'closed'} capture file (<time>_<iface>.pcap${opts.partial ? '.part' : ''})`;
  if (!storePaths.some((p) => resolve(p) === dirname(path))) return `not directly inside storage.paths (${storePaths.join(', ')})`;
  return undefined;
}

export { TS_LEN as TIMESTAMP_NAME_LENGTH };
