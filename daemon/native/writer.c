#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "element-track.h"
#include "flow-build.h"
#include "index-build.h"
#include "packet-fields.h"
#include "proto.h"
#include "table-feed.h"

#define HUGE_PAGE (2u << 20)
#define WRITER_BUF_SIZE (4u << 20)
#define DIRECT_ALIGN 4096u

struct writer {
	struct writer_config cfg;
	struct qe_elements *elems; /* the caller's element counters, or NULL */
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
	char final_base[PATH_MAX]; /* path without collision suffix and ".pcap" */
	int collision;           /* the ~N the open file's name took (0: none) */
	char iface_name[PATH_MAX / 4]; /* cfg.iface as file names spell it */
	uint64_t first_ns;
	uint64_t last_ns;
	uint64_t file_bytes;     /* bytes already in the file */
	uint64_t file_packets;
	/* The open file's records' span and order, for file_closed (the catalog takes them instead of
	 * reading the file back); lost once a write failed, the file's records then being uncertain. */
	uint64_t file_min_ns, file_max_ns, file_prev_ns;
	int file_sorted, file_span_lost;
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

	/* The open file's index: its builder, and `<part>.qeidx`, written segment by segment at each
	 * flush (opened at the first one). A failed index write drops the file's index, never data. */
	struct qe_idx_builder *idx;
	int idx_fd;
	uint64_t idx_len;
	char idx_path[PATH_MAX];
	struct qe_out idx_out;
	uint64_t index_bytes;       /* written by this thread (segments) */
	uint64_t index_async_bytes; /* atomic: written by the sync thread (complete indexes) */
	uint64_t last_index_error_ns;

	/* The open file's flow table, the same way: `<part>.qeflow` gets a segment at each flush. */
	struct qe_flow_builder *flows;
	uint64_t flows_made; /* names the open file's flow table for the element tracker */
	int flow_fd;
	uint64_t flow_len;
	char flow_path[PATH_MAX];
	struct qe_out flow_out;
	uint64_t flow_bytes;       /* written by this thread (segments) */
	uint64_t flow_async_bytes; /* atomic: written by the sync thread (complete tables) */
	uint64_t last_flow_error_ns;

	struct syncer *syncer;
};

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

uint64_t now_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t now_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- sync thread: sync, close, rename and report finished files off the capture thread ----
 *
 * A closed file is renamed at once by one thread. With fsync on, a second thread makes the store
 * durable once per flush interval with one syncfs() per store filesystem: that covers the open file, the files
 * closed since the last round and their renames. A device cache flush is the expensive part of a
 * sync (on a virtual disk it flushes the host's cache too), and the fdatasync per closed file plus
 * one for its directory that this replaces cost a flush each: with 100 MB files at 1500-byte line
 * rate that was about ten flushes a second. A power loss before the next round loses at most that
 * last interval: ext4 (ordered data) and XFS (on-disk size set at I/O completion) never show a
 * renamed file with data that did not reach the disk, only a shorter one. The finishing thread starts
 * each closed file's write-back (no device flush): the disk writes it while the next is filled, not
 * all at the next round, which on an import had the disk idle until the end. */

struct closed_file {
	int fd;
	int dfd;
	int torn; /* a direct write failed mid-record: cut back to the last whole record before renaming */
	uint64_t counted_bytes; /* torn: the bytes of the file counted as written */
	char part[PATH_MAX];
	char base[PATH_MAX];
	int collision;
	uint64_t first_ns, last_ns, packets, bytes;
	uint64_t min_ns, max_ns;
	int sorted, span_known;
	struct qe_idx_builder *idx; /* the whole file's postings: its complete index is written here */
	char idx_part[PATH_MAX];    /* the open file's index, removed once the file is closed */
	struct qe_flow_builder *flows; /* the same for its flow table */
	char flow_part[PATH_MAX];
	struct closed_file *next;
};

/* Two threads: one finishes closed files (cut, rename, complete index, file_closed), the other
 * makes the store durable once per flush interval. A syncfs can take seconds on a busy filesystem;
 * finishing files apart from it keeps file_closed, and so the daemon's retention and quota grants,
 * from waiting on it. */
struct syncer {
	pthread_t thread;         /* finishes closed files */
	pthread_t durable_thread; /* one syncfs per store filesystem per interval */
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* a closed file or the stop for the finishing thread */
	pthread_cond_t durable_cv; /* the stop for the durability thread */
	struct closed_file *head, *tail;
	int stop;
	int durable_stop;
	int dirty; /* atomic: something was written since the last round */
	struct writer *w; /* these threads read its cfg and add to its atomic recovered counters */
};

/* One syncfs() per filesystem holding a store directory. */
static void sync_store(const struct writer_config *cfg)
{
	dev_t done[MAX_DIRS];
	int ndone = 0;
	for (int i = 0; i < cfg->ndirs; i++) {
		int fd = open(cfg->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat st;
		int seen = fstat(fd, &st) != 0;
		for (int k = 0; k < ndone && !seen; k++)
			seen = done[k] == st.st_dev;
		if (!seen) {
			done[ndone++] = st.st_dev;
			syncfs(fd);
		}
		close(fd);
	}
}

/* Renames without ever replacing an existing capture file: a taken name gets "~N" (the next N
 * after the one the part file took). */
static int rename_final(const char *part, const char *base, int collision, char *final, size_t final_len)
{
	for (int n = collision; n < collision + 1000; n++) {
		if (n == 0)
			snprintf(final, final_len, "%s.pcap", base);
		else
			snprintf(final, final_len, "%s~%d.pcap", base, n);
		if (renameat2(AT_FDCWD, part, AT_FDCWD, final, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

static size_t pread_fd(void *ctx, unsigned char *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(*(int *)ctx, buf, len, (off_t)off);
	return n < 0 ? 0 : (size_t)n;
}

/* Cuts a file after its last whole record, by the rule the daemon's repair applies at the next
 * start (pcap-format.h), so the two never disagree on where a file ends; returns the packets kept. */
static uint64_t cut_to_whole_records(int fd, uint64_t first_ns, uint64_t *size)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return 0;
	uint64_t lo, hi, packets;
	qe_pcap_plausible_span(first_ns, now_realtime_ns(), &lo, &hi);
	uint64_t off = qe_pcap_whole_end(pread_fd, &fd, (uint64_t)st.st_size, lo, hi, &packets);
	if (off && ftruncate(fd, (off_t)off) == 0)
		*size = off;
	return packets;
}

static void close_file(struct closed_file *c)
{
	if (c->dfd >= 0)
		close(c->dfd);
	close(c->fd);
}

static void drop_closed_index(struct closed_file *c)
{
	if (c->idx_part[0])
		unlink(c->idx_part);
	qe_idx_builder_free(c->idx);
	c->idx = NULL;
	if (c->flow_part[0])
		unlink(c->flow_part);
	qe_flow_builder_free(c->flows);
	c->flows = NULL;
}

/* The closed file's complete index goes beside it (temporary name, then rename), and the open
 * file's segments go: a reader finds one or the other, never an index of another file. */
static void write_closed_index(struct syncer *s, struct closed_file *c, const char *final)
{
	if (c->idx) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s%s", final, QE_IDX_EXT);
		int64_t n = qe_idx_write_complete(c->idx, path, 0);
		if (n < 0)
			send_error(s->w->cfg.iface, "index_failed", 0, "cannot write %s: %s (the file is scanned until it is indexed again)",
				   path, strerror(errno));
		else
			__atomic_add_fetch(&s->w->index_async_bytes, (uint64_t)n, __ATOMIC_RELAXED);
	}
	if (c->flows) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s%s", final, QE_FLOW_EXT);
		int64_t n = qe_flow_write_complete(c->flows, path, 0);
		if (n < 0)
			send_error(s->w->cfg.iface, "flows_failed", 0,
				   "cannot write %s: %s (the file's flows are counted from its packets until its table is built again)", path,
				   strerror(errno));
		else
			__atomic_add_fetch(&s->w->flow_async_bytes, (uint64_t)n, __ATOMIC_RELAXED);
	}
	drop_closed_index(c);
}

/* Cuts a torn file, renames it into place and reports it. */
static void finish_file(struct syncer *s, struct closed_file *c)
{
	if (c->torn) {
		uint64_t counted = c->packets;
		c->packets = cut_to_whole_records(c->fd, c->first_ns, &c->bytes);
		if (c->packets > counted) {
			__atomic_add_fetch(&s->w->recovered, c->packets - counted, __ATOMIC_RELAXED);
			if (c->bytes > c->counted_bytes)
				__atomic_add_fetch(&s->w->recovered_bytes, c->bytes - c->counted_bytes, __ATOMIC_RELAXED);
		}
	}
	/* The file is closed (and its lock let go) only once it has its final name: an unlocked .part
	 * is one a repair may take. */
	if (c->packets == 0) {
		/* Every record failed to reach the disk: a header alone holds nothing worth keeping. */
		unlink(c->part);
		close_file(c);
		drop_closed_index(c);
		return;
	}
	char final[PATH_MAX];
	int renamed = rename_final(c->part, c->base, c->collision, final, sizeof final);
	int err = errno;
	if (s->w->cfg.fsync)
		(void)sync_file_range(c->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	close_file(c);
	if (renamed < 0) {
		send_error(s->w->cfg.iface, "rename_failed", 0, "cannot rename %s: %s (it stays as a .part file and is repaired at the next start)",
			   c->part, strerror(err));
		qe_idx_builder_free(c->idx); /* the .part keeps its segment index, which the repair rebuilds */
		qe_flow_builder_free(c->flows); /* and its segment flow table */
		return;
	}
	write_closed_index(s, c, final);
	struct msg m;
	msg_begin(&m, "file_closed", s->w->cfg.iface);
	msg_str(&m, "path", final);
	msg_ns(&m, "first_ns", c->first_ns);
	msg_ns(&m, "last_ns", c->last_ns);
	msg_u64(&m, "packets", c->packets);
	msg_u64(&m, "bytes", c->bytes);
	if (c->span_known) {
		msg_ns(&m, "min_ns", c->min_ns);
		msg_ns(&m, "max_ns", c->max_ns);
		msg_bool(&m, "sorted", c->sorted);
	}
	msg_send(&m);
}

static void *syncer_main(void *arg)
{
	struct syncer *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->stop && !s->head)
			pthread_cond_wait(&s->cv, &s->mu);
		struct closed_file *list = s->head;
		s->head = s->tail = NULL;
		int stopping = s->stop;
		if (list)
			__atomic_store_n(&s->dirty, 1, __ATOMIC_RELEASE); /* cuts and renames */
		pthread_mutex_unlock(&s->mu);

		while (list) {
			struct closed_file *next = list->next;
			finish_file(s, list);
			free(list);
			list = next;
		}

		pthread_mutex_lock(&s->mu);
		if (stopping && !s->head)
			break;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void *durable_main(void *arg)
{
	struct syncer *s = arg;
	uint64_t interval = s->w->cfg.flush_ms * 1000000u;
	uint64_t next_round = now_monotonic_ns() + interval;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->durable_stop && now_monotonic_ns() < next_round) {
			uint64_t wait_ns = next_round - now_monotonic_ns();
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += (time_t)(wait_ns / 1000000000u);
			until.tv_nsec += (long)(wait_ns % 1000000000u);
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&s->durable_cv, &s->mu, &until);
		}
		int stopping = s->durable_stop;
		pthread_mutex_unlock(&s->mu);
		/* At a stop (after the last files were finished) their data and names are made durable
		 * before the helper exits. */
		if (s->w->cfg.fsync && __atomic_exchange_n(&s->dirty, 0, __ATOMIC_ACQ_REL))
			sync_store(&s->w->cfg);
		next_round = now_monotonic_ns() + interval;
		pthread_mutex_lock(&s->mu);
		if (stopping)
			break;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- the writer ---- */

/* The interface name as file names spell it (daemon/src/store/filename.ts, encodeIface): every
 * byte but letters, digits and . _ @ : + - as %XX, so that only a collision writes `~` (a Linux
 * interface may be named eth0~1) and names read back as they were written. */
static void encode_iface(char *out, size_t len, const char *iface)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)iface; *p && o + 4 <= len; p++) {
		unsigned char ch = *p;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || strchr("._@:+-", ch))
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, len - o, "%%%02X", ch);
	}
	out[o] = '\0';
}

struct writer *writer_new(const struct writer_config *cfg)
{
	struct writer *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->cfg = *cfg;
	encode_iface(w->iface_name, sizeof w->iface_name, cfg->iface);
	w->fd = -1;
	w->dfd = -1;
	w->idx_fd = -1;
	w->flow_fd = -1;
	w->quota = UINT64_MAX;
	if (w->cfg.index_fields && !qe_idx_linktype_ok(w->cfg.linktype)) {
		send_error(cfg->iface, "index_unsupported", 0,
			   "link type %u is not indexed (Ethernet, raw IP and Linux cooked captures are): files are written without an index and scanned",
			   cfg->linktype);
		w->cfg.index_fields = 0;
	}
	/* Huge pages for the buffer: the copy into it takes no TLB misses and an O_DIRECT write pins
	 * two pages instead of a thousand (where transparent huge pages are on, as madvise allows). */
	if (posix_memalign((void **)&w->buf, HUGE_PAGE, WRITER_BUF_SIZE) != 0)
		goto fail;
	madvise(w->buf, WRITER_BUF_SIZE, MADV_HUGEPAGE);
	struct syncer *s = calloc(1, sizeof *s);
	if (!s)
		goto fail;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_cond_init(&s->durable_cv, NULL);
	s->w = w;
	if (pthread_create(&s->thread, NULL, syncer_main, s) != 0) {
		free(s);
		goto fail;
	}
	if (pthread_create(&s->durable_thread, NULL, durable_main, s) != 0) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		free(s);
		goto fail;
	}
	w->syncer = s;
	return w;
fail:
	free(w->buf);
	free(w);
	return NULL;
}

static void report_write_error(struct writer *w, const char *what, int err)
{
	w->write_errors++;
	uint64_t now = now_monotonic_ns();
	/* Count every failure but tell the daemon at most once a second. */
	if (now - w->last_error_report_ns < 1000000000u && w->last_error_report_ns)
		return;
	w->last_error_report_ns = now;
	send_error(w->cfg.iface, err == ENOSPC ? "disk_full" : "write_failed", 0, "%s: %s", what, strerror(err));
}

/* The directory with the most free space takes the next file. */
static const char *pick_dir(const struct writer *w)
{
	const char *best = w->cfg.dirs[0];
	unsigned long long best_free = 0;
	for (int i = 0; i < w->cfg.ndirs; i++) {
		struct statvfs sv;
		if (statvfs(w->cfg.dirs[i], &sv) != 0)
			continue;
		unsigned long long avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
		if (avail > best_free) {
			best_free = avail;
			best = w->cfg.dirs[i];
		}
	}
	return best;
}

/* dir/<UTC time of the first packet>_<interface>, without a collision suffix. */
static void format_base(char *out, size_t len, const char *dir, const char *iface_name, uint64_t ts_ns)
{
	time_t sec = (time_t)(ts_ns / 1000000000u);
	struct tm tm;
	gmtime_r(&sec, &tm);
	char stamp[32];
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
	snprintf(out, len, "%s/%s.%09lluZ_%s", dir, stamp, (unsigned long long)(ts_ns % 1000000000u), iface_name);
}

/* Creates a .part file under a name not taken yet, locked (flock) until the sync thread has renamed
 * it: the lock tells a start-up repair in another process (an import, a daemon starting) that the
 * file is live. A repair holds the same lock while it works, so a file it took first is left to it
 * here, and one it removed between our open and our lock is noticed (the name no longer leads to
 * our file); either way the next name is tried. */
static int open_part(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640); /* read back by a torn-file cut */
	if (fd < 0)
		return -1;
	/* A filesystem without flock (ENOLCK, EINVAL) still gets written, unprotected from repair. */
	int taken = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	struct stat mine, named;
	if (taken || fstat(fd, &mine) != 0 || stat(path, &named) != 0 || mine.st_dev != named.st_dev ||
	    mine.st_ino != named.st_ino) {
		close(fd);
		errno = EEXIST;
		return -1;
	}
	return fd;
}

/* Bytes put into files, the complete indexes the sync thread wrote included: what the quota counts. */
static inline uint64_t appended(const struct writer *w)
{
	return w->appended_bytes + __atomic_load_n(&w->index_async_bytes, __ATOMIC_RELAXED) +
	       __atomic_load_n(&w->flow_async_bytes, __ATOMIC_RELAXED);
}

static void index_drop(struct writer *w, int remove)
{
	if (w->idx_fd >= 0)
		close(w->idx_fd);
	if (remove && (w->idx_fd >= 0 || w->idx_len))
		unlink(w->idx_path);
	w->idx_fd = -1;
	w->idx_len = 0;
	qe_idx_builder_free(w->idx);
	w->idx = NULL;
}

/* The open file goes on without an index (a reader scans it): capture never waits for one. */
static void index_failed(struct writer *w, const char *what, int err)
{
	uint64_t now = now_monotonic_ns();
	if (!w->last_index_error_ns || now - w->last_index_error_ns >= 1000000000u) {
		w->last_index_error_ns = now;
		send_error(w->cfg.iface, "index_failed", 0, "%s %s: %s (the file is written without an index and scanned until it is indexed again)",
			   what, w->idx_path, strerror(err));
	}
	index_drop(w, 1);
}

static void index_open(struct writer *w)
{
	if (!w->cfg.index_fields)
		return;
	snprintf(w->idx_path, sizeof w->idx_path, "%s%s", w->part_path, QE_IDX_EXT);
	w->idx = qe_idx_builder_new(w->cfg.index_fields, w->cfg.index_block_size, w->cfg.linktype);
	if (!w->idx)
		index_failed(w, "cannot build", ENOMEM);
}

static int pwrite_all(struct writer *w, int fd, const unsigned char *p, size_t len, uint64_t off, int *err);

/* After the records reached the file: the next segment of its index, so they are found through it. */
static void index_flush(struct writer *w)
{
	if (!w->idx || !qe_idx_pending_records(w->idx))
		return;
	int err;
	if (w->idx_fd < 0) {
		unsigned char h[QE_IDX_HEADER_LEN];
		w->idx_fd = open(w->idx_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (w->idx_fd < 0)
			return index_failed(w, "cannot create", errno);
		qe_idx_header(w->idx, 0, h);
		if (pwrite_all(w, w->idx_fd, h, sizeof h, 0, &err) < 0)
			return index_failed(w, "cannot write", err);
		w->idx_len = sizeof h;
		w->index_bytes += sizeof h;
		w->appended_bytes += sizeof h;
		w->counted_appended += sizeof h;
	}
	w->idx_out.len = 0;
	if (qe_idx_next_segment(w->idx, &w->idx_out) < 0)
		return index_failed(w, "out of memory for", ENOMEM);
	if (pwrite_all(w, w->idx_fd, w->idx_out.p, w->idx_out.len, w->idx_len, &err) < 0)
		return index_failed(w, "cannot write", err);
	w->idx_len += w->idx_out.len;
	w->index_bytes += w->idx_out.len;
	/* Index bytes count for the quota, not as written packets' bytes. */
	w->appended_bytes += w->idx_out.len;
	w->counted_appended += w->idx_out.len;
}

static void flows_drop(struct writer *w, int remove)
{
	if (w->flow_fd >= 0)
		close(w->flow_fd);
	if (remove && (w->flow_fd >= 0 || w->flow_len))
		unlink(w->flow_path);
	w->flow_fd = -1;
	w->flow_len = 0;
	qe_flow_builder_free(w->flows);
	w->flows = NULL;
}

/* As for the index: the open file goes on without a flow table (a reader counts its packets). */
static void flows_failed(struct writer *w, const char *what, int err)
{
	uint64_t now = now_monotonic_ns();
	if (!w->last_flow_error_ns || now - w->last_flow_error_ns >= 1000000000u) {
		w->last_flow_error_ns = now;
		send_error(w->cfg.iface, "flows_failed", 0,
			   "%s %s: %s (the file is written without a flow table; its flows are counted from its packets until it is built again)",
			   what, w->flow_path, strerror(err));
	}
	flows_drop(w, 1);
}

static void flows_open(struct writer *w)
{
	if (!w->cfg.flows)
		return;
	snprintf(w->flow_path, sizeof w->flow_path, "%s%s", w->part_path, QE_FLOW_EXT);
	w->flows = qe_flow_builder_new(w->cfg.linktype);
	w->flows_made++;
	if (!w->flows)
		flows_failed(w, "cannot build", ENOMEM);
}

/* After the records reached the file: the next segment of its flow table (the index's way). */
static void flows_flush(struct writer *w)
{
	if (!w->flows || !qe_flow_pending_packets(w->flows))
		return;
	int err;
	if (w->flow_fd < 0) {
		unsigned char h[QE_FLOW_HEADER_LEN];
		w->flow_fd = open(w->flow_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (w->flow_fd < 0)
			return flows_failed(w, "cannot create", errno);
		qe_flow_header(w->flows, 0, h);
		if (pwrite_all(w, w->flow_fd, h, sizeof h, 0, &err) < 0)
			return flows_failed(w, "cannot write", err);
		w->flow_len = sizeof h;
		w->flow_bytes += sizeof h;
		w->appended_bytes += sizeof h;
		w->counted_appended += sizeof h;
	}
	w->flow_out.len = 0;
	if (qe_flow_next_segment(w->flows, &w->flow_out) < 0)
		return flows_failed(w, "out of memory for", ENOMEM);
	if (pwrite_all(w, w->flow_fd, w->flow_out.p, w->flow_out.len, w->flow_len, &err) < 0)
		return flows_failed(w, "cannot write", err);
	w->flow_len += w->flow_out.len;
	w->flow_bytes += w->flow_out.len;
	w->appended_bytes += w->flow_out.len;
	w->counted_appended += w->flow_out.len;
}

/* The open file's tables, as a record goes to them (table-feed.h). */
static inline struct qe_tables tables_of(const struct writer *w)
{
	return (struct qe_tables){ w->idx, w->flows, w->elems, w->flows_made, w->cfg.linktype };
}

/* A packet captured but not written (store full, a refused write) still counts for its elements:
 * they describe the network, not the store. */
static void elements_only(struct writer *w, uint64_t ts_ns, uint32_t caplen, uint32_t origlen, const unsigned char *data)
{
	if (!w->elems)
		return;
	if (caplen > w->cfg.snaplen)
		caplen = w->cfg.snaplen;
	struct qe_packet_fields f;
	qe_packet_parse(w->cfg.linktype, data, caplen, 0, &f);
	qe_elements_add(w->elems, ts_ns, caplen, origlen, data, &f, 0, QE_FLOW_REF_NONE);
}

void writer_set_elements(struct writer *w, struct qe_elements *elems)
{
	w->elems = elems;
}

static int writer_open_file(struct writer *w, uint64_t ts_ns)
{
	uint64_t now = now_monotonic_ns();
	if (w->open_retry_after_ns && now < w->open_retry_after_ns)
		return -1;
	const char *dir = pick_dir(w);
	int fd = -1;
	format_base(w->final_base, sizeof w->final_base, dir, w->iface_name, ts_ns);
	for (int n = 0; n < 1000 && fd < 0; n++) {
		if (n == 0)
			snprintf(w->part_path, sizeof w->part_path, "%s.pcap.part", w->final_base);
		else
			snprintf(w->part_path, sizeof w->part_path, "%s~%d.pcap.part", w->final_base, n);
		w->collision = n;
		fd = open_part(w->part_path);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		report_write_error(w, w->part_path, errno);
		w->open_retry_after_ns = now + 1000000000u;
		return -1;
	}
	w->open_retry_after_ns = 0;
	w->fd = fd;
	/* A filesystem without O_DIRECT (some tmpfs, FUSE) simply gets buffered writes. */
	w->dfd = w->cfg.direct ? open(w->part_path, O_WRONLY | O_DIRECT | O_CLOEXEC) : -1;
	w->buf_counted = 0;
	w->counted_end = 0;
	w->first_ns = w->last_ns = ts_ns;
	w->file_bytes = 0;
	w->file_packets = 0;
	w->file_min_ns = UINT64_MAX;
	w->file_max_ns = w->file_prev_ns = 0;
	w->file_sorted = 1;
	w->file_span_lost = 0;

	uint32_t hdr[6] = { QE_PCAP_MAGIC_NANO, 2u | (4u << 16), 0, 0, w->cfg.snaplen, w->cfg.linktype };
	memcpy(w->buf, hdr, sizeof hdr);
	w->buf_len = PCAP_GLOBAL_LEN;
	w->buf_packets = 0;
	w->appended_bytes += PCAP_GLOBAL_LEN;
	index_open(w);
	flows_open(w);

	struct msg m;
	msg_begin(&m, "file_opened", w->cfg.iface);
	msg_str(&m, "path", w->part_path);
	msg_ns(&m, "first_ns", ts_ns);
	msg_send(&m);
	return 0;
}

/* Every write (a failed one may have written part) leaves something for the next sync round. */
static int pwrite_all(struct writer *w, int fd, const unsigned char *p, size_t len, uint64_t off, int *err)
{
	size_t done = 0;
	int rc = 0;
	copy_fence();
	while (done < len) {
		ssize_t n = pwrite(fd, p + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*err = n < 0 ? errno : ENOSPC;
			rc = -1;
			break;
		}
		done += (size_t)n;
	}
	__atomic_store_n(&w->syncer->dirty, 1, __ATOMIC_RELEASE);
	return rc;
}

/* Cut off what a failed write may have left past what is known good, and keep the buffer: the retention
 * frees room (circular) or an operator does, and the next try writes it again whole. */
static void write_failed(struct writer *w, int err, uint64_t now)
{
	/* A tail written at the last flush stays: a failed write over it rewrote the same bytes. */
	if (ftruncate(w->fd, (off_t)(w->file_bytes + w->buf_counted)) != 0)
		err = errno;
	report_write_error(w, w->part_path, err);
	w->write_retry_after_ns = now + 100000000u;
	w->file_span_lost = 1;
}

/* Records of times [min, max], from first to last, in order or not, went into the open file. */
static inline void note_span(struct writer *w, uint64_t first, uint64_t last, uint64_t min, uint64_t max, int sorted)
{
	if (!sorted || first < w->file_prev_ns)
		w->file_sorted = 0;
	if (min < w->file_min_ns)
		w->file_min_ns = min;
	if (max > w->file_max_ns)
		w->file_max_ns = max;
	w->file_prev_ns = last;
}

/* Direct mode: the block-aligned front of the buffer goes to the disk without a page-cache copy;
 * the rest (less than a block) moves to the front of the buffer. */
static int write_aligned(struct writer *w, uint64_t now)
{
	size_t aligned = w->buf_len & ~(size_t)(DIRECT_ALIGN - 1);
	if (aligned == 0)
		return 0;
	int err;
	if (pwrite_all(w, w->dfd, w->buf, aligned, w->file_bytes, &err) < 0) {
		write_failed(w, err, now);
		return -1;
	}
	memmove(w->buf, w->buf + aligned, w->buf_len - aligned);
	w->buf_len -= aligned;
	w->file_bytes += aligned;
	w->buf_counted = w->buf_counted > aligned ? w->buf_counted - aligned : 0;
	return 0;
}

static int may_write(struct writer *w, uint64_t now)
{
	return w->fd >= 0 && !(w->write_retry_after_ns && now < w->write_retry_after_ns);
}

static int flush_buffer(struct writer *w);

void writer_drain(struct writer *w)
{
	uint64_t now = now_monotonic_ns();
	if (w->dfd < 0)
		flush_buffer(w);
	else if (may_write(w, now) && write_aligned(w, now) == 0)
		w->write_retry_after_ns = 0;
}

/* Pushes the buffered records into the file; 0 when every record added so far is in it. */
static int flush_buffer(struct writer *w)
{
	if (w->fd < 0)
		return -1;
	if (w->buf_packets == 0)
		return 0;
	uint64_t now = now_monotonic_ns();
	if (!may_write(w, now))
		return -1;
	if (w->dfd >= 0 && write_aligned(w, now) < 0)
		return -1;
	/* What is left (all of it in buffered mode, a partial block in direct mode) goes through the
	 * page cache, so that a crash of this process loses nothing flushed. */
	int err;
	if (pwrite_all(w, w->fd, w->buf, w->buf_len, w->file_bytes, &err) < 0) {
		write_failed(w, err, now);
		return -1;
	}
	if (w->dfd < 0) {
		w->file_bytes += w->buf_len;
		w->buf_len = 0;
	} else {
		w->buf_counted = w->buf_len; /* rewritten with the next aligned block */
	}
	w->write_retry_after_ns = 0;
	w->counted_end = w->file_bytes + w->buf_counted;
	w->file_packets += w->buf_packets;
	w->written += w->buf_packets;
	w->written_bytes += w->appended_bytes - w->counted_appended;
	w->counted_appended = w->appended_bytes;
	w->last_ns = w->buf_last_ns;
	w->buf_packets = 0;
	return 0;
}

/* The index gets a segment per flush interval, not per buffer written: a segment repeats the keys
 * of its records, so fewer, larger ones keep the open file's index small. */
void writer_flush(struct writer *w)
{
	if (flush_buffer(w) == 0) {
		index_flush(w);
		flows_flush(w);
	}
}

int writer_add_run(struct writer *w, const unsigned char *records, size_t len, uint64_t packets, const struct writer_span *span)
{
	uint64_t now = now_monotonic_ns();
	flush_buffer(w);
	if (w->buf_packets)
		return -1; /* the buffer could not be written: the records queue behind it */
	int err;
	/* A file just opened holds only its header in the buffer, which writer_flush leaves there. */
	if (w->buf_len) {
		if (pwrite_all(w, w->fd, w->buf, w->buf_len, w->file_bytes, &err) < 0) {
			write_failed(w, err, now);
			return -1;
		}
		w->file_bytes += w->buf_len;
		w->buf_len = 0;
	}
	if (pwrite_all(w, w->fd, records, len, w->file_bytes, &err) < 0) {
		write_failed(w, err, now);
		return -1;
	}
	if (w->idx || w->flows || w->elems) {
		struct qe_tables_batch batch = { .t = tables_of(w) };
		for (size_t off = 0; off < len;) {
			struct qe_pcap_record r;
			qe_pcap_record_decode(records + off, 0, &r);
			qe_tables_batch_add(&batch, w->file_bytes + off, qe_pcap_record_ns(&r, 1), r.caplen, r.origlen,
					    records + off + PCAP_RECORD_LEN);
			off += PCAP_RECORD_LEN + r.caplen;
		}
		qe_tables_flush(&batch); /* the records are the caller's: in the tables before returning */
	}
	w->file_bytes += len;
	w->counted_end = w->file_bytes;
	w->appended_bytes += len;
	w->file_packets += packets;
	w->written += packets;
	w->written_bytes += w->appended_bytes - w->counted_appended;
	w->counted_appended = w->appended_bytes;
	w->last_ns = w->buf_last_ns = span->last_ns;
	note_span(w, span->first_ns, span->last_ns, span->min_ns, span->max_ns, span->sorted);
	return 0;
}

static void writer_close_file(struct writer *w)
{
	if (w->fd < 0)
		return;
	w->write_retry_after_ns = 0;
	writer_flush(w);
	int torn = 0;
	if (w->buf_packets) {
		/* The disk still refuses: these packets are lost, and counted. In direct mode the file
		 * may end inside a record (the aligned front of one); the sync thread cuts it. */
		w->writer_drops += w->buf_packets;
		w->file_span_lost = 1; /* the span counted them */
		w->appended_bytes = w->counted_appended;
		w->buf_len = w->buf_counted;
		torn = w->dfd >= 0;
		/* Its builders hold records the file does not: the file is indexed again from disk. */
		index_drop(w, 1);
		flows_drop(w, 1);
	}
	struct closed_file *c = calloc(1, sizeof *c);
	if (!c) {
		index_drop(w, 1);
		flows_drop(w, 1);
	}
	if (w->idx_fd >= 0) {
		close(w->idx_fd);
		w->idx_fd = -1;
	}
	if (w->flow_fd >= 0) {
		close(w->flow_fd);
		w->flow_fd = -1;
	}
	if (!c) {
		if (w->dfd >= 0)
			close(w->dfd);
		close(w->fd);
		w->fd = w->dfd = -1;
		return;
	}
	c->fd = w->fd;
	c->dfd = w->dfd;
	c->torn = torn;
	c->counted_bytes = w->counted_end;
	snprintf(c->part, sizeof c->part, "%s", w->part_path);
	snprintf(c->base, sizeof c->base, "%s", w->final_base);
	c->collision = w->collision;
	c->first_ns = w->first_ns;
	c->last_ns = w->last_ns;
	c->min_ns = w->file_min_ns;
	c->max_ns = w->file_max_ns;
	c->sorted = w->file_sorted;
	c->span_known = !w->file_span_lost && w->file_packets > 0; /* a torn file lost its span with its buffer */
	c->packets = w->file_packets;
	c->bytes = w->file_bytes + w->buf_len;
	c->idx = w->idx;
	if (w->idx_len)
		snprintf(c->idx_part, sizeof c->idx_part, "%s", w->idx_path);
	w->idx = NULL;
	w->idx_len = 0;
	c->flows = w->flows;
	if (w->flow_len)
		snprintf(c->flow_part, sizeof c->flow_part, "%s", w->flow_path);
	w->flows = NULL;
	w->flow_len = 0;

	struct syncer *s = w->syncer;
	pthread_mutex_lock(&s->mu);
	if (s->tail)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);

	w->fd = w->dfd = -1;
	w->buf_len = 0;
	w->buf_counted = 0;
	w->buf_packets = 0;
}

void writer_set_store_full(struct writer *w)
{
	if (w->store_full)
		return;
	writer_close_file(w);
	w->store_full = 1;
	send_error(w->cfg.iface, "store_full", 0, "the store is full (linear mode): packets are counted, not written");
}

void writer_set_quota(struct writer *w, uint64_t quota)
{
	w->quota = quota;
	w->quota_low_water = quota > appended(w) ? (quota - appended(w)) / 2 : 0;
	w->quota_asked = 0;
	if (w->store_full && quota > appended(w) + PCAP_GLOBAL_LEN + PCAP_RECORD_LEN)
		w->store_full = 0;
}

/* Hot path: once per packet. */
void writer_add(struct writer *w, uint64_t ts_ns, uint32_t caplen, uint32_t origlen, const unsigned char *data)
{
	if (w->store_full) {
		w->store_full_drops++;
		elements_only(w, ts_ns, caplen, origlen, data);
		return;
	}
	if (caplen > w->cfg.snaplen)
		caplen = w->cfg.snaplen;
	size_t rec = PCAP_RECORD_LEN + (size_t)caplen;

	if (w->fd >= 0) {
		uint64_t in_file = w->file_bytes + w->buf_len;
		/* A file whose index or flow table holds all its builder may hold ends here, so every
		 * file has both. */
		int full = (in_file + rec > w->cfg.file_size || (w->idx && qe_idx_full(w->idx)) ||
			    (w->flows && qe_flow_full(w->flows))) &&
			   w->file_packets + w->buf_packets > 0;
		int aged = w->cfg.file_duration_ns && ts_ns >= w->first_ns &&
			   ts_ns - w->first_ns >= w->cfg.file_duration_ns;
		if (full || aged || qe_pcap_too_far(w->first_ns, ts_ns))
			writer_close_file(w);
	}
	if (appended(w) + rec + (w->fd < 0 ? PCAP_GLOBAL_LEN : 0) > w->quota) {
		writer_set_store_full(w);
		w->store_full_drops++;
		elements_only(w, ts_ns, caplen, origlen, data);
		return;
	}
	if (w->fd < 0 && writer_open_file(w, ts_ns) < 0) {
		w->writer_drops++;
		elements_only(w, ts_ns, caplen, origlen, data);
		return;
	}
	if (w->buf_len + rec > WRITER_BUF_SIZE) {
		writer_drain(w);
		if (w->buf_len + rec > WRITER_BUF_SIZE) {
			/* The disk refused the last write and the buffer is still waiting for room. */
			w->writer_drops++;
			elements_only(w, ts_ns, caplen, origlen, data);
			return;
		}
	}

	if (w->idx || w->flows || w->elems) {
		struct qe_tables t = tables_of(w);
		qe_tables_add(&t, w->file_bytes + w->buf_len, ts_ns, caplen, origlen, data);
	}
	note_span(w, ts_ns, ts_ns, ts_ns, ts_ns, 1);
	unsigned char *p = w->buf + w->buf_len;
	uint32_t hdr[4] = { (uint32_t)(ts_ns / 1000000000u), (uint32_t)(ts_ns % 1000000000u), caplen, origlen };
	memcpy(p, hdr, sizeof hdr);
	copy_packet(p + PCAP_RECORD_LEN, data, caplen);
	w->buf_len += rec;
	w->appended_bytes += rec;
	w->buf_packets++;
	w->buf_last_ns = ts_ns;
}

int writer_run_fits(const struct writer *w, uint64_t bytes, uint64_t ts_ns)
{
	return w->fd >= 0 && w->dfd < 0 && !w->store_full && !w->write_retry_after_ns &&
	       w->file_bytes + w->buf_len + bytes <= w->cfg.file_size && !qe_pcap_too_far(w->first_ns, ts_ns) &&
	       (!w->cfg.file_duration_ns ||
		(ts_ns >= w->first_ns && ts_ns - w->first_ns < w->cfg.file_duration_ns)) &&
	       appended(w) + bytes <= w->quota &&
	       /* a run near the flow bound goes record by record, so the file ends at the bound */
	       (!w->flows || qe_flow_room(w->flows, bytes / PCAP_RECORD_LEN));
}

void writer_tick(struct writer *w, uint64_t now_ns)
{
	if (w->fd >= 0 && w->cfg.file_duration_ns && now_ns > w->first_ns &&
	    now_ns - w->first_ns >= w->cfg.file_duration_ns)
		writer_close_file(w);
}

void writer_finish(struct writer *w)
{
	writer_close_file(w);
	struct syncer *s = w->syncer;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	/* Only now: the last round's syncfs covers the last files' renames and indexes. */
	pthread_mutex_lock(&s->mu);
	s->durable_stop = 1;
	pthread_cond_signal(&s->durable_cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->durable_thread, NULL);
	free(s);
	w->syncer = NULL;
}

void writer_free(struct writer *w)
{
	if (!w)
		return;
	index_drop(w, 0);
	qe_out_free(&w->idx_out);
	flows_drop(w, 0);
	qe_out_free(&w->flow_out);
	free(w->buf);
	free(w);
}

int writer_write_refused(const struct writer *w)
{
	return w->write_retry_after_ns && !w->store_full && appended(w) < w->quota;
}

int writer_retry_due(const struct writer *w, uint64_t now_ns)
{
	return w->write_retry_after_ns && now_ns >= w->write_retry_after_ns;
}

void writer_set_file_size(struct writer *w, uint64_t bytes)
{
	w->cfg.file_size = bytes;
}

void writer_set_file_duration_ns(struct writer *w, uint64_t ns)
{
	w->cfg.file_duration_ns = ns;
}

void writer_set_flush_ms(struct writer *w, uint64_t ms)
{
	if (ms)
		w->cfg.flush_ms = ms;
}

uint64_t writer_flush_ms(const struct writer *w)
{
	return w->cfg.flush_ms;
}

int writer_has_quota(const struct writer *w)
{
	return w->quota != UINT64_MAX;
}

int writer_short_of_quota(const struct writer *w, uint32_t caplen)
{
	uint64_t rec = PCAP_RECORD_LEN + (uint64_t)(caplen < w->cfg.snaplen ? caplen : w->cfg.snaplen) + PCAP_GLOBAL_LEN;
	return appended(w) + rec > w->quota;
}

int writer_wants_quota(struct writer *w)
{
	if (w->quota == UINT64_MAX || w->quota_asked)
		return 0;
	if (appended(w) + w->quota_low_water < w->quota)
		return 0;
	w->quota_asked = 1;
	return 1;
}

uint64_t writer_appended_bytes(const struct writer *w)
{
	return appended(w);
}

/* Records found in files cut after a failed write move from lost to written (the sync thread
 * adds them to the atomic recovered counters). */
void writer_stats(const struct writer *w, struct writer_stats *s)
{
	uint64_t recovered = __atomic_load_n(&w->recovered, __ATOMIC_RELAXED);
	s->written = w->written + recovered;
	s->written_bytes = w->written_bytes + __atomic_load_n(&w->recovered_bytes, __ATOMIC_RELAXED);
	s->lost = w->writer_drops - recovered;
	s->write_errors = w->write_errors;
	s->store_full_drops = w->store_full_drops;
	s->appended_bytes = appended(w);
	s->index_bytes = w->index_bytes + __atomic_load_n(&w->index_async_bytes, __ATOMIC_RELAXED);
	s->flow_bytes = w->flow_bytes + __atomic_load_n(&w->flow_async_bytes, __ATOMIC_RELAXED);
	s->open_file_bytes = w->fd >= 0 ? w->file_bytes + w->buf_len : 0;
	s->buffered_bytes = w->fd >= 0 ? w->buf_len : 0;
	s->store_full = w->store_full;
}
