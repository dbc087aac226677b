/* The pcap file writer: records go into one large buffer that is written with one write() when it
 * fills or when the flush interval passes; files rotate by size and by duration; finished files
 * are synced, closed and renamed by a background thread so capture never waits on the disk.
 *
 * The writer is opaque to its callers: they hand it packets and settings through these functions
 * and read its counters as a writer_stats, so that what happens to a record on its way to the file
 * is the writer's business alone: with index fields set, each record is also fed to the file's index
 * builder (index-build.h) from the writer's memory, a segment of the open file's index
 * (`X.pcap.part.qeidx`) is appended at each flush, and the sync thread writes the closed file's
 * complete index (`X.pcap.qeidx`, through a temporary name) after renaming the file. With flows on,
 * the flow builder (flow-build.h) gets each record the same way and its table takes the same path:
 * `X.pcap.part.qeflow` segment by segment, `X.pcap.qeflow` when the file is closed. */
#ifndef QE_WRITER_H
#define QE_WRITER_H
#include <stddef.h>
#include <stdint.h>

#include "pcap-format.h"

#define PCAP_GLOBAL_LEN QE_PCAP_GLOBAL_LEN
#define PCAP_RECORD_LEN QE_PCAP_RECORD_LEN
#define MAX_DIRS 32

struct writer;
struct qe_elements;

struct writer_config {
	const char *iface;
	const char *dirs[MAX_DIRS];
	int ndirs;
	uint32_t snaplen;
	uint32_t linktype;
	uint64_t file_size;        /* rotate before a file would pass this many bytes */
	uint64_t file_duration_ns; /* 0: no rotation by time */
	int fsync;                 /* one syncfs per store filesystem per flush interval (sync thread) */
	int direct;                /* write whole blocks with O_DIRECT: no page-cache copy per byte */
	uint64_t flush_ms;
	uint32_t index_fields;     /* enum qe_idx_field bits; 0: no index */
	uint32_t index_block_size; /* of the index (index-format.h) */
	int flows;                 /* a flow table (flow-format.h) beside each file */
};

/* The counters reported in stats messages, cumulative since the writer started. Records found
 * whole in files cut after a failed write count as written rather than lost. */
struct writer_stats {
	uint64_t written;          /* packets that reached a file */
	uint64_t written_bytes;    /* their bytes, record headers included */
	uint64_t lost;             /* packets lost to a write or open error, never silently */
	uint64_t write_errors;
	uint64_t store_full_drops; /* packets counted, not written, because the quota was reached */
	uint64_t appended_bytes;   /* every byte put into files (headers included), for the quota */
	uint64_t open_file_bytes;  /* the open file with its unflushed buffer; 0 when none is open */
	uint64_t buffered_bytes;   /* the part of it still in the buffer */
	uint64_t index_bytes;      /* bytes written to index files (counted in appended_bytes too) */
	uint64_t flow_bytes;       /* bytes written to flow tables (counted in appended_bytes too) */
	int store_full;
};

/* NULL when the buffer or the sync thread cannot be had. */
struct writer *writer_new(const struct writer_config *cfg);
/* Closes everything and waits for the sync thread to finish; the counters stay readable. */
void writer_finish(struct writer *w);
void writer_free(struct writer *w);

/* Hot path: one packet (cut to the snaplen) into the buffer, the file rotated or opened as
 * needed; a packet that cannot be kept is counted (lost or store_full_drops). */
void writer_add(struct writer *w, uint64_t ts_ns, uint32_t caplen, uint32_t origlen, const unsigned char *data);

/* Offline fast path: can a run of records already in this writer's format (nanosecond, native
 * byte order, within snaplen) of this many bytes, the last stamped ts_ns, go into the open file
 * as it is, without rotating, without passing the quota and without a pending write retry? */
int writer_run_fits(const struct writer *w, uint64_t bytes, uint64_t ts_ns);
/* Writes such a run (checked with writer_run_fits) from the caller's memory straight into the
 * file, after what is buffered: no copy into the buffer. Returns -1 when the disk refused it;
 * nothing of the run is then counted or left in the file, and the caller offers its records one
 * by one (buffered, retried and counted as usual). */
struct writer_span {
	uint64_t first_ns, last_ns; /* the run's first and last records' times */
	uint64_t min_ns, max_ns;    /* its earliest and latest */
	int sorted;                 /* no record older than the one before it */
};
int writer_add_run(struct writer *w, const unsigned char *records, size_t len, uint64_t packets, const struct writer_span *span);

/* Pushes buffered records into the file (to the kernel); the caller calls it every flush_ms. */
void writer_flush(struct writer *w);
/* Makes room in a full buffer: in direct mode only its block-aligned front goes to the disk. */
void writer_drain(struct writer *w);
/* Closes a file whose duration has passed although no packet arrived to close it. */
void writer_tick(struct writer *w, uint64_t now_ns);
/* The disk refused the last write (not the quota): the buffer is kept and tried again. */
int writer_write_refused(const struct writer *w);
/* ...and the next try is due at monotonic time now_ns. */
int writer_retry_due(const struct writer *w, uint64_t now_ns);

/* Settings a running writer takes from the next packet; writer_flush_ms is the interval the caller
 * flushes at (the sync thread keeps the one it started with). */
void writer_set_file_size(struct writer *w, uint64_t bytes);
void writer_set_file_duration_ns(struct writer *w, uint64_t ns);
void writer_set_flush_ms(struct writer *w, uint64_t ms);
uint64_t writer_flush_ms(const struct writer *w);

/* Linear retention: closes the open file and counts further packets as store_full drops. */
void writer_set_store_full(struct writer *w);
/* A new quota (cumulative appended bytes); writing resumes if it leaves room. */
void writer_set_quota(struct writer *w, uint64_t quota);
/* A quota is set: writing may stop short of it (the daemon grants more). */
int writer_has_quota(const struct writer *w);
/* The quota leaves no room for a packet of caplen bytes in a new file. */
int writer_short_of_quota(const struct writer *w, uint32_t caplen);
/* True once when half of the last grant is used: the caller reports at once so the daemon grants
 * more before the quota runs out, instead of at the next once-a-second report. */
int writer_wants_quota(struct writer *w);

/* Element counters (element-track.h) fed every packet offered from now on, written or not, from
 * the parse the index and flow table share; NULL stops it. The caller keeps ownership. Without
 * them no packet is parsed for them. */
void writer_set_elements(struct writer *w, struct qe_elements *elems);

/* Bytes put into files so far (headers included): what the live loop paces itself by. */
uint64_t writer_appended_bytes(const struct writer *w);
void writer_stats(const struct writer *w, struct writer_stats *s);

uint64_t now_realtime_ns(void);
uint64_t now_monotonic_ns(void);
#endif
