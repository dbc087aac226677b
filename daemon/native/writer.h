/* The pcap file writer: records go into one large buffer that is written with one write() when it
 * fills or when the flush interval passes; files rotate by size and by duration; finished files
 * are synced, closed and renamed by a background thread so capture never waits on the disk. */
#ifndef QE_WRITER_H
#define QE_WRITER_H
#include <limits.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "pcap-format.h"

#define PCAP_GLOBAL_LEN QE_PCAP_GLOBAL_LEN
#define PCAP_RECORD_LEN QE_PCAP_RECORD_LEN
#define WRITER_BUF_SIZE (4u << 20)
#define MAX_DIRS 32
#define DIRECT_ALIGN 4096u

struct syncer;

struct writer_config {
	const char *iface;
	const char *dirs[MAX_DIRS];
	int ndirs;
	uint32_t snaplen;
	uint32_t linktype;
	uint64_t file_size;        /* rotate before a file would pass this many bytes */
	uint64_t file_duration_ns; /* 0: no rotation by time */
	int fsync;                 /* fdatasync open files every flush and closed files before rename */
	int direct;                /* write whole blocks with O_DIRECT: no page-cache copy per byte */
	uint64_t flush_ms;
};

struct writer {
	struct writer_config cfg;
	unsigned char *buf;
	size_t buf_len;
	uint64_t buf_packets;
	uint64_t buf_last_ns;

	int fd;                  /* -1 when no file is open */
	int dfd;                 /* the same file opened O_DIRECT, or -1 (buffered writes only) */
	size_t buf_counted;      /* direct mode: a tail already written and counted, kept for alignment */
	uint64_t counted_end;    /* the file offset up to which every record was written and counted */
	uint64_t counted_appended; /* appended_bytes when packets were last counted as written */
	char part_path[PATH_MAX];
	char final_base[PATH_MAX]; /* path without ".pcap" */
	uint64_t first_ns;
	uint64_t last_ns;
	uint64_t file_bytes;     /* bytes already in the file */
	uint64_t file_packets;
	uint64_t open_retry_after_ns; /* after a failed open, do not retry on every packet */
	uint64_t write_retry_after_ns; /* after a failed write the buffer is kept and retried */

	/* Cumulative counters reported in stats messages. */
	uint64_t written;        /* packets that reached a file */
	uint64_t written_bytes;  /* their bytes, record headers included */
	uint64_t writer_drops;   /* packets lost to a write or open error, never silently */
	uint64_t appended_bytes; /* every byte put into files (headers included), for the quota */
	uint64_t quota;          /* appended_bytes may not pass this (linear retention); UINT64_MAX: none */
	int store_full;          /* the quota is reached: packets are counted, not written */
	uint64_t quota_low_water; /* ask for more quota when less than this is left */
	int quota_asked;
	uint64_t store_full_drops;
	uint64_t write_errors;
	uint64_t last_error_report_ns;

	/* A file closed after a failed write counts all its packets since the last flush as lost; the
	 * sync thread then finds the whole records that did reach it and moves them back to written. */
	uint64_t recovered;       /* atomic: packets */
	uint64_t recovered_bytes; /* atomic */

	struct syncer *syncer;
};

int writer_init(struct writer *w, const struct writer_config *cfg);
/* Pushes buffered records into the file (to the kernel); the caller calls it every flush_ms. */
void writer_flush(struct writer *w);
/* Makes room in a full buffer: in direct mode only its block-aligned front goes to the disk. */
void writer_drain(struct writer *w);
/* Closes the open file (if any); the sync thread renames it and reports it. */
void writer_close_file(struct writer *w);
/* Closes a file whose duration has passed although no packet arrived to close it. */
void writer_tick(struct writer *w, uint64_t now_ns);
/* Closes everything and waits for the sync thread to finish. */
void writer_finish(struct writer *w);

int writer_open_file(struct writer *w, uint64_t ts_ns);
/* The counters as reported, with the records found in files cut after a failed write counted as
 * written rather than lost. */
uint64_t writer_written(const struct writer *w);
uint64_t writer_written_bytes(const struct writer *w);
uint64_t writer_lost(const struct writer *w);
/* Linear retention: closes the open file and counts further packets as store_full drops. */
void writer_set_store_full(struct writer *w);
/* A new quota (cumulative appended bytes); writing resumes if it leaves room. */
void writer_set_quota(struct writer *w, uint64_t quota);

/* True once when half of the last grant is used: the caller reports at once so the daemon grants
 * more before the quota runs out, instead of at the next once-a-second report. */
static inline int writer_wants_quota(struct writer *w)
{
	if (w->quota == UINT64_MAX || w->quota_asked)
		return 0;
	if (w->appended_bytes + w->quota_low_water < w->quota)
		return 0;
	w->quota_asked = 1;
	return 1;
}

/* Copies a packet into the write buffer. The buffer is only read again by the disk (a direct
 * write's DMA or the kernel's copy), so large packets go with non-temporal stores: no cache line
 * of the destination is fetched first (read for ownership) and the cache keeps the ring instead.
 * Each 64-byte line is written either wholly this way or wholly by ordinary stores. */
static inline void copy_packet(unsigned char *dst, const unsigned char *src, size_t n)
{
#if defined(__x86_64__)
	if (n >= 256) {
		size_t head = (64 - ((uintptr_t)dst & 63)) & 63;
		memcpy(dst, src, head);
		dst += head, src += head, n -= head;
		for (; n >= 64; n -= 64, dst += 64, src += 64) {
			__m128i a = _mm_loadu_si128((const __m128i *)src);
			__m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
			__m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
			__m128i d = _mm_loadu_si128((const __m128i *)(src + 48));
			_mm_stream_si128((__m128i *)dst, a);
			_mm_stream_si128((__m128i *)(dst + 16), b);
			_mm_stream_si128((__m128i *)(dst + 32), c);
			_mm_stream_si128((__m128i *)(dst + 48), d);
		}
	}
#endif
	memcpy(dst, src, n);
}

/* Orders the non-temporal stores before the buffer goes to the disk. */
static inline void copy_fence(void)
{
#if defined(__x86_64__)
	_mm_sfence();
#endif
}

/* Hot path: called once per packet, inline so the compiler keeps it in the capture loop. */
static inline void writer_add(struct writer *w, uint64_t ts_ns, uint32_t caplen, uint32_t origlen,
			      const unsigned char *data)
{
	if (w->store_full) {
		w->store_full_drops++;
		return;
	}
	if (caplen > w->cfg.snaplen)
		caplen = w->cfg.snaplen;
	size_t rec = PCAP_RECORD_LEN + (size_t)caplen;

	if (w->fd >= 0) {
		uint64_t in_file = w->file_bytes + w->buf_len;
		int full = in_file + rec > w->cfg.file_size && w->file_packets + w->buf_packets > 0;
		int aged = w->cfg.file_duration_ns && ts_ns >= w->first_ns &&
			   ts_ns - w->first_ns >= w->cfg.file_duration_ns;
		if (full || aged || qe_pcap_too_far(w->first_ns, ts_ns))
			writer_close_file(w);
	}
	if (w->appended_bytes + rec + (w->fd < 0 ? PCAP_GLOBAL_LEN : 0) > w->quota) {
		writer_set_store_full(w);
		w->store_full_drops++;
		return;
	}
	if (w->fd < 0 && writer_open_file(w, ts_ns) < 0) {
		w->writer_drops++;
		return;
	}
	if (w->buf_len + rec > WRITER_BUF_SIZE) {
		writer_drain(w);
		if (w->buf_len + rec > WRITER_BUF_SIZE) {
			/* The disk refused the last write and the buffer is still waiting for room. */
			w->writer_drops++;
			return;
		}
	}

	unsigned char *p = w->buf + w->buf_len;
	uint32_t hdr[4] = { (uint32_t)(ts_ns / 1000000000u), (uint32_t)(ts_ns % 1000000000u), caplen, origlen };
	memcpy(p, hdr, sizeof hdr);
	copy_packet(p + PCAP_RECORD_LEN, data, caplen);
	w->buf_len += rec;
	w->appended_bytes += rec;
	w->buf_packets++;
	w->buf_last_ns = ts_ns;
}

/* Offline fast path: can a run of records already in this writer's format (nanosecond, native
 * byte order, within snaplen) of this many bytes, the last stamped ts_ns, go into the open file
 * as it is, without rotating, without passing the quota and without a pending write retry? */
static inline int writer_run_fits(const struct writer *w, uint64_t bytes, uint64_t ts_ns)
{
	return w->fd >= 0 && w->dfd < 0 && !w->store_full && !w->write_retry_after_ns &&
	       w->file_bytes + w->buf_len + bytes <= w->cfg.file_size && !qe_pcap_too_far(w->first_ns, ts_ns) &&
	       (!w->cfg.file_duration_ns ||
		(ts_ns >= w->first_ns && ts_ns - w->first_ns < w->cfg.file_duration_ns)) &&
	       w->appended_bytes + bytes <= w->quota;
}

/* Writes such a run (checked with writer_run_fits) from the caller's memory straight into the
 * file, after what is buffered: no copy into the buffer. Returns -1 when the disk refused it;
 * nothing of the run is then counted or left in the file, and the caller offers its records one
 * by one (buffered, retried and counted as usual). */
int writer_add_run(struct writer *w, const unsigned char *records, size_t len, uint64_t packets, uint64_t last_ns);

uint64_t now_realtime_ns(void);
uint64_t now_monotonic_ns(void);
#endif
