/* The index reader of index-read.h, and the parser of index-plan.h's plan text. */
#include "index-read.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "index-plan.h"
#include "pcap-format.h"

/* The directory is read by aligned pages of this size (the page cache's unit: a cold read costs
 * one disk trip whether it is 40 bytes or 4096), and kept: the next lookup of a file often falls
 * in a page already read. */
#define DIR_PAGE 4096u
/* Block table groups this close (bytes between them) are read in one pread: from a cold cache a
 * disk trip costs about as much as reading 16 KiB more. */
#define GROUP_GAP 16384u
/* The first read of an index: its header, the first segment's header and, for a complete index of
 * up to ~95,000 keys, the whole fence, in one disk trip (a cold read of 64 bytes at offset 0 makes
 * the kernel read 16 KiB ahead anyway). */
#define HEAD_READ 16384u

struct qe_ir_page {
	uint64_t n;
	unsigned char *b;
	size_t len;
};

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fputs("qe-extract: out of memory\n", stderr);
		abort();
	}
	return q;
}

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint32_t crc(const unsigned char *p, uint64_t n)
{
	uLong c = crc32(0, Z_NULL, 0);
	while (n > 0) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
		c = crc32(c, p, k);
		p += k;
		n -= k;
	}
	return (uint32_t)c;
}

static __attribute__((format(printf, 3, 4))) void say(char *note, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(note, len, fmt, ap);
	va_end(ap);
}

#define SCANNED "the index is not used, its pcap file is scanned (qe-packets index --rebuild rebuilds it)"

/* ---- plans -------------------------------------------------------------------------------- */

struct parser {
	const char *s;
	struct qe_plan *p;
	char *err;
	size_t errlen;
	uint32_t kids_cap, nodes_cap;
};

/* The next token (up to a space or the end) as [*tok, *tok + *len); 0 at the end. */
static int token(struct parser *ps, const char **tok, size_t *len)
{
	if (*ps->s == ' ')
		ps->s++;
	*tok = ps->s;
	while (*ps->s && *ps->s != ' ')
		ps->s++;
	*len = (size_t)(ps->s - *tok);
	return *len > 0;
}

static int is(const char *tok, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(tok, word, len) == 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* A sort key: the type byte, then 1..QE_IDX_VALUE_LEN bytes of hex, zero-padded. */
static int sort_key(struct parser *ps, uint8_t type, uint8_t *key, size_t *bytes)
{
	const char *t;
	size_t len;
	if (!token(ps, &t, &len) || len % 2 || len / 2 > QE_IDX_VALUE_LEN) {
		say(ps->err, ps->errlen, "a value must be 1 to %d bytes of lowercase hex, got \"%.*s\"", QE_IDX_VALUE_LEN,
		    (int)(len > 40 ? 40 : len), t);
		return -1;
	}
	memset(key, 0, 1 + QE_IDX_VALUE_LEN);
	key[0] = type;
	for (size_t i = 0; i < len / 2; i++) {
		int a = hexval(t[2 * i]), b = hexval(t[2 * i + 1]);
		if (a < 0 || b < 0) {
			say(ps->err, ps->errlen, "a value must be lowercase hex, got \"%.*s\"", (int)(len > 40 ? 40 : len), t);
			return -1;
		}
		key[1 + i] = (uint8_t)(a << 4 | b);
	}
	*bytes = len / 2;
	return 0;
}

static int number(struct parser *ps, const char *what, unsigned long max, unsigned long *out)
{
	const char *t;
	size_t len;
	if (!token(ps, &t, &len) || len > 10) {
		say(ps->err, ps->errlen, "%s: expected a number", what);
		return -1;
	}
	unsigned long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (t[i] < '0' || t[i] > '9') {
			say(ps->err, ps->errlen, "%s: expected a number, got \"%.*s\"", what, (int)len, t);
			return -1;
		}
		v = v * 10 + (unsigned long)(t[i] - '0');
	}
	if (v > max) {
		say(ps->err, ps->errlen, "%s %lu is above %lu", what, v, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int node(struct parser *ps, unsigned depth, uint32_t *out)
{
	if (depth > QE_PLAN_MAX_DEPTH) {
		say(ps->err, ps->errlen, "plan nested deeper than %d", QE_PLAN_MAX_DEPTH);
		return -1;
	}
	if (ps->p->nnodes >= QE_PLAN_MAX_NODES) {
		say(ps->err, ps->errlen, "plan of more than %d nodes", QE_PLAN_MAX_NODES);
		return -1;
	}
	if (ps->p->nnodes == ps->nodes_cap) {
		ps->nodes_cap = ps->nodes_cap ? ps->nodes_cap * 2 : 16;
		ps->p->nodes = xrealloc(ps->p->nodes, ps->nodes_cap * sizeof *ps->p->nodes);
	}
	uint32_t me = ps->p->nnodes++;
	struct qe_plan_node n = { 0 };
	const char *t;
	size_t len;
	if (!token(ps, &t, &len)) {
		say(ps->err, ps->errlen, "plan ends early");
		return -1;
	}
	if (is(t, len, QE_PLAN_OP_ALL)) {
		/* ALL narrows nothing: the daemon's planner folds it away inside and/or. */
		if (depth > 0) {
			say(ps->err, ps->errlen, "all inside a plan");
			return -1;
		}
		n.kind = QE_PLAN_ALL;
	} else if (is(t, len, QE_PLAN_OP_KEY) || is(t, len, QE_PLAN_OP_RANGE)) {
		int range = is(t, len, QE_PLAN_OP_RANGE);
		unsigned long type;
		size_t a, b;
		if (number(ps, "key type", QE_IDX_KEY_PROTO, &type) < 0)
			return -1;
		if (type < QE_IDX_KEY_MAC) {
			say(ps->err, ps->errlen, "key type 0 is not a key type");
			return -1;
		}
		n.kind = range ? QE_PLAN_RANGE : QE_PLAN_KEY;
		if (sort_key(ps, (uint8_t)type, n.lo, &a) < 0)
			return -1;
		if (range) {
			if (sort_key(ps, (uint8_t)type, n.hi, &b) < 0)
				return -1;
			if (a != b) {
				say(ps->err, ps->errlen, "a range's ends must have one length");
				return -1;
			}
		} else {
			memcpy(n.hi, n.lo, sizeof n.hi);
		}
	} else if (is(t, len, QE_PLAN_OP_AND) || is(t, len, QE_PLAN_OP_OR)) {
		n.kind = is(t, len, QE_PLAN_OP_AND) ? QE_PLAN_AND : QE_PLAN_OR;
		unsigned long k;
		if (number(ps, "operands", QE_PLAN_MAX_NODES, &k) < 0)
			return -1;
		if (k == 0) {
			say(ps->err, ps->errlen, "and/or of no operands");
			return -1;
		}
		/* The operands' node numbers are contiguous in kids: reserve them before the operands
		 * reserve theirs. */
		if (ps->p->nkids + k > ps->kids_cap) {
			while (ps->p->nkids + k > ps->kids_cap)
				ps->kids_cap = ps->kids_cap ? ps->kids_cap * 2 : 16;
			ps->p->kids = xrealloc(ps->p->kids, ps->kids_cap * sizeof *ps->p->kids);
		}
		n.first_kid = ps->p->nkids;
		n.nkids = (uint32_t)k;
		ps->p->nkids += (uint32_t)k;
		for (uint32_t i = 0; i < k; i++) {
			uint32_t kid;
			if (node(ps, depth + 1, &kid) < 0)
				return -1;
			ps->p->kids[n.first_kid + i] = kid;
		}
	} else {
		say(ps->err, ps->errlen, "unknown plan word \"%.*s\"", (int)(len > 40 ? 40 : len), t);
		return -1;
	}
	ps->p->nodes[me] = n;
	*out = me;
	return 0;
}

int qe_plan_parse(const char *text, struct qe_plan *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof *p);
	struct parser ps = { .s = text, .p = p, .err = err, .errlen = errlen };
	uint32_t root;
	if (strlen(text) > QE_PLAN_MAX_TEXT) {
		say(err, errlen, "plan longer than %d bytes", QE_PLAN_MAX_TEXT);
		return -1;
	}
	if (node(&ps, 0, &root) < 0 || (*ps.s && (say(err, errlen, "text after the plan"), 1))) {
		qe_plan_free(p);
		return -1;
	}
	return 0;
}

void qe_plan_free(struct qe_plan *p)
{
	free(p->nodes);
	free(p->kids);
	memset(p, 0, sizeof *p);
}

/* ---- reading ------------------------------------------------------------------------------ */

/* `len` bytes at `pos`, counted; short: the index is cut (a file cut while being read). */
static int rd(struct qe_ir *ix, uint64_t pos, unsigned char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(ix->fd, buf + got, len - got, (off_t)(pos + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	ix->bytes_read += got;
	if (got < len) {
		say(ix->note, ix->note_len, "%s: cut short at %" PRIu64 " bytes: the index is not used, its pcap file is scanned",
		    ix->path, pos + got);
		return -1;
	}
	return 0;
}

static int seg_damaged(struct qe_ir *ix, const struct qe_ir_segment *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int seg_damaged(struct qe_ir *ix, const struct qe_ir_segment *s, const char *fmt, ...)
{
	char why[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	say(ix->note, ix->note_len, "%s: segment at %" PRIu64 ": %s: " SCANNED, ix->path, s->at, why);
	return -1;
}

int qe_ir_pcap_facts(const char *pcap_path, struct qe_ir_pcap *f, char *note, size_t note_len)
{
	int fd = open(pcap_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		/* A .part renamed on close since the catalog was read: qe-extract finds it under its
		 * closed name and reads it whole, as for any file without an index. */
		int missing = errno == ENOENT;
		say(note, note_len, "%s: %m", pcap_path);
		return missing ? QE_IR_MISSING : QE_IR_MISMATCH;
	}
	struct stat st;
	unsigned char b[QE_PCAP_GLOBAL_LEN + QE_PCAP_RECORD_LEN];
	ssize_t got = 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		got = pread(fd, b, sizeof b, 0);
	else
		st.st_size = 0;
	close(fd);
	struct qe_pcap_global g;
	if (got < QE_PCAP_GLOBAL_LEN) {
		say(note, note_len, "%s: pcap global header needs %d bytes, got %zd", pcap_path, QE_PCAP_GLOBAL_LEN,
		    got < 0 ? (ssize_t)0 : got);
		return QE_IR_MISMATCH;
	}
	if (!qe_pcap_global_decode(b, &g)) {
		say(note, note_len, "%s: not a pcap file (magic 0x%08" PRIx32 ")", pcap_path, le32(b));
		return QE_IR_MISMATCH;
	}
	f->linktype = g.linktype;
	f->size = (uint64_t)st.st_size;
	f->first_ns = 0;
	if (got == (ssize_t)sizeof b) {
		struct qe_pcap_record r;
		qe_pcap_record_decode(b + QE_PCAP_GLOBAL_LEN, g.swapped, &r);
		f->first_ns = qe_pcap_record_ns(&r, g.nanos);
	}
	return QE_IR_OK;
}

int qe_ir_open(struct qe_ir *ix, const char *path, const char *pcap_path, const struct qe_ir_pcap *pcap, char *note,
	       size_t note_len)
{
	/* Non-blocking: a FIFO under an index's name must not hold the planner. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT) {
			say(note, note_len, "%s: no index", path);
			return QE_IR_MISSING;
		}
		say(note, note_len, "%s: %m", path); /* %m: strerror is not safe on the planner's threads */
		return QE_IR_DAMAGED;
	}
	int r = qe_ir_open_fd(ix, fd, path, pcap_path, pcap, note, note_len);
	if (r != QE_IR_OK)
		close(fd);
	else
		ix->owns_fd = 1;
	return r;
}

static int open_fd(struct qe_ir *ix, int fd, const char *path, const char *pcap_path, const struct qe_ir_pcap *pcap_in,
		   char *note, size_t note_len);

int qe_ir_open_fd(struct qe_ir *ix, int fd, const char *path, const char *pcap_path, const struct qe_ir_pcap *pcap_in,
		  char *note, size_t note_len)
{
	int r = open_fd(ix, fd, path, pcap_path, pcap_in, note, note_len);
	if (r != QE_IR_OK) {
		free(ix->head);
		ix->head = NULL;
	}
	return r;
}

static int open_fd(struct qe_ir *ix, int fd, const char *path, const char *pcap_path, const struct qe_ir_pcap *pcap_in,
		   char *note, size_t note_len)
{
	memset(ix, 0, sizeof *ix);
	ix->fd = fd;
	ix->path = path;
	ix->note = note;
	ix->note_len = note_len;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		say(note, note_len, "%s: not a regular file: " SCANNED, path);
		return QE_IR_DAMAGED;
	}
	ix->size = (uint64_t)st.st_size;
	ix->head_len = ix->size < HEAD_READ ? (size_t)ix->size : HEAD_READ;
	ix->head = xrealloc(NULL, ix->head_len);
	ssize_t got = 0;
	while ((size_t)got < ix->head_len) {
		ssize_t n = pread(fd, ix->head + got, ix->head_len - (size_t)got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	if ((size_t)got < ix->head_len) /* cut since the fstat */
		ix->size = ix->head_len = (size_t)got;
	const unsigned char *h = ix->head;
	if (got < QE_IDX_HEADER_LEN) {
		say(note, note_len, "%s: %" PRIu64 " bytes, shorter than the %d-byte header: " SCANNED, path, ix->size,
		    QE_IDX_HEADER_LEN);
		return QE_IR_DAMAGED;
	}
	if (memcmp(h, QE_IDX_MAGIC, QE_IDX_MAGIC_LEN) != 0) {
		say(note, note_len, "%s: bad magic %02x%02x%02x%02x%02x%02x%02x%02x: " SCANNED, path, h[0], h[1], h[2], h[3],
		    h[4], h[5], h[6], h[7]);
		return QE_IR_DAMAGED;
	}
	/* The version is read before the CRC: a newer writer may lay out the header differently. */
	unsigned version = le16(h + QE_IDX_H_VERSION);
	if (version != QE_IDX_VERSION) {
		say(note, note_len,
		    "%s: index format version %u, this qe-packets reads version %d: the pcap file is scanned instead "
		    "(qe-packets index --rebuild writes a version %d index)",
		    path, version, QE_IDX_VERSION, QE_IDX_VERSION);
		return QE_IR_VERSION;
	}
	if (crc(h, QE_IDX_H_CRC) != le32(h + QE_IDX_H_CRC)) {
		say(note, note_len, "%s: file header fails its checksum: " SCANNED, path);
		return QE_IR_DAMAGED;
	}
	unsigned header_len = le16(h + QE_IDX_H_HEADER_LEN);
	uint32_t flags = le32(h + QE_IDX_H_FLAGS);
	uint32_t bs = le32(h + QE_IDX_H_BLOCK_SIZE);
	uint32_t fields = le32(h + QE_IDX_H_FIELDS);
	if (header_len < QE_IDX_HEADER_LEN) {
		say(note, note_len, "%s: header_len %u < %d: " SCANNED, path, header_len, QE_IDX_HEADER_LEN);
		return QE_IR_DAMAGED;
	}
	if (bs < QE_IDX_BLOCK_SIZE_MIN || bs > QE_IDX_BLOCK_SIZE_MAX || (bs & (bs - 1)) != 0) {
		say(note, note_len, "%s: block_size %" PRIu32 " is not a power of two in [%u, %u]: " SCANNED, path, bs,
		    QE_IDX_BLOCK_SIZE_MIN, QE_IDX_BLOCK_SIZE_MAX);
		return QE_IR_DAMAGED;
	}
	if (fields & ~QE_IDX_FIELDS_KNOWN) {
		say(note, note_len, "%s: unknown field bits 0x%" PRIx32 ": " SCANNED, path, fields);
		return QE_IR_DAMAGED;
	}
	ix->block_size = bs;
	ix->shift = (unsigned)__builtin_ctz(bs);
	ix->fields = fields;
	ix->complete = (flags & QE_IDX_FLAG_COMPLETE) != 0;
	uint64_t first_ns = le64(h + QE_IDX_H_PCAP_FIRST_NS);
	uint32_t linktype = le32(h + QE_IDX_H_LINKTYPE);

	struct qe_ir_pcap pcap;
	if (pcap_in) {
		pcap = *pcap_in;
	} else {
		int r = qe_ir_pcap_facts(pcap_path, &pcap, note, note_len);
		if (r != QE_IR_OK)
			return r;
	}
	if (pcap.linktype != linktype) {
		say(note, note_len,
		    "%s: index of link type %" PRIu32 ", its pcap file has %" PRIu32 ": not this file's index, the file is scanned",
		    path, linktype, pcap.linktype);
		return QE_IR_MISMATCH;
	}
	if (pcap.first_ns != first_ns) {
		say(note, note_len,
		    "%s: index of a pcap file whose first record is at %" PRIu64 " ns, %s starts at %" PRIu64
		    " ns: not this file's index, the file is scanned",
		    path, first_ns, pcap_path, pcap.first_ns);
		return QE_IR_MISMATCH;
	}

	uint64_t at = header_len, expect_lo = QE_PCAP_GLOBAL_LEN;
	int r = QE_IR_OK;
	while (ix->size >= QE_IDX_SEGMENT_HEADER_LEN && at <= ix->size - QE_IDX_SEGMENT_HEADER_LEN) {
		unsigned char b[QE_IDX_SEGMENT_HEADER_LEN];
		if (at + sizeof b <= ix->head_len)
			memcpy(b, ix->head + at, sizeof b);
		else if (pread(fd, b, sizeof b, (off_t)at) != (ssize_t)sizeof b) {
			ix->dropped = 1; /* cut since the fstat: as torn */
			break;
		} else
			ix->bytes_read += sizeof b;
		int ok = le32(b + QE_IDX_S_MAGIC) == QE_IDX_SEGMENT_MAGIC && crc(b, QE_IDX_S_CRC) == le32(b + QE_IDX_S_CRC);
		struct qe_ir_segment s = {
			.at = at,
			.nkeys = le32(b + QE_IDX_S_NKEYS),
			.body_len = le64(b + QE_IDX_S_BODY_LEN),
			.off_lo = le64(b + QE_IDX_S_OFF_LO),
			.off_hi = le64(b + QE_IDX_S_OFF_HI),
			.records = le64(b + QE_IDX_S_RECORDS),
		};
		/* A header that fails, or a body cut short, is a torn write: only ever the last segment. */
		if (!ok || s.body_len > ix->size - at - QE_IDX_SEGMENT_HEADER_LEN) {
			ix->dropped = 1;
			break;
		}
		uint64_t end = at + QE_IDX_SEGMENT_HEADER_LEN + s.body_len;
		s.block0 = s.off_lo >> ix->shift;
		s.nblocks = qe_idx_bt_blocks(s.off_lo, s.off_hi, ix->shift);
		/* nblocks bounded first: its table (4 bytes an entry at least) must fit in the body. */
		if (s.nblocks > s.body_len / 4 ||
		    s.body_len < qe_idx_fence_len(s.nkeys) + s.nkeys * QE_IDX_ENTRY_LEN + qe_idx_bt_len(s.nblocks)) {
			say(note, note_len,
			    "%s: segment at %" PRIu64 ": body of %" PRIu64 " bytes cannot hold its fence, %" PRIu64
			    " entries and the block table of [%" PRIu64 ", %" PRIu64 "): " SCANNED,
			    path, at, s.body_len, s.nkeys, s.off_lo, s.off_hi);
			r = QE_IR_DAMAGED;
			break;
		}
		s.table_at = end - qe_idx_bt_len(s.nblocks);
		s.dir_at = at + QE_IDX_SEGMENT_HEADER_LEN + qe_idx_fence_len(s.nkeys);
		if (s.off_lo != expect_lo || s.off_hi < s.off_lo) {
			say(note, note_len,
			    "%s: segment at %" PRIu64 " covers [%" PRIu64 ", %" PRIu64 "), expected to start at %" PRIu64 ": " SCANNED,
			    path, at, s.off_lo, s.off_hi, expect_lo);
			r = QE_IR_DAMAGED;
			break;
		}
		/* An index may reach the disk before the packets it covers (an open file): what the pcap
		 * file does not hold yet is not trusted, it is scanned when it is there. */
		if (s.off_hi > pcap.size) {
			if (ix->complete) {
				say(note, note_len,
				    "%s: covers up to offset %" PRIu64 ", past the end of %s (%" PRIu64
				    " bytes): not this file's index, the file is scanned",
				    path, s.off_hi, pcap_path, pcap.size);
				r = QE_IR_MISMATCH;
				break;
			}
			ix->dropped = 1;
			break;
		}
		if (ix->nsegs == ix->segs_cap) {
			ix->segs_cap = ix->segs_cap ? ix->segs_cap * 2 : 4;
			ix->segs = xrealloc(ix->segs, ix->segs_cap * sizeof *ix->segs);
		}
		ix->segs[ix->nsegs++] = s;
		expect_lo = s.off_hi;
		at = end;
	}
	if (r == QE_IR_OK && !ix->dropped && at != ix->size && at + QE_IDX_SEGMENT_HEADER_LEN > ix->size)
		ix->dropped = 1; /* a torn header */
	if (r == QE_IR_OK && ix->complete && (ix->nsegs != 1 || ix->dropped)) {
		say(note, note_len, "%s: marked complete but holds %zu whole segment(s)%s: " SCANNED, path, ix->nsegs,
		    ix->dropped ? " and a torn one" : "");
		r = QE_IR_DAMAGED;
	}
	if (r != QE_IR_OK) {
		free(ix->segs);
		ix->segs = NULL;
		return r; /* the head is freed by qe_ir_open_fd */
	}
	ix->bytes_read += ix->head_len;
	return QE_IR_OK;
}

void qe_ir_close(struct qe_ir *ix)
{
	for (size_t i = 0; i < ix->npages; i++)
		free(ix->pages[i].b);
	free(ix->pages);
	for (size_t i = 0; i < ix->nsegs; i++)
		free(ix->segs[i].fence_own);
	free(ix->segs);
	free(ix->head);
	ix->head = NULL;
	if (ix->owns_fd)
		close(ix->fd);
	ix->owns_fd = 0;
	ix->fd = -1;
	ix->pages = NULL;
	ix->segs = NULL;
	ix->npages = ix->nsegs = 0;
}

uint64_t qe_ir_covered_end(const struct qe_ir *ix)
{
	return ix->nsegs ? ix->segs[ix->nsegs - 1].off_hi : QE_PCAP_GLOBAL_LEN;
}

uint64_t qe_ir_records(const struct qe_ir *ix)
{
	uint64_t n = 0;
	for (size_t i = 0; i < ix->nsegs; i++)
		n += ix->segs[i].records;
	return n;
}

/* ---- block lists ---- */

struct blocks {
	uint64_t *v;
	size_t n, cap;
};

static void push(struct blocks *b, uint64_t x)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->v = xrealloc(b->v, b->cap * sizeof *b->v);
	}
	b->v[b->n++] = x;
}

/* x op y into a new list; x and y freed. */
static struct blocks combine(struct blocks x, struct blocks y, int both)
{
	struct blocks out = { 0 };
	size_t i = 0, j = 0;
	while (both ? i < x.n && j < y.n : i < x.n || j < y.n) {
		if (j >= y.n)
			push(&out, x.v[i++]);
		else if (i >= x.n)
			push(&out, y.v[j++]);
		else if (x.v[i] < y.v[j]) {
			if (both)
				i++;
			else
				push(&out, x.v[i++]);
		} else if (y.v[j] < x.v[i]) {
			if (both)
				j++;
			else
				push(&out, y.v[j++]);
		} else {
			push(&out, x.v[i++]);
			j++;
		}
	}
	free(x.v);
	free(y.v);
	return out;
}

/* ---- the directory ---- */

static const unsigned char *cached_page(const struct qe_ir *ix, uint64_t n)
{
	/* The page last read first: a range's entries are read one after another. */
	for (size_t i = ix->npages; i-- > 0;)
		if (ix->pages[i].n == n)
			return ix->pages[i].b;
	/* Pages of the first read (the file's whole start, or the whole file). */
	if ((n + 1) * DIR_PAGE <= ix->head_len || (n * DIR_PAGE < ix->head_len && ix->head_len == ix->size))
		return ix->head + n * DIR_PAGE;
	return NULL;
}

static void keep_page(struct qe_ir *ix, uint64_t n, unsigned char *b, size_t len)
{
	if (ix->npages == ix->pages_cap) {
		ix->pages_cap = ix->pages_cap ? ix->pages_cap * 2 : 16;
		ix->pages = xrealloc(ix->pages, ix->pages_cap * sizeof *ix->pages);
	}
	ix->pages[ix->npages++] = (struct qe_ir_page){ .n = n, .b = b, .len = len };
}

/* Pages [p0, p1] in memory, those not yet there read in one pread (one disk trip: a run of
 * entries the fence points to may straddle two pages). */
static int pages_in(struct qe_ir *ix, uint64_t p0, uint64_t p1)
{
	while (p0 <= p1 && cached_page(ix, p0))
		p0++;
	if (p0 > p1)
		return 0;
	while (p1 > p0 && cached_page(ix, p1))
		p1--;
	if (p0 * DIR_PAGE >= ix->size) {
		say(ix->note, ix->note_len, "%s: cut short at %" PRIu64 " bytes: the index is not used, its pcap file is scanned",
		    ix->path, ix->size);
		return -1;
	}
	/* Entries lie inside the file (the segment's body fits in it): a page is cut only by the
	 * file's end, after them. */
	uint64_t end = (p1 + 1) * DIR_PAGE < ix->size ? (p1 + 1) * DIR_PAGE : ix->size;
	size_t len = (size_t)(end - p0 * DIR_PAGE);
	unsigned char *b = xrealloc(NULL, len);
	if (rd(ix, p0 * DIR_PAGE, b, len) < 0) {
		free(b);
		return -1;
	}
	for (uint64_t n = p0; n * DIR_PAGE < end; n++) {
		size_t at = (size_t)((n - p0) * DIR_PAGE), l = len - at < DIR_PAGE ? len - at : DIR_PAGE;
		if (cached_page(ix, n))
			continue;
		unsigned char *pg = xrealloc(NULL, l);
		memcpy(pg, b + at, l);
		keep_page(ix, n, pg, l);
	}
	free(b);
	return 0;
}

static const unsigned char *page(struct qe_ir *ix, uint64_t n)
{
	if (pages_in(ix, n, n) < 0)
		return NULL;
	return cached_page(ix, n);
}

/* The fence of segment `s` (index-format.h), read (from the file's first read when it is there)
 * and checked once: its CRC, then its keys strictly ascending, as the entries they copy are. */
static const unsigned char *fence_of(struct qe_ir *ix, struct qe_ir_segment *s)
{
	if (s->fence)
		return s->fence;
	uint64_t nf = qe_idx_fence_keys(s->nkeys), len = qe_idx_fence_len(s->nkeys);
	uint64_t at = s->at + QE_IDX_SEGMENT_HEADER_LEN;
	const unsigned char *f;
	if (at + len <= ix->head_len) {
		f = ix->head + at;
	} else {
		s->fence_own = xrealloc(NULL, (size_t)len); /* inside the body, which fits in the file */
		if (rd(ix, at, s->fence_own, (size_t)len) < 0)
			return NULL;
		f = s->fence_own;
	}
	if (crc(f, nf * QE_IDX_FENCE_KEY_LEN) != le32(f + nf * QE_IDX_FENCE_KEY_LEN)) {
		seg_damaged(ix, s, "the fence (at %" PRIu64 ") fails its checksum", at);
		return NULL;
	}
	for (uint64_t g = 1; g < nf; g++)
		if (memcmp(f + (g - 1) * QE_IDX_FENCE_KEY_LEN, f + g * QE_IDX_FENCE_KEY_LEN, QE_IDX_FENCE_KEY_LEN) >= 0) {
			seg_damaged(ix, s, "fence key %" PRIu64 " is out of order", g);
			return NULL;
		}
	s->fence = f;
	return f;
}

struct entry {
	unsigned char raw[QE_IDX_ENTRY_LEN];
	uint8_t key[1 + QE_IDX_VALUE_LEN];
	unsigned value_len;
	uint32_t count, len, crc;
	uint64_t off;
};

/* Entry `i` of segment `s`, checked against its key_crc: enough to trust its key, not its list. */
static int entry_head(struct qe_ir *ix, const struct qe_ir_segment *s, uint64_t i, struct entry *e)
{
	uint64_t at = s->dir_at + i * QE_IDX_ENTRY_LEN;
	uint64_t p0 = at / DIR_PAGE, p1 = (at + QE_IDX_ENTRY_LEN - 1) / DIR_PAGE;
	const unsigned char *a = page(ix, p0);
	if (!a)
		return -1;
	size_t in0 = (size_t)(at - p0 * DIR_PAGE);
	if (p0 == p1) {
		memcpy(e->raw, a + in0, QE_IDX_ENTRY_LEN);
	} else {
		memcpy(e->raw, a + in0, DIR_PAGE - in0);
		const unsigned char *b = page(ix, p1);
		if (!b)
			return -1;
		memcpy(e->raw + (DIR_PAGE - in0), b, QE_IDX_ENTRY_LEN - (DIR_PAGE - in0));
	}
	unsigned char z[QE_IDX_ENTRY_LEN];
	memcpy(z, e->raw, sizeof z);
	memset(z + QE_IDX_E_KEY_CRC, 0, 2);
	memset(z + QE_IDX_E_CRC, 0, 4);
	if ((crc(z, sizeof z) & 0xffff) != le16(e->raw + QE_IDX_E_KEY_CRC))
		return seg_damaged(ix, s, "directory entry %" PRIu64 " (at %" PRIu64 ") fails its checksum", i, at);
	e->value_len = e->raw[QE_IDX_E_VALUE_LEN];
	e->count = le32(e->raw + QE_IDX_E_COUNT);
	e->off = le64(e->raw + QE_IDX_E_OFF);
	e->len = le32(e->raw + QE_IDX_E_LEN);
	e->crc = le32(e->raw + QE_IDX_E_CRC);
	memset(e->key, 0, sizeof e->key);
	e->key[0] = e->raw[QE_IDX_E_TYPE];
	memcpy(e->key + 1, e->raw + QE_IDX_E_VALUE, e->value_len < QE_IDX_VALUE_LEN ? e->value_len : QE_IDX_VALUE_LEN);
	return 0;
}

/* The entry's posting list, checked with the entry against its CRC, then decoded and checked:
 * exactly `count` ascending blocks of the segment, and nothing after them. */
static int posting_list(struct qe_ir *ix, const struct qe_ir_segment *s, const struct entry *e, uint64_t i,
			struct blocks *out)
{
	uint64_t at = s->dir_at + i * QE_IDX_ENTRY_LEN;
	uint64_t area = s->nkeys * QE_IDX_ENTRY_LEN;
	uint64_t area_len = s->table_at - s->dir_at - area; /* >= 0: checked at open */
	/* Bounds first: a flipped offset or length must not make us read (or allocate) past the segment. */
	if (e->value_len > QE_IDX_VALUE_LEN || e->off > area_len || e->len > area_len - e->off || e->count == 0 ||
	    e->len < e->count)
		return seg_damaged(ix, s,
				   "directory entry %" PRIu64 " (at %" PRIu64 ") is malformed (value_len %u, count %" PRIu32
				   ", list of %" PRIu32 " bytes at %" PRIu64 ")",
				   i, at, e->value_len, e->count, e->len, e->off);
	unsigned char *list = xrealloc(NULL, e->len);
	if (rd(ix, s->dir_at + area + e->off, list, e->len) < 0) {
		free(list);
		return -1;
	}
	unsigned char z[QE_IDX_ENTRY_LEN];
	memcpy(z, e->raw, sizeof z);
	memset(z + QE_IDX_E_CRC, 0, 4);
	uLong c = crc32(crc32(0, Z_NULL, 0), z, sizeof z);
	c = crc32(c, list, e->len);
	if ((uint32_t)c != e->crc) {
		free(list);
		return seg_damaged(ix, s, "directory entry %" PRIu64 " (at %" PRIu64 ") or its posting list fails its checksum", i,
				   at);
	}
	struct blocks b = { .v = xrealloc(NULL, (size_t)e->count * sizeof *b.v), .cap = e->count };
	size_t p = 0;
	uint64_t v = 0;
	for (uint32_t n = 0; n < e->count; n++) {
		uint64_t x = 0;
		for (unsigned shift = 0;; shift += 7) {
			if (p >= e->len || shift > 56) {
				free(list);
				free(b.v);
				return seg_damaged(ix, s, "posting list of entry %" PRIu64 " is cut short", i);
			}
			unsigned char byte = list[p++];
			x |= (uint64_t)(byte & 0x7f) << shift;
			if (!(byte & 0x80))
				break;
		}
		v = n == 0 ? x : v + x;
		if (v < s->block0 || v - s->block0 >= s->nblocks || (n > 0 && x == 0)) {
			free(list);
			free(b.v);
			return seg_damaged(ix, s,
					   "posting list of entry %" PRIu64 " holds block %" PRIu64
					   ", out of order or outside blocks [%" PRIu64 ", %" PRIu64 ")",
					   i, v, s->block0, s->block0 + s->nblocks);
		}
		b.v[b.n++] = v;
	}
	free(list);
	if (p != e->len) {
		free(b.v);
		return seg_damaged(ix, s, "posting list of entry %" PRIu64 " is longer than its %" PRIu32 " postings", i, e->count);
	}
	*out = b;
	return 0;
}

static int by_block(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

/* Entry `i`'s key against the fence key that copies it (i a multiple of the stride). */
static int fence_agrees(struct qe_ir *ix, const struct qe_ir_segment *s, const struct entry *e, uint64_t i)
{
	if (memcmp(e->key, s->fence + i / QE_IDX_FENCE_STRIDE * QE_IDX_FENCE_KEY_LEN, QE_IDX_FENCE_KEY_LEN) != 0)
		return seg_damaged(ix, s, "directory entry %" PRIu64 " differs from its fence key", i);
	return 0;
}

/* The union of the posting lists of every key in [lo, hi] (sort keys of one type). */
static int postings_of(struct qe_ir *ix, struct qe_ir_segment *s, const uint8_t *lo, const uint8_t *hi, struct blocks *out)
{
	/* The fence, in memory, gives the run of QE_IDX_FENCE_STRIDE entries where the first entry
	 * >= lo is (or the one just after the run): the run's pages are read in one pread. */
	const unsigned char *fence = fence_of(ix, s);
	if (!fence)
		return -1;
	uint64_t g_lo = 0, g_hi = qe_idx_fence_keys(s->nkeys);
	while (g_lo < g_hi) {
		uint64_t m = g_lo + (g_hi - g_lo) / 2;
		if (memcmp(fence + m * QE_IDX_FENCE_KEY_LEN, lo, QE_IDX_FENCE_KEY_LEN) <= 0)
			g_lo = m + 1;
		else
			g_hi = m;
	}
	uint64_t a = 0, b = 0;
	struct entry e;
	if (g_lo > 0) {
		a = (g_lo - 1) * QE_IDX_FENCE_STRIDE;
		b = a + QE_IDX_FENCE_STRIDE < s->nkeys ? a + QE_IDX_FENCE_STRIDE : s->nkeys;
		if (pages_in(ix, (s->dir_at + a * QE_IDX_ENTRY_LEN) / DIR_PAGE, (s->dir_at + b * QE_IDX_ENTRY_LEN - 1) / DIR_PAGE) < 0 ||
		    entry_head(ix, s, a, &e) < 0 || fence_agrees(ix, s, &e, a) < 0)
			return -1;
	}
	/* Binary search in the run for the first entry >= lo, each probe checked against its key_crc:
	 * its CRC proper covers its posting list too, and the probes land on popular keys (a common
	 * port, a busy server) whose lists are tens of kilobytes. */
	while (a < b) {
		uint64_t m = a + (b - a) / 2;
		if (entry_head(ix, s, m, &e) < 0)
			return -1;
		if (memcmp(e.key, lo, sizeof e.key) < 0)
			a = m + 1;
		else
			b = m;
	}
	struct blocks acc = { 0 };
	uint8_t prev[1 + QE_IDX_VALUE_LEN];
	int have_prev = 0, merged = 0;
	for (uint64_t i = a; i < s->nkeys; i++) {
		if (entry_head(ix, s, i, &e) < 0 || (i % QE_IDX_FENCE_STRIDE == 0 && fence_agrees(ix, s, &e, i) < 0))
			goto fail;
		if (memcmp(e.key, hi, sizeof e.key) > 0)
			break;
		if (have_prev && memcmp(prev, e.key, sizeof prev) >= 0) {
			seg_damaged(ix, s, "directory entry %" PRIu64 " is out of order", i);
			goto fail;
		}
		memcpy(prev, e.key, sizeof prev);
		struct blocks list = { 0 };
		if (posting_list(ix, s, &e, i, &list) < 0)
			goto fail;
		/* A range may hold thousands of keys (a /8 of a busy network): their lists are gathered,
		 * then sorted once, rather than merged one by one. */
		if (!have_prev) {
			acc = list;
		} else {
			if (acc.n + list.n > acc.cap) {
				acc.cap = acc.n + list.n > 2 * acc.cap ? acc.n + list.n : 2 * acc.cap;
				acc.v = xrealloc(acc.v, acc.cap * sizeof *acc.v);
			}
			memcpy(acc.v + acc.n, list.v, list.n * sizeof *list.v);
			acc.n += list.n;
			free(list.v);
			merged = 1;
		}
		have_prev = 1;
	}
	if (merged) {
		qsort(acc.v, acc.n, sizeof *acc.v, by_block);
		size_t k = 0;
		for (size_t j = 0; j < acc.n; j++)
			if (k == 0 || acc.v[k - 1] != acc.v[j])
				acc.v[k++] = acc.v[j];
		acc.n = k;
	}
	*out = acc;
	return 0;
fail:
	free(acc.v);
	return -1;
}

static int evaluate(struct qe_ir *ix, const struct qe_plan *p, uint32_t at, struct qe_ir_segment *s, struct blocks *out)
{
	const struct qe_plan_node *n = &p->nodes[at];
	switch (n->kind) {
	case QE_PLAN_KEY:
	case QE_PLAN_RANGE:
		return postings_of(ix, s, n->lo, n->hi, out);
	case QE_PLAN_AND:
	case QE_PLAN_OR: {
		/* Each operand in turn (their reads share directory pages). */
		struct blocks acc = { 0 };
		for (uint32_t k = 0; k < n->nkids; k++) {
			struct blocks x = { 0 };
			if (evaluate(ix, p, p->kids[n->first_kid + k], s, &x) < 0) {
				free(acc.v);
				return -1;
			}
			acc = k == 0 ? x : combine(acc, x, n->kind == QE_PLAN_AND);
		}
		*out = acc;
		return 0;
	}
	default:
		/* ALL: refused inside a plan by qe_plan_parse, and the caller answers it without a lookup. */
		say(ix->note, ix->note_len, "%s: a lookup of ALL", ix->path);
		return -1;
	}
}

/* A block table group (its entries, then their CRC), checked. */
static int check_group(struct qe_ir *ix, const struct qe_ir_segment *s, uint64_t g, const unsigned char *b, uint64_t n)
{
	if (crc(b, n * 4) != le32(b + n * 4))
		return seg_damaged(ix, s, "block table group %" PRIu64 " fails its checksum", g);
	return 0;
}

static uint64_t group_entries(const struct qe_ir_segment *s, uint64_t g)
{
	uint64_t left = s->nblocks - g * QE_IDX_BT_GROUP;
	return left < QE_IDX_BT_GROUP ? left : QE_IDX_BT_GROUP;
}

/* The starts of `blocks` (ascending, inside the segment) from the block table: the groups they
 * fall in are read in as few preads as the gaps between them allow (a group is 260 bytes;
 * candidates of a rare key are spread over the whole table), each group checked once. */
static int block_starts(struct qe_ir *ix, const struct qe_ir_segment *s, const struct blocks *blocks, struct blocks *starts)
{
	const uint64_t stride = (QE_IDX_BT_GROUP + 1) * 4;
	size_t i = 0;
	while (i < blocks->n) {
		uint64_t first = (blocks->v[i] - s->block0) / QE_IDX_BT_GROUP, last = first;
		size_t j = i + 1;
		for (; j < blocks->n; j++) {
			uint64_t g = (blocks->v[j] - s->block0) / QE_IDX_BT_GROUP;
			if (g != last && (g - last - 1) * stride > GROUP_GAP)
				break;
			last = g;
		}
		uint64_t len = (last - first) * stride + (group_entries(s, last) + 1) * 4;
		unsigned char *span = xrealloc(NULL, (size_t)len);
		if (rd(ix, s->table_at + first * stride, span, (size_t)len) < 0) {
			free(span);
			return -1;
		}
		uint64_t checked = UINT64_MAX;
		for (size_t k = i; k < j; k++) {
			uint64_t blk = blocks->v[k], g = (blk - s->block0) / QE_IDX_BT_GROUP;
			const unsigned char *grp = span + (g - first) * stride;
			if (g != checked) {
				if (check_group(ix, s, g, grp, group_entries(s, g)) < 0) {
					free(span);
					return -1;
				}
				checked = g;
			}
			uint32_t v = le32(grp + ((blk - s->block0) % QE_IDX_BT_GROUP) * 4);
			uint64_t start = (blk << ix->shift) + v;
			if (v == QE_IDX_BT_NONE) {
				free(span);
				return seg_damaged(ix, s, "a posting for block %" PRIu64 ", where its block table has no record start",
						   blk);
			}
			if (v >= ix->block_size || start < s->off_lo || start >= s->off_hi) {
				free(span);
				return seg_damaged(ix, s,
						   "block table entry of block %" PRIu64 " is %" PRIu32
						   ", not a start inside the block and [%" PRIu64 ", %" PRIu64 ")",
						   blk, v, s->off_lo, s->off_hi);
			}
			/* A block cut by a segment boundary may be a candidate in each: the earlier segment's
			 * start reads it to its end, the later segment's records included. */
			if (!starts->n || (starts->v[starts->n - 1] >> ix->shift) != blk)
				push(starts, start);
		}
		free(span);
		i = j;
	}
	return 0;
}

int qe_ir_lookup(struct qe_ir *ix, const struct qe_plan *p, uint64_t **starts_out, size_t *n)
{
	struct blocks starts = { 0 };
	for (size_t i = 0; i < ix->nsegs; i++) {
		struct blocks b = { 0 };
		if (evaluate(ix, p, 0, &ix->segs[i], &b) < 0) {
			free(starts.v);
			return QE_IR_DAMAGED;
		}
		int r = block_starts(ix, &ix->segs[i], &b, &starts);
		free(b.v);
		if (r < 0) {
			free(starts.v);
			return QE_IR_DAMAGED;
		}
	}
	*starts_out = starts.v;
	*n = starts.n;
	return QE_IR_OK;
}
