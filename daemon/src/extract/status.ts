// qe-extract's status lines (fd 3, one JSON object each; written by status_counts, warn, die and
// the end of main in daemon/native/qe-extract.c): the one definition the daemon reads them with.
// Strict, so a field added on one side only fails a test instead of going unread.
import { z, ZodError } from 'zod';

const count = z.number().int().nonnegative();

const counts = {
  packets: count,
  bytes: count,
  records_read: count,
  out_of_range: count,
  filtered_out: count,
  bytes_read: count,
  files_opened: count,
  files_missing: count,
  partial_tails: count,
  damaged_files: count,
  /** read(2) calls on the inputs: from a cold cache, each a possible disk trip. */
  read_calls: count,
};

export const extractCounts = z.strictObject(counts);
/** qe-extract's counters, as its status lines carry them. */
export type ExtractCounts = z.output<typeof extractCounts>;

export const extractStatus = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('progress'), ...counts }),
  z.strictObject({ type: z.literal('warning'), message: z.string() }),
  z.strictObject({ type: z.literal('error'), exit: count, message: z.string(), ...counts }),
  z.strictObject({ type: z.literal('done'), exit: count, linktype: count, snaplen: count, ...counts }),
]);
export type ExtractStatus = z.output<typeof extractStatus>;

export function parseExtractStatus(line: string): ExtractStatus {
  return extractStatus.parse(JSON.parse(line));
}

/** The counters of a progress, done or error line, without the line's own fields. */
export function countsOf(s: ExtractStatus & ExtractCounts): ExtractCounts {
  return extractCounts.parse(Object.fromEntries(Object.keys(counts).map((k) => [k, s[k as keyof ExtractCounts]])));
}

/** One line for a status line that is not JSON or not the schema: which field, and why. */
export function whyUnreadable(e: unknown): string {
  if (e instanceof ZodError) return e.issues.map((i) => `${i.path.join('.') || 'line'}: ${i.message}`).join('; ');
  return e instanceof Error ? e.message : String(e);
}
