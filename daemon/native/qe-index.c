/* qe-index: builds the complete index (index-format.h, docs/INDEX.md) of pcap files already on
 * disk: imported captures, files from before the index existed, a changed index.fields, a .part
 * repaired after a crash. The daemon runs it in the background at low priority.
 *
 *   qe-index --fields LIST [--block-size N] [--status-fd N] [--progress-ms N] FILE...
 *
 * Each FILE (classic pcap, either byte order, micro- or nanosecond; a .part up to its last whole
 * record by pcap-format.h's rules) gets FILE.qeidx, written as FILE.qeidx.tmp and renamed.
 * JSON lines on the status fd (default 1):
 *   {"type":"progress","path","bytes","total"}   every --progress-ms (default 1000)
 *   {"type":"indexed","path","index","records","keys","index_bytes"}   per file indexed
 *   {"type":"error","path","message"}   per file that could not be indexed (no index is left)
 *   {"type":"done","files","failed"}   files: how many were given; failed: how many of them failed
 * Exit codes: 0 every file indexed, 2 usage, 4 some file failed (the others are indexed). */
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

#include "index-build.h"
#include "pcap-format.h"
#include "proto.h"

#define READ_CHUNK (1u << 20)

struct opts {
	uint32_t fields;
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
	fprintf(stderr, "usage: qe-index --fields LIST [--block-size N] [--status-fd N] [--progress-ms N] FILE...\n"
			"  LIST: comma-separated index.fields names (mac, vlan, ip, port, proto, tunnel)\n");
}

static void file_error(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void file_error(const char *path, const char *fmt, ...)
{
	char text[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
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

/* Feeds the whole, valid records of the file to a builder: 0, or -1 after reporting. */
static int index_records(const struct opts *o, const char *path, int fd, const struct qe_pcap_global *g, uint64_t size,
			 uint64_t mtime_ns, struct qe_idx_builder *b, uint64_t *end)
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
	int first = 1, rc = 0;
	for (;;) {
		if (have - at < QE_PCAP_RECORD_LEN + (size_t)limit && buf_off + have < size) {
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
			have += (size_t)n;
			uint64_t now = mono_ns();
			if (now >= next_progress) {
				progress(path, off, size);
				next_progress = now + o->progress_ns;
			}
		}
		if (have - at < QE_PCAP_RECORD_LEN)
			break;
		struct qe_pcap_record r;
		qe_pcap_record_decode(buf + at, g->swapped, &r);
		/* The span a record's time must lie in: a day around the file's first record and its last
		 * write, as a repair takes it (the first record stands for the time in the file's name). */
		if (first)
			qe_pcap_plausible_span(qe_pcap_record_ns(&r, g->nanos), mtime_ns, &lo, &hi);
		if (!qe_pcap_record_whole(&r, g, off, size, lo, hi) || have - at < QE_PCAP_RECORD_LEN + (size_t)r.caplen)
			break;
		first = 0;
		qe_idx_add(b, off, qe_pcap_record_ns(&r, g->nanos), buf + at + QE_PCAP_RECORD_LEN, r.caplen);
		if (qe_idx_full(b)) {
			file_error(path, "the index of this file needs more than %u MiB of memory (at byte %" PRIu64
					 "); it is left without one and is scanned", QE_IDX_BUILD_MEM_MAX >> 20, off);
			rc = -1;
			break;
		}
		at += QE_PCAP_RECORD_LEN + r.caplen;
		off += QE_PCAP_RECORD_LEN + r.caplen;
	}
	free(buf);
	*end = off;
	return rc;
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
	struct qe_idx_builder *b = NULL;
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
	if (!qe_idx_linktype_ok(g.linktype)) {
		file_error(path, "link type %" PRIu32 " is not indexed (Ethernet 1, raw IP 101/228/229, Linux cooked 113/276 are); the file is scanned",
			   g.linktype);
		goto out;
	}
	b = qe_idx_builder_new(o->fields, o->block_size, g.linktype);
	if (!b) {
		file_error(path, "out of memory for the index builder");
		goto out;
	}
	uint64_t end, mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
	if (index_records(o, path, fd, &g, (uint64_t)st.st_size, mtime, b, &end) < 0)
		goto out;
	if (end < (uint64_t)st.st_size)
		fprintf(stderr, "qe-index: %s: the last %" PRIu64 " bytes (from byte %" PRIu64 ") are not whole records; the index covers the file up to there\n",
			path, (uint64_t)st.st_size - end, end);
	char ipath[4096];
	if (snprintf(ipath, sizeof ipath, "%s%s", path, QE_IDX_EXT) >= (int)sizeof ipath) {
		file_error(path, "the index path would be too long");
		goto out;
	}
	int64_t bytes = qe_idx_write_complete(b, ipath, 1);
	if (bytes < 0) {
		file_error(path, "cannot write %s: %s", ipath, strerror(errno));
		goto out;
	}
	progress(path, (uint64_t)st.st_size, (uint64_t)st.st_size);
	struct msg m;
	msg_begin(&m, "indexed", NULL);
	msg_str(&m, "path", path);
	msg_str(&m, "index", ipath);
	msg_u64(&m, "records", qe_idx_records(b));
	msg_u64(&m, "keys", qe_idx_keys(b));
	msg_u64(&m, "index_bytes", (uint64_t)bytes);
	msg_send(&m);
	rc = 0;
out:
	qe_idx_builder_free(b);
	close(fd);
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
	uint64_t v, status_fd = STDOUT_FILENO;
	static const struct option longopts[] = {
		{ "fields", required_argument, 0, 'f' },      { "block-size", required_argument, 0, 'b' },
		{ "status-fd", required_argument, 0, 's' },   { "progress-ms", required_argument, 0, 'p' },
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
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (!fields) {
		fprintf(stderr, "qe-index: --fields is required\n");
		usage();
		return 2;
	}
	const char *bad;
	size_t bad_len;
	int64_t bits = qe_idx_parse_fields(fields, &bad, &bad_len);
	if (bits < 0) {
		fprintf(stderr, "qe-index: --fields: unknown field '%.*s' (known: mac, vlan, ip, port, proto, tunnel)\n",
			(int)bad_len, bad);
		return 2;
	}
	if (bits == 0) {
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
