// Exit codes of `qe-packets extract`, the same as qe-extract's (daemon/native/qe-extract.c), so
// the command can pass the helper's on unchanged. Documented in docs/EXTRACT.md.
export const ExitCode = {
  ok: 0,
  internal: 1,
  /** Bad flag, time, range, filter or config. */
  usage: 2,
  /** Nothing in the range: a valid empty pcap was written. */
  empty: 3,
  /** An input is unreadable, not a pcap, or of another link type. */
  input: 4,
  output: 5,
  interrupted: 130,
  /** The reader of `-w -` went away (Wireshark closed). */
  pipeClosed: 141,
} as const;
