/* Builds the index of one pcap file (index-format.h, docs/INDEX.md) in memory from its records as
 * they are written: per record a parse (packet-fields.h) and, for each key new to its block, one
 * lookup in the key table and a word appended to a posting log. The log is sorted into runs (at
 * each segment, or when it fills); the runs since the last segment are emitted as the next
 * segment of the open file's index, and all of them merge into the closed file's index.
 *
 * Memory is bounded: qe_idx_full() says when the builder has reached QE_IDX_BUILD_MEM_MAX (the
 * writer then starts a new file; qe-index fails the file). */
#ifndef QE_INDEX_BUILD_H
#define QE_INDEX_BUILD_H
#include <stddef.h>
#include <stdint.h>

#include "index-format.h"
#include "packet-fields.h"
#include "table-io.h"

/* Bumped when the builder starts indexing something it did not before: a reader may rebuild
 * indexes of an older builder (header field `builder`). */
#define QE_IDX_BUILDER_REVISION 1
#define QE_IDX_BUILD_MEM_MAX (256u << 20)

struct qe_idx_builder;

/* `fields`: enum qe_idx_field bits; `block_size`: a power of two in [MIN, MAX] (qe_idx_block_size_ok).
 * NULL when out of memory. */
struct qe_idx_builder *qe_idx_builder_new(uint32_t fields, uint32_t block_size, uint32_t linktype);
void qe_idx_builder_free(struct qe_idx_builder *b);
/* Postings are logged and sorted into runs of at most this many log words (default 8 Mi): the fuzz
 * target sets it small, so a segment made of several runs is built as often as one of one. */
void qe_idx_set_log_spill(struct qe_idx_builder *b, uint32_t words);
int qe_idx_block_size_ok(uint64_t block_size);
/* A link type the parser reads: only those are indexed. An index of another would hold no keys and
 * say that no record matches anything; its files are scanned instead. */
int qe_idx_linktype_ok(uint32_t linktype);

/* One record of the file: its header at pcap offset `off` (records come in file order). */
void qe_idx_add(struct qe_idx_builder *b, uint64_t off, uint64_t ts_ns, const unsigned char *data, uint32_t caplen);
/* The same, from the record's fields as qe_packet_parse(linktype, data, caplen, qe_idx_tunnels(b), f)
 * gives them: a caller that needs the fields for something else too parses once. */
void qe_idx_add_parsed(struct qe_idx_builder *b, uint64_t off, uint64_t ts_ns, uint32_t caplen, const struct qe_packet_fields *f);
int qe_idx_tunnels(const struct qe_idx_builder *b);
/* The builder holds as much as it may: the file should end here. */
int qe_idx_full(const struct qe_idx_builder *b);
/* Records added so far, and in the segment not emitted yet. */
uint64_t qe_idx_records(const struct qe_idx_builder *b);
uint64_t qe_idx_pending_records(const struct qe_idx_builder *b);
/* Distinct keys of the whole file. */
uint64_t qe_idx_keys(const struct qe_idx_builder *b);

/* The file header; `complete` for a closed file's index. */
void qe_idx_header(const struct qe_idx_builder *b, int complete, unsigned char out[QE_IDX_HEADER_LEN]);
/* Appends to `out` the segment of the records added since the last one (and forgets them as
 * pending); 0 when there were none to emit, -1 out of memory (nothing appended, nothing lost). */
int qe_idx_next_segment(struct qe_idx_builder *b, struct qe_out *out);
/* Appends to `out` the header and one segment of every record: a closed file's index. */
int qe_idx_complete(struct qe_idx_builder *b, struct qe_out *out);
/* Writes the complete index to `path` through `path`.tmp and a rename; the bytes written, or -1
 * with errno set (no file left behind). `durable`: fdatasync before the rename. */
int64_t qe_idx_write_complete(struct qe_idx_builder *b, const char *path, int durable);


/* index.fields names ("ip,port") to bits; -1 with *bad pointing at the unknown name. */
int64_t qe_idx_parse_fields(const char *list, const char **bad, size_t *bad_len);
#endif
