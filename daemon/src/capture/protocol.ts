// Messages between the daemon and qe-capture: the one definition (daemon/native/proto.c writes them).
// Helper → daemon: one JSON object per line on stdout. Daemon → helper: one command per line on stdin,
// at most QE_COMMAND_LINE_MAX bytes (daemon/native/proto.h, its one definition); a longer line is
// refused whole. The only long one is `set filter`, and the daemon has the helper check every
// filter first (`qe-capture --check-filter`, which also refuses one that would not fit the line).
import { z } from 'zod';

const ns = z.string().regex(/^\d+$/).transform((s) => BigInt(s));
const count = z.number().int().nonnegative();

export const helperMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started'), iface: z.string(), linktype: count, snaplen: count, source: z.enum(['live', 'file']), pid: count }),
  z.object({ type: z.literal('file_opened'), iface: z.string(), path: z.string(), first_ns: ns }),
  z.object({ type: z.literal('file_closed'), iface: z.string(), path: z.string(), first_ns: ns, last_ns: ns, packets: count, bytes: count }),
  z.object({
    type: z.literal('stats'),
    iface: z.string(),
    received: count,
    written: count,
    written_bytes: count,
    filtered: count,
    kernel_drops: count,
    if_drops: count,
    writer_drops: count,
    write_errors: count,
    store_full_drops: count,
    cpu_us: count,
    /** Bytes put into files since the helper started (the linear-retention quota counts these). */
    appended_bytes: count,
    /** Size of the open file, its unflushed buffer included (0 when none is open). */
    open_file_bytes: count,
    /** The part of it still in the helper's buffer, not yet in the file. */
    buffered_bytes: count,
    store_full: z.boolean(),
  }),
  z.object({ type: z.literal('error'), iface: z.string(), code: z.string(), message: z.string(), fatal: z.boolean() }),
  z.object({ type: z.literal('done'), iface: z.string(), exit_code: count }),
]);

export type HelperMessage = z.output<typeof helperMessage>;
export type StatsMessage = Extract<HelperMessage, { type: 'stats' }>;
export type FileClosedMessage = Extract<HelperMessage, { type: 'file_closed' }>;
export type ErrorMessage = Extract<HelperMessage, { type: 'error' }>;

export function parseHelperLine(line: string): HelperMessage {
  return helperMessage.parse(JSON.parse(line));
}

/** Settings a running helper can take without stopping capture. */
export interface HelperSettings {
  fileSizeBytes: number;
  fileDurationMs: number;
  flushIntervalMs: number;
  filter: string;
}

export function settingCommands(s: HelperSettings): string {
  return [
    `set file_size ${s.fileSizeBytes}`,
    `set file_duration_ms ${s.fileDurationMs}`,
    `set flush_ms ${s.flushIntervalMs}`,
    `set filter ${s.filter.replace(/[\r\n]+/g, ' ')}`,
  ].join('\n') + '\n';
}

/** Exit codes of qe-capture (see the comment at the top of qe-capture.c). */
export const HelperExit = { ok: 0, usage: 1, badSetting: 2, interfaceFailed: 3, permission: 4, badInput: 5, tooLong: 6 } as const;
