/* qe-index: builds the complete index (index-format.h, docs/INDEX.md) of pcap files already on
 * disk: imported captures, files from before the index existed, a changed index.fields, a .part
 * repaired after a crash. The daemon runs it in the background at low priority.
 *
 *   qe-index --fields LIST [--flows] [--block-size N] [--status-fd N] [--progress-ms N] FILE...
 *   qe-index --flows-stdout [--from-ns N] [--to-ns N] < PCAP > TABLE
 *
 * Each FILE (classic pcap, either byte order, micro- or nanosecond; a .part up to its last whole
 * record by pcap-format.h's rules) gets FILE.qeidx, written as FILE.qeidx.tmp and renamed, and with
 * --flows its flow table FILE.qeflow (flow-format.h) the same way; `--fields ''` with --flows
 * builds the flow tables only. JSON lines on the status fd (default 1):
 *   {"type":"progress","path","bytes","total"}   every --progress-ms (default 1000)
 *   {"type":"indexed","path","records"[,"index","keys","index_bytes"][,"flows","flow_bytes"]}
 *                                                per file done (the index's keys with --fields,
 *                                                the flow table's with --flows)
 *   {"type":"error","path","message"}   per file that failed (neither table is left)
 *   {"type":"done","files","failed"}   files: how many were given; failed: how many of them failed
 * Exit codes: 0 every file indexed, 2 usage, 4 some file failed (the others are indexed).
 *
 * --flows-stdout reads one pcap stream (qe-extract's output, any pcap) on stdin and writes its one
 * complete flow table to stdout, counting the records with from <= time < to only (its segment
 * covers the whole stream, [24, end), and its packets are those counted). A stream is
 * taken whole or not at all: a record that is not valid (pcap-format.h) or cut short exits 2 with
 * its offset and what is wrong on stderr, and nothing on stdout. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flow-build.h"
#include "index-build.h"
#include "packet-fields.h"
#include "pcap-format.h"
#include "table-feed.h"
#include "proto.h"

#define READ_CHUNK (1u << 20)

struct opts {
	uint32_t fields;
	int flows;
	uint32_t block_size;
	uint64_t progress_ns;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr, "usage: qe-index --fields LIST [--flows] [--block-size N] [--status-fd N] [--progress-ms N] FILE...\n"
			"       qe-index --flows-stdout [--from-ns N] [--to-ns N] < PCAP > FLOW-TABLE\n"
			"  LIST: comma-separated index.fields names (mac, vlan, ip, port, proto, tunnel); '' with --flows: flows only\n");
}

/* --flows-stdout: stdout is the table, so errors are plain lines on stderr. */
static int errors_to_stderr;

static void file_error(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void file_error(const char *path, const char *fmt, ...)
{
	char text[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (errors_to_stderr) {
		fprintf(stderr, "qe-index: %s: %s\n", path, text);
		return;
	}
	struct msg m;
	msg_begin(&m, "error", NULL);
	msg_str(&m, "path", path);
	msg_str(&m, "message", text);
	msg_send(&m);
}

static void progress(const char *path, uint64_t bytes, uint64_t total)
{
	struct msg m;
	msg_begin(&m, "progress", NULL);
	msg_str(&m, "path", path);
	msg_u64(&m, "bytes", bytes);
	msg_u64(&m, "total", total);
	msg_send(&m);
}

/* Reads exactly `len` bytes unless the file ends first; the bytes read, or -1. */
static ssize_t read_full(int fd, unsigned char *p, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* The tables one pass over a file builds. */
struct tables {
	struct qe_idx_builder *idx;
	struct qe_flow_builder *flows;
	uint32_t linktype;
	uint64_t from_ns, to_ns; /* records outside [from, to) are not counted */
};

static int tables_full(const struct tables *t)
{
	return (t->idx && qe_idx_full(t->idx)) || (t->flows && qe_flow_full(t->flows));
}

/* Feeds the whole, valid records of a file to the tables: 0, or -1 after reporting. `stream`: fd
 * is a pipe of unknown length whose every byte must be a valid record (any time is plausible);
 * else the file's records end at the first one a repair would cut (pcap-format.h). */
static int walk_records(const struct opts *o, const char *path, int fd, const struct qe_pcap_global *g, uint64_t size,
			uint64_t mtime_ns, int stream, struct tables *t, uint64_t *end)
{
	uint32_t limit = qe_pcap_caplen_limit(g->snaplen);
	size_t cap = READ_CHUNK + limit + QE_PCAP_RECORD_LEN;
	unsigned char *buf = malloc(cap);
	if (!buf) {
		file_error(path, "out of memory for a read buffer of %zu bytes", cap);
		return -1;
	}
	uint64_t off = QE_PCAP_GLOBAL_LEN, buf_off = QE_PCAP_GLOBAL_LEN; /* file offsets of the next record, of buf[0] */
	size_t have = 0, at = 0;
	uint64_t lo = 0, hi = QE_PCAP_MAX_TS_NS, next_progress = mono_ns() + o->progress_ns;
	int first = 1, rc = 0, eof = 0;
	/* Records reach the tables through a pipeline that reads them from buf: flushed before buf moves. */
	struct qe_tables_batch batch = { .t = { .idx = t->idx, .flows = t->flows, .linktype = t->linktype } };
	for (;;) {
		if (have - at < QE_PCAP_RECORD_LEN + (size_t)limit && !eof && buf_off + have < size) {
			qe_tables_flush(&batch);
			memmove(buf, buf + at, have - at);
			buf_off += at;
			have -= at;
			at = 0;
			ssize_t n = read_full(fd, buf + have, cap - have);
			if (n < 0) {
				file_error(path, "read failed at byte %" PRIu64 ": %s", buf_off + have, strerror(errno));
				rc = -1;
				break;
			}
			eof = (size_t)n < cap - have;
			have += (size_t)n;
			uint64_t now = mono_ns();
			if (!stream && now >= next_progress) {
				progress(path, off, size);
				next_progress = now + o->progress_ns;
			}
		}
		if (have - at < QE_PCAP_RECORD_LEN) {
			if (stream && have > at) {
				file_error(path, "the stream ends inside a record header at byte %" PRIu64 " (%zu of %d bytes)", off,
					   have - at, QE_PCAP_RECORD_LEN);
				rc = -1;
			}
			break;
		}
		struct qe_pcap_record r;
		qe_pcap_record_decode(buf + at, g->swapped, &r);
		/* The span a record's time must lie in: a day around the file's first record and its last
		 * write, as a repair takes it (the first record stands for the time in the file's name). */
		if (first && !stream)
			qe_pcap_plausible_span(qe_pcap_record_ns(&r, g->nanos), mtime_ns, &lo, &hi);
		if (stream) {
			const char *why = qe_pcap_record_problem(&r, g->nanos);
			if (!why && r.caplen > limit)
				why = "a captured length beyond the largest plausible record";
			if (why) {
				file_error(path, "the record at byte %" PRIu64 " has %s (caplen %" PRIu32 ", original length %" PRIu32 ")", off,
					   why, r.caplen, r.origlen);
				rc = -1;
				break;
			}
			if (have - at < QE_PCAP_RECORD_LEN + (size_t)r.caplen) {
				file_error(path, "the stream ends inside the record at byte %" PRIu64 " (%zu of its %" PRIu32 " bytes of data)",
					   off, have - at - QE_PCAP_RECORD_LEN, r.caplen);
				rc = -1;
				break;
			}
		} else if (!qe_pcap_record_whole(&r, g, off, size, lo, hi) || have - at < QE_PCAP_RECORD_LEN + (size_t)r.caplen) {
			break;
		}
		first = 0;
		uint64_t ts_ns = qe_pcap_record_ns(&r, g->nanos);
		if (ts_ns >= t->from_ns && ts_ns < t->to_ns)
			qe_tables_batch_add(&batch, off, ts_ns, r.caplen, r.origlen, buf + at + QE_PCAP_RECORD_LEN);
		if (tables_full(t)) {
			if (t->idx && qe_idx_full(t->idx))
				file_error(path, "the index of this file needs more than %u MiB of memory (at byte %" PRIu64
						 "); it is left without one and is scanned", QE_IDX_BUILD_MEM_MAX >> 20, off);
			else
				file_error(path, "this file reaches %u flows (at byte %" PRIu64 "), all a flow table holds; it is left without one and its flows are counted from its packets",
					   QE_FLOW_BUILD_MAX_FLOWS, off);
			rc = -1;
			break;
		}
		at += QE_PCAP_RECORD_LEN + r.caplen;
		off += QE_PCAP_RECORD_LEN + r.caplen;
	}
	qe_tables_flush(&batch);
	free(buf);
	*end = off;
	return rc;
}

static void tables_free(struct tables *t)
{
	qe_idx_builder_free(t->idx);
	qe_flow_builder_free(t->flows);
	t->idx = NULL;
	t->flows = NULL;
}

static int index_file(const struct opts *o, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		file_error(path, "cannot open: %s", strerror(errno));
		return -1;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	struct stat st;
	unsigned char gh[QE_PCAP_GLOBAL_LEN];
	struct qe_pcap_global g;
	int rc = -1;
	struct tables t = { .from_ns = 0, .to_ns = UINT64_MAX };
	char ipath[4096], fpath[4096];
	if (fstat(fd, &st) != 0) {
		file_error(path, "cannot stat: %s", strerror(errno));
		goto out;
	}
	ssize_t n = read_full(fd, gh, sizeof gh);
	if (n != QE_PCAP_GLOBAL_LEN || !qe_pcap_global_decode(gh, &g)) {
		file_error(path, n < 0 ? "cannot read its header" : "not a classic pcap file (its first %d bytes are not a pcap header)",
			   QE_PCAP_GLOBAL_LEN);
		goto out;
	}
	t.linktype = g.linktype;
	if (o->fields && !qe_idx_linktype_ok(g.linktype)) {
		file_error(path, "link type %" PRIu32 " is not indexed (Ethernet 1, raw IP 101/228/229, Linux cooked 113/276 are); the file is scanned",
			   g.linktype);
		goto out;
	}
	if (snprintf(ipath, sizeof ipath, "%s%s", path, QE_IDX_EXT) >= (int)sizeof ipath ||
	    snprintf(fpath, sizeof fpath, "%s%s", path, QE_FLOW_EXT) >= (int)sizeof fpath) {
		file_error(path, "the index path would be too long");
		goto out;
	}
	if (o->fields && !(t.idx = qe_idx_builder_new(o->fields, o->block_size, g.linktype))) {
		file_error(path, "out of memory for the index builder");
		goto out;
	}
	if (o->flows && !(t.flows = qe_flow_builder_new(g.linktype))) {
		file_error(path, "out of memory for the flow builder");
		goto out;
	}
	uint64_t end, mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
	if (walk_records(o, path, fd, &g, (uint64_t)st.st_size, mtime, 0, &t, &end) < 0)
		goto out;
	if (end < (uint64_t)st.st_size)
		fprintf(stderr, "qe-index: %s: the last %" PRIu64 " bytes (from byte %" PRIu64 ") are not whole records; the index covers the file up to there\n",
			path, (uint64_t)st.st_size - end, end);
	int64_t ibytes = 0, fbytes = 0;
	if (t.idx && (ibytes = qe_idx_write_complete(t.idx, ipath, 1)) < 0) {
		file_error(path, "cannot write %s: %s", ipath, strerror(errno));
		goto out;
	}
	if (t.flows && (fbytes = qe_flow_write_complete(t.flows, fpath, 1)) < 0) {
		file_error(path, "cannot write %s: %s", fpath, strerror(errno));
		if (t.idx)
			unlink(ipath); /* a file done is done whole: its index is built again with the flows */
		goto out;
	}
	progress(path, (uint64_t)st.st_size, (uint64_t)st.st_size);
	struct msg m;
	msg_begin(&m, "indexed", NULL);
	msg_str(&m, "path", path);
	msg_u64(&m, "records", t.idx ? qe_idx_records(t.idx) : qe_flow_packets(t.flows));
	if (t.idx) {
		msg_str(&m, "index", ipath);
		msg_u64(&m, "keys", qe_idx_keys(t.idx));
		msg_u64(&m, "index_bytes", (uint64_t)ibytes);
	}
	if (t.flows) {
		msg_u64(&m, "flows", qe_flow_count(t.flows));
		msg_u64(&m, "flow_bytes", (uint64_t)fbytes);
	}
	msg_send(&m);
	rc = 0;
out:
	tables_free(&t);
	close(fd);
	return rc;
}

/* --flows-stdout: one stream in, one complete flow table out; 0, or 2 after saying why. */
static int flows_stdout(const struct opts *o, uint64_t from_ns, uint64_t to_ns)
{
	unsigned char gh[QE_PCAP_GLOBAL_LEN];
	struct qe_pcap_global g;
	ssize_t n = read_full(STDIN_FILENO, gh, sizeof gh);
	if (n < 0) {
		fprintf(stderr, "qe-index: cannot read the pcap stream on stdin: %s\n", strerror(errno));
		return 2;
	}
	if (n != QE_PCAP_GLOBAL_LEN || !qe_pcap_global_decode(gh, &g)) {
		fprintf(stderr, "qe-index: stdin: not a classic pcap stream (%s at byte 0)\n",
			n < QE_PCAP_GLOBAL_LEN ? "it ends inside the 24-byte pcap header" : "no pcap magic number");
		return 2;
	}
	struct tables t = { .linktype = g.linktype, .from_ns = from_ns, .to_ns = to_ns };
	if (!(t.flows = qe_flow_builder_new(g.linktype))) {
		fprintf(stderr, "qe-index: out of memory for the flow builder\n");
		return 2;
	}
	uint64_t end;
	struct qe_out out = { 0 };
	int rc = 2;
	errors_to_stderr = 1;
	if (walk_records(o, "stdin", STDIN_FILENO, &g, UINT64_MAX, 0, 1, &t, &end) < 0)
		goto done;
	/* The table is the stream's, whatever the range kept: a reader checks that it starts where
	 * the records do. */
	qe_flow_set_span(t.flows, QE_PCAP_GLOBAL_LEN, end);
	if (qe_flow_complete(t.flows, &out) < 0) {
		fprintf(stderr, "qe-index: out of memory for the flow table\n");
		goto done;
	}
	for (size_t done = 0; done < out.len;) {
		ssize_t w = write(STDOUT_FILENO, out.p + done, out.len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "qe-index: cannot write the flow table to stdout: %s\n", w < 0 ? strerror(errno) : "short write");
			goto done;
		}
		done += (size_t)w;
	}
	rc = 0;
done:
	qe_out_free(&out);
	tables_free(&t);
	return rc;
}

static int parse_num(const char *name, const char *val, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(val, &end, 10);
	if (errno || *end || end == val || val[0] == '-') {
		fprintf(stderr, "qe-index: %s needs a whole number, got '%s'\n", name, val);
		return -1;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .block_size = QE_IDX_BLOCK_SIZE_DEFAULT, .progress_ns = 1000000000u };
	const char *fields = NULL;
	uint64_t v, status_fd = STDOUT_FILENO, from_ns = 0, to_ns = UINT64_MAX;
	int to_stdout = 0, range = 0;
	static const struct option longopts[] = {
		{ "fields", required_argument, 0, 'f' },      { "block-size", required_argument, 0, 'b' },
		{ "status-fd", required_argument, 0, 's' },   { "progress-ms", required_argument, 0, 'p' },
		{ "flows", no_argument, 0, 'F' },	      { "flows-stdout", no_argument, 0, 'S' },
		{ "from-ns", required_argument, 0, 'A' },     { "to-ns", required_argument, 0, 'B' },
		{ "help", no_argument, 0, 'h' },	      { 0, 0, 0, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f': fields = optarg; break;
		case 'b':
			if (parse_num("--block-size", optarg, &v) < 0)
				return 2;
			if (!qe_idx_block_size_ok(v)) {
				fprintf(stderr, "qe-index: --block-size %s is not a power of two from %u to %u\n", optarg,
					QE_IDX_BLOCK_SIZE_MIN, QE_IDX_BLOCK_SIZE_MAX);
				return 2;
			}
			o.block_size = (uint32_t)v;
			break;
		case 's':
			if (parse_num("--status-fd", optarg, &status_fd) < 0)
				return 2;
			break;
		case 'p':
			if (parse_num("--progress-ms", optarg, &v) < 0 || v == 0) {
				if (v == 0)
					fprintf(stderr, "qe-index: --progress-ms must be at least 1\n");
				return 2;
			}
			o.progress_ns = v * 1000000u;
			break;
		case 'F': o.flows = 1; break;
		case 'S': to_stdout = 1; break;
		case 'A':
			if (parse_num("--from-ns", optarg, &from_ns) < 0)
				return 2;
			range = 1;
			break;
		case 'B':
			if (parse_num("--to-ns", optarg, &to_ns) < 0)
				return 2;
			range = 1;
			break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (to_stdout) {
		if (fields || o.flows || optind < argc) {
			fprintf(stderr, "qe-index: --flows-stdout reads one pcap stream on stdin and takes no --fields, --flows or FILE\n");
			return 2;
		}
		if (from_ns >= to_ns) {
			fprintf(stderr, "qe-index: --from-ns %" PRIu64 " is not before --to-ns %" PRIu64 ": the range is empty\n", from_ns, to_ns);
			return 2;
		}
		return flows_stdout(&o, from_ns, to_ns);
	}
	if (range) {
		fprintf(stderr, "qe-index: --from-ns and --to-ns go with --flows-stdout only\n");
		return 2;
	}
	if (!fields && !o.flows) {
		fprintf(stderr, "qe-index: --fields is required (or --flows)\n");
		usage();
		return 2;
	}
	const char *bad;
	size_t bad_len;
	int64_t bits = qe_idx_parse_fields(fields ? fields : "", &bad, &bad_len);
	if (bits < 0) {
		fprintf(stderr, "qe-index: --fields: unknown field '%.*s' (known: mac, vlan, ip, port, proto, tunnel)\n",
			(int)bad_len, bad);
		return 2;
	}
	if (bits == 0 && !o.flows) {
		fprintf(stderr, "qe-index: --fields is empty: there is nothing to index\n");
		return 2;
	}
	o.fields = (uint32_t)bits;
	if (optind >= argc) {
		fprintf(stderr, "qe-index: no FILE given\n");
		usage();
		return 2;
	}
	/* The messages go to stdout (proto.c): the status fd takes its place. */
	if (status_fd != STDOUT_FILENO && (status_fd > 1024 || dup2((int)status_fd, STDOUT_FILENO) < 0)) {
		fprintf(stderr, "qe-index: --status-fd %" PRIu64 " is not an open file descriptor\n", status_fd);
		return 2;
	}
	uint64_t failed = 0;
	for (int i = optind; i < argc; i++)
		if (index_file(&o, argv[i]) < 0)
			failed++;
	struct msg m;
	msg_begin(&m, "done", NULL);
	msg_u64(&m, "files", (uint64_t)(argc - optind));
	msg_u64(&m, "failed", failed);
	msg_send(&m);
	return failed ? 4 : 0;
}
