// Messages between the daemon and qe-capture: the one definition (daemon/native/proto.c writes them).
// Helper → daemon: one JSON object per line on stdout. Daemon → helper: one command per line on stdin,
// at most QE_COMMAND_LINE_MAX bytes (daemon/native/proto.h, its one definition); a longer line is
// refused whole. The only long one is `set filter`, and the daemon has the helper check every
// filter first (`qe-capture --check-filter`, which also refuses one that would not fit the line).
// Both directions live here: the helper's messages as strict schemas (a field the daemon does not
// know is an error, so a new one cannot go unread), and every command line the daemon sends.
import { z } from 'zod';
import { wireNs as ns } from '../util/json.js';

const count = z.number().int().nonnegative();

export const helperMessage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('started'), iface: z.string(), linktype: count, snaplen: count, source: z.enum(['live', 'file']), pid: count }),
  z.strictObject({ type: z.literal('file_opened'), iface: z.string(), path: z.string(), first_ns: ns }),
  z.strictObject({ type: z.literal('file_closed'), iface: z.string(), path: z.string(), first_ns: ns, last_ns: ns, packets: count, bytes: count }),
  z.strictObject({
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
    /** Bytes written to index files (open files' segments, closed files' complete indexes); counted in appended_bytes too. */
    index_bytes: count,
    /** Bytes written to flow tables (open files' segments, closed files' complete tables); counted in appended_bytes too. */
    flow_bytes: count,
    store_full: z.boolean(),
  }),
  z.strictObject({ type: z.literal('error'), iface: z.string(), code: z.string(), message: z.string(), fatal: z.boolean() }),
  z.strictObject({ type: z.literal('done'), iface: z.string(), exit_code: count }),
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

/** A command line for qe-capture, built only by `helperCommand` (the type keeps hand-written ones out). */
export type HelperCommand = string & { readonly __helperCommand: unique symbol };

/**
 * Every command qe-capture reads on stdin (`apply_command` in qe-capture.c), in the form the docs
 * name it; the builders below fill in the argument, so the forms and the lines cannot differ.
 */
export const HELPER_COMMANDS = {
  fileSize: 'set file_size N',
  fileDurationMs: 'set file_duration_ms N',
  flushMs: 'set flush_ms N',
  filter: 'set filter EXPR',
  /** Linear retention: the cumulative appended_bytes the helper may reach; `none` lifts it. */
  quota: 'set quota N|none',
  stop: 'stop',
} as const;

const withArg = (form: string, arg: string | number) => `${form.slice(0, form.lastIndexOf(' '))} ${arg}` as HelperCommand;

export const helperCommand = {
  fileSize: (bytes: number) => withArg(HELPER_COMMANDS.fileSize, bytes),
  fileDurationMs: (ms: number) => withArg(HELPER_COMMANDS.fileDurationMs, ms),
  flushMs: (ms: number) => withArg(HELPER_COMMANDS.flushMs, ms),
  /** One line: a filter is a single expression, so line breaks in it are only whitespace. */
  filter: (expr: string) => withArg(HELPER_COMMANDS.filter, expr.replace(/[\r\n]+/g, ' ')),
  quota: (bytes: number | 'none') => withArg(HELPER_COMMANDS.quota, bytes),
  stop: () => HELPER_COMMANDS.stop as HelperCommand,
} as const;

export function settingCommands(s: HelperSettings): HelperCommand[] {
  return [helperCommand.fileSize(s.fileSizeBytes), helperCommand.fileDurationMs(s.fileDurationMs), helperCommand.flushMs(s.flushIntervalMs), helperCommand.filter(s.filter)];
}

/** Exit codes of qe-capture (see the comment at the top of qe-capture.c). */
export const HelperExit = { ok: 0, usage: 1, badSetting: 2, interfaceFailed: 3, permission: 4, badInput: 5, tooLong: 6 } as const;
