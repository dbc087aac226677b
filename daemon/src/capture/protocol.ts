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

/** One element's counters in the `elements` message. A field parser's answers and errors
 *  (field-parsers.c) are a pair of counts here; the state engine's windows take every count. */
export const elementCounters = z.strictObject({
  packets: count,
  bytes: count,
  /** Timestamp of the element's last packet (0: none yet). */
  last_ns: ns,
  /** TCP flows of the element whose first packet seen was a SYN without ACK. */
  tcp_attempts: count,
  /** Attempts answered by a SYN-ACK from the other end. */
  tcp_answered: count,
  /** Attempts with neither SYN-ACK nor RST from the other end within the SYN timeout; counted when it expires. */
  tcp_unanswered: count,
  /** Attempts that saw an RST from either end (refused connections included). */
  tcp_reset: count,
  /** Handshake round trips (SYN to SYN-ACK): [bucket, count] pairs of the buckets not empty (element-format.h). */
  rtt_hist: z.array(z.tuple([count, count])),
  /** DNS responses (QR set) of the element, and those with RCODE != 0. */
  dns_answers: count,
  dns_errors: count,
  /** HTTP/1.x status lines from the server side, and those 5xx. */
  http_responses: count,
  http_errors: count,
  /** Element packets matching each of its `custom` filters, in the file's order. */
  custom: z.array(count),
});

export const helperMessage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('started'), iface: z.string(), linktype: count, snaplen: count, source: z.enum(['live', 'file']), pid: count }),
  z.strictObject({ type: z.literal('file_opened'), iface: z.string(), path: z.string(), first_ns: ns }),
  z.strictObject({
    type: z.literal('file_closed'),
    iface: z.string(),
    path: z.string(),
    /** The first and last records' times. */
    first_ns: ns,
    last_ns: ns,
    packets: count,
    /** The file's size. */
    bytes: count,
    /** The earliest and latest record and whether they are in time order: what the catalog would read the file for. Absent when a write failed in the file (its records are then uncertain). */
    min_ns: ns.optional(),
    max_ns: ns.optional(),
    sorted: z.boolean().optional(),
  }),
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
  z.strictObject({
    type: z.literal('elements'),
    iface: z.string(),
    /** Bumped by every `set elements`: counters restart from 0 with a new generation. */
    generation: count,
    /** One entry per element of the elements file, in its order. Counters are cumulative since the
     *  generation began (the daemon takes differences, so a lost line loses nothing). */
    elements: z.array(elementCounters),
  }),
  z.strictObject({ type: z.literal('error'), iface: z.string(), code: z.string(), message: z.string(), fatal: z.boolean() }),
  z.strictObject({ type: z.literal('done'), iface: z.string(), exit_code: count }),
]);

export type HelperMessage = z.output<typeof helperMessage>;
export type StatsMessage = Extract<HelperMessage, { type: 'stats' }>;
export type FileClosedMessage = Extract<HelperMessage, { type: 'file_closed' }>;
export type ElementsMessage = Extract<HelperMessage, { type: 'elements' }>;
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
  /** Re-read the elements file (its path; the format is in daemon/native/element-format.h). */
  elements: 'set elements PATH',
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
  elements: (path: string) => withArg(HELPER_COMMANDS.elements, path),
  stop: () => HELPER_COMMANDS.stop as HelperCommand,
} as const;

export function settingCommands(s: HelperSettings): HelperCommand[] {
  return [helperCommand.fileSize(s.fileSizeBytes), helperCommand.fileDurationMs(s.fileDurationMs), helperCommand.flushMs(s.flushIntervalMs), helperCommand.filter(s.filter)];
}

/** Exit codes of qe-capture (see the comment at the top of qe-capture.c). */
export const HelperExit = { ok: 0, usage: 1, badSetting: 2, interfaceFailed: 3, permission: 4, badInput: 5, tooLong: 6 } as const;
