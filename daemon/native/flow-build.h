/* Builds the flow table of one pcap file (flow-format.h, docs/INDEX.md "Flow table") in memory from
 * its records as they are written, from the fields the caller parsed once for the index and the
 * flows (packet-fields.h, outer headers only: flows do not follow tunnels). Per record one hash
 * lookup (none for a train of the same flow) and a few counter updates; nothing is allocated per
 * record (the tables grow by doubling).
 *
 * Each flow's record holds what the packets since the last segment added; the whole file's counts
 * are folded in when a segment is emitted, so the closed file's table (one segment) is the merge of
 * the open file's segments. Memory is bounded: qe_flow_full() says when the builder has reached
 * QE_FLOW_BUILD_MEM_MAX (the writer then starts a new file; qe-index fails the file). */
#ifndef QE_FLOW_BUILD_H
#define QE_FLOW_BUILD_H
#include <stddef.h>
#include <stdint.h>

#include "flow-format.h"
#include "packet-fields.h"
#include "table-io.h"

/* Bumped when the builder starts counting something differently: a reader may rebuild the tables
 * of an older builder (header field `builder`). */
#define QE_FLOW_BUILDER_REVISION 1
#define QE_FLOW_BUILD_MEM_MAX (256u << 20)
/* Flows a file's builder keeps (about 210 MiB of tables at most, within QE_FLOW_BUILD_MEM_MAX). */
#define QE_FLOW_BUILD_MAX_FLOWS (1u << 20)

struct qe_flow_builder;

/* NULL when out of memory. Any link type: what the parser does not read is counted per EtherType 0. */
struct qe_flow_builder *qe_flow_builder_new(uint32_t linktype);
void qe_flow_builder_free(struct qe_flow_builder *b);

/* What qe_flow_add says of a record: its flow (an index, stable for the builder's life) and which
 * end sent it, so the element tracker can reuse the lookup (element-track.h). */
#define QE_FLOW_REF_NONE UINT32_MAX
#define QE_FLOW_REF(flow, from_b) ((flow) << 1 | (uint32_t)(from_b))
#define QE_FLOW_REF_FLOW(ref) ((ref) >> 1)
#define QE_FLOW_REF_FROM_B(ref) ((ref) & 1u)

/* One record of the file at pcap offset `off` (records come in file order): its time, caplen,
 * original length (the bytes counted) and its fields as qe_packet_parse(linktype, data, caplen,
 * 0, f) gives them. Returns the record's flow reference, QE_FLOW_REF_NONE when it went uncounted
 * (the builder is broken). */
uint32_t qe_flow_add(struct qe_flow_builder *b, uint64_t off, uint64_t ts_ns, uint32_t caplen, uint32_t origlen,
		     const struct qe_packet_fields *f);
/* Hints, for a caller holding several records (a run being imported or indexed): the first starts
 * loading the table slot a record with these fields will look up and returns a hint (0: nothing
 * to fetch); the second, a few records later when that slot has arrived, starts loading the flow
 * it names. Neither changes the builder, so what qe_flow_add then does is the same. */
uint64_t qe_flow_prefetch_slot(const struct qe_flow_builder *b, const struct qe_packet_fields *f);
void qe_flow_prefetch_flow(const struct qe_flow_builder *b, uint64_t hint);
/* The builder holds QE_FLOW_BUILD_MAX_FLOWS flows (or ran out of memory): the file should end here. */
int qe_flow_full(const struct qe_flow_builder *b);
/* The builder can take `records` more records whatever flows they start: a run of them may go in
 * without a check between records. */
int qe_flow_room(const struct qe_flow_builder *b, uint64_t records);
/* Records added so far, and since the last segment; flows of the whole file. */
uint64_t qe_flow_packets(const struct qe_flow_builder *b);
uint64_t qe_flow_pending_packets(const struct qe_flow_builder *b);
uint64_t qe_flow_count(const struct qe_flow_builder *b);

/* The complete table covers [lo, hi) of its stream, whatever of it was counted: qe-index
 * --flows-stdout with a time range offers every record but counts some (by default the table covers
 * its first record to the end of its last). */
void qe_flow_set_span(struct qe_flow_builder *b, uint64_t lo, uint64_t hi);
/* The file header; `complete` for a closed file's table. */
void qe_flow_header(const struct qe_flow_builder *b, int complete, unsigned char out[QE_FLOW_HEADER_LEN]);
/* Appends to `out` the segment of the records added since the last one and folds them into the
 * file's counts; 0 when there were none, 1 appended, -1 out of memory (nothing appended or lost). */
int qe_flow_next_segment(struct qe_flow_builder *b, struct qe_out *out);
/* Appends the header and one segment of every flow of the file: a closed file's table. */
int qe_flow_complete(const struct qe_flow_builder *b, struct qe_out *out);
/* The complete table to `path` through `path`.tmp and a rename; its bytes, or -1 with errno set
 * (no file left behind). `durable`: fdatasync before the rename. */
int64_t qe_flow_write_complete(const struct qe_flow_builder *b, const char *path, int durable);
#endif
