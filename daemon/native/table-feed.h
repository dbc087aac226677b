/* What a record of a pcap file goes to as it is written or indexed: the file's index, its flow
 * table and the element counters, each optional, all from one parse of the record (the flows and
 * the elements read outer fields only, which the index's tunnel setting does not change). Live
 * capture feeds one record at a time; a run of records already in memory (an import, qe-index)
 * goes through a batch, so that the flow lookups of a few records wait for memory side by side
 * instead of one after another (a file's flows, megabytes, are mostly out of the caches). */
#ifndef QE_TABLE_FEED_H
#define QE_TABLE_FEED_H
#include <stdint.h>

#include "element-track.h"
#include "flow-build.h"
#include "index-build.h"
#include "packet-fields.h"

struct qe_tables {
	struct qe_idx_builder *idx;
	struct qe_flow_builder *flows;
	struct qe_elements *elems;
	uint64_t flow_file; /* names the flow table for the elements (qe_elements_add) */
	uint32_t linktype;
};

/* The record at pcap offset `off` (records come in file order): caplen bytes at data. */
void qe_tables_add(const struct qe_tables *t, uint64_t off, uint64_t ts_ns, uint32_t caplen, uint32_t origlen,
		   const unsigned char *data);

/* Records in a pipeline: a record's flow slot is fetched when it arrives, the flow that slot names
 * QE_TABLES_LAG records later, and the record is added to the tables QE_TABLES_DEPTH records after
 * it arrived (or at the flush), always in order. Parsing and adding the records between is what
 * each load has to complete behind. */
#define QE_TABLES_DEPTH 16
#define QE_TABLES_LAG 8

struct qe_tables_rec {
	uint64_t off, ts_ns, hint;
	uint32_t caplen, origlen;
	const unsigned char *data;
	struct qe_packet_fields f;
};

struct qe_tables_batch {
	struct qe_tables t;
	uint32_t head, n; /* the oldest waiting record, and how many wait */
	struct qe_tables_rec q[QE_TABLES_DEPTH];
};

/* Adds a record to the batch; the tables get it by the next qe_tables_flush at the latest. The
 * record's bytes must stay where they are until then, and nothing may read the tables before. */
void qe_tables_batch_add(struct qe_tables_batch *b, uint64_t off, uint64_t ts_ns, uint32_t caplen, uint32_t origlen,
			 const unsigned char *data);
/* The waiting records into the tables, in order. */
void qe_tables_flush(struct qe_tables_batch *b);
#endif
