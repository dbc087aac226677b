/* Messages from the capture helper to the daemon: one JSON object per line on stdout.
 * The one definition of the message shapes is daemon/src/capture/protocol.ts; keep both in step. */
#ifndef QE_PROTO_H
#define QE_PROTO_H
#include <stddef.h>
#include <stdint.h>

/* Commands from the daemon to the helper, one a line on stdin: the longest line the helper takes,
 * its newline included. A longer line is refused whole (up to its newline), never run in pieces.
 * The daemon learns the limit from the helper (`qe-capture --check-filter` refuses a filter that
 * would not fit `set filter EXPR`), so this is its one definition. */
#define QE_COMMAND_LINE_MAX 16384
#define QE_SET_FILTER "set filter "
#define QE_FILTER_MAX (QE_COMMAND_LINE_MAX - (sizeof QE_SET_FILTER - 1) - 1)

/* A line under construction; fields are appended in order, then sent whole. */
struct msg {
	char buf[8192];
	size_t len;
};

void msg_begin(struct msg *m, const char *type, const char *iface);
void msg_str(struct msg *m, const char *key, const char *val);
void msg_u64(struct msg *m, const char *key, uint64_t val);
/* Nanosecond timestamps do not fit a JavaScript number: they travel as decimal strings. */
void msg_ns(struct msg *m, const char *key, uint64_t ns);
void msg_bool(struct msg *m, const char *key, int val);
/* Writes the line with one write(); safe to call from several threads. */
void msg_send(struct msg *m);

/* A whole line built elsewhere (a message longer than struct msg holds: `elements`), newline
 * included, with under the lock the other messages take, never interleaved with them. */
void msg_send_line(const char *line, size_t len);

/* Shorthand for an error message. */
void send_error(const char *iface, const char *code, int fatal, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#endif
