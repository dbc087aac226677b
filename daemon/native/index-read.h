/* Reads a capture file's index (index-format.h, docs/INDEX.md) to answer a plan (index-plan.h):
 * the blocks of the pcap file where a candidate record starts, and from which offset in each.
 * Only the file's first 16 KiB (the headers, and a complete index's fence), the run of directory
 * entries the fence points a lookup to, the posting lists it needs and the block table groups of
 * its candidate blocks are read, with pread: a store is tens of terabytes and its indexes are
 * never read whole for a query.
 *
 * The same rules as daemon/src/index/reader.ts (whose verify() still serves `qe-packets index`):
 * an index is trusted only after its file header and every segment header pass their CRCs, its
 * version is the one this reader knows and it names its pcap file's first record and link type;
 * a torn last segment (a crash while the .part file was open) is dropped and what it covered is
 * scanned. A query never reads a segment body whole, so the fence is checked against its CRC and
 * order and each fence key it decides by against its entry, every directory entry it reads is
 * checked against its key_crc (each probe of a search included), every posting list it decodes
 * with its entry against the entry's CRC and then by structure (exactly `count` ascending blocks
 * inside the segment), every block table group it reads against its CRC. Every length and offset
 * taken from the file is bounded by what the file holds before it is used. */
#ifndef QE_INDEX_READ_H
#define QE_INDEX_READ_H
#include <stddef.h>
#include <stdint.h>

#include "index-format.h"

/* Why an index is not used (its file is scanned); the note says it in words. */
enum qe_ir_status {
	QE_IR_OK = 0,
	QE_IR_MISSING,	/* no index (or no pcap file: a .part renamed since the catalog was read) */
	QE_IR_VERSION,	/* another format version */
	QE_IR_DAMAGED,	/* a checksum or structure check failed */
	QE_IR_MISMATCH, /* the index of another file */
};

#define QE_IR_NOTE_MAX 9216

/* ---- plans (index-plan.h's text, parsed) ---- */
enum qe_plan_kind { QE_PLAN_ALL, QE_PLAN_KEY, QE_PLAN_RANGE, QE_PLAN_AND, QE_PLAN_OR };

struct qe_plan_node {
	uint8_t kind;
	/* KEY/RANGE: the sort keys (type byte, then the value left-aligned and zero-padded). */
	uint8_t lo[1 + QE_IDX_VALUE_LEN], hi[1 + QE_IDX_VALUE_LEN];
	/* AND/OR: nkids node numbers from kids[first_kid]. */
	uint32_t nkids, first_kid;
};

struct qe_plan {
	struct qe_plan_node *nodes;
	uint32_t nnodes;
	uint32_t *kids;
	uint32_t nkids;
};

/* 0 with *p filled (free with qe_plan_free), or -1 with why in err. The root is node 0. */
int qe_plan_parse(const char *text, struct qe_plan *p, char *err, size_t errlen);
void qe_plan_free(struct qe_plan *p);

/* ---- indexes ---- */
/* What an index is checked against: its pcap file's link type, size and first record. */
struct qe_ir_pcap {
	uint32_t linktype;
	uint64_t size;
	uint64_t first_ns;
};

struct qe_ir_segment {
	uint64_t at, nkeys, body_len, off_lo, off_hi, records;
	uint64_t block0, nblocks, table_at;
	uint64_t dir_at; /* file offset of the first directory entry (after the fence) */
	/* The fence's keys once read and checked (in the file's first read, or its own): NULL before. */
	const unsigned char *fence;
	unsigned char *fence_own; /* what to free, when it was not in the first read */
};

struct qe_ir_page;

struct qe_ir {
	int fd;
	int owns_fd; /* opened by qe_ir_open: closed by qe_ir_close */
	const char *path;
	uint64_t size;
	uint32_t block_size;
	unsigned shift;
	uint32_t fields;
	int complete;
	struct qe_ir_segment *segs;
	size_t nsegs, segs_cap;
	int dropped;
	/* Bytes of the index read so far (headers, directory pages, posting lists, block table groups). */
	uint64_t bytes_read;
	struct qe_ir_page *pages;
	size_t npages, pages_cap;
	/* The file's first bytes, read whole at open: the headers and a complete index's fence. */
	unsigned char *head;
	size_t head_len;
	char *note;
	size_t note_len;
};

/* The pcap file's facts; QE_IR_OK, else QE_IR_MISSING / QE_IR_MISMATCH with a note. */
int qe_ir_pcap_facts(const char *pcap_path, struct qe_ir_pcap *f, char *note, size_t note_len);

/* Opens the index at `path` for the pcap file at `pcap_path`, checking it as above; `pcap` gives
 * the pcap file's facts, or NULL to read them from pcap_path (after the header checks, as
 * reader.ts does). Anything but QE_IR_OK leaves a note and nothing to close. */
int qe_ir_open(struct qe_ir *ix, const char *path, const char *pcap_path, const struct qe_ir_pcap *pcap, char *note,
	       size_t note_len);
/* The same on an open descriptor (the caller keeps it: qe_ir_close leaves it open). */
int qe_ir_open_fd(struct qe_ir *ix, int fd, const char *path, const char *pcap_path, const struct qe_ir_pcap *pcap,
		  char *note, size_t note_len);
void qe_ir_close(struct qe_ir *ix);

/* The pcap offset up to which the index answers; records starting at or after it are scanned. */
uint64_t qe_ir_covered_end(const struct qe_ir *ix);
uint64_t qe_ir_records(const struct qe_ir *ix);

/* The candidate record starts of a plan (not ALL), one per block, ascending, over every segment:
 * QE_IR_OK with *starts (malloc'd) and *n, or QE_IR_DAMAGED with the note. */
int qe_ir_lookup(struct qe_ir *ix, const struct qe_plan *p, uint64_t **starts, size_t *n);

#endif
