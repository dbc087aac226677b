/* The pcap format rules every native part shares: what the files look like and what counts as a
 * whole, valid record. qe-capture (imports), writer.c (the cut after a torn write) and qe-extract
 * use these and nothing else; daemon/src/pcap/format.ts holds the same numbers and rules for the
 * daemon's repair and catalog, and test/pcap-format.test.ts fails when the two drift apart.
 *
 * "Largest plausible record": a reader takes a caplen up to the file's snaplen, but never less
 * than QE_PCAP_CAPLEN_FLOOR (libpcap and Wireshark take records that long whatever the header
 * says) and never more than QE_PCAP_CAPLEN_CEILING (no link carries a bigger frame, even with
 * GRO/BIG TCP; a longer length is garbage left by a crash or a damaged file). */
#ifndef QE_PCAP_FORMAT_H
#define QE_PCAP_FORMAT_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define QE_PCAP_MAGIC_MICRO 0xa1b2c3d4u
#define QE_PCAP_MAGIC_NANO 0xa1b23c4du
#define QE_PCAP_GLOBAL_LEN 24
#define QE_PCAP_RECORD_LEN 16
#define QE_PCAP_LINKTYPE_MASK 0x0fffffffu
/* libpcap's MAXIMUM_SNAPLEN: the largest snaplen the helper writes, and the caplen every reader
 * takes whatever the header's snaplen. */
#define QE_PCAP_CAPLEN_FLOOR 262144u
#define QE_PCAP_CAPLEN_CEILING (16u << 20)
#define QE_PCAP_NS_PER_S 1000000000u
/* The last instant a pcap record can hold (unsigned 32-bit seconds: 2106-02-07T06:28:15Z). */
#define QE_PCAP_MAX_TS_NS (0xffffffffull * QE_PCAP_NS_PER_S + (QE_PCAP_NS_PER_S - 1))
/* The writer starts a new file when a record is more than this before or after the file's first
 * (the time in its name), and a record of a crashed file dated outside [name - slack, max(name,
 * last write) + slack] is taken for stale data (blocks of a deleted file) rather than a record.
 * The zero-filled blocks a power loss can leave (length 0) are not valid records anyway. */
#define QE_PCAP_CLOCK_SLACK_NS (86400ull * QE_PCAP_NS_PER_S)

struct qe_pcap_global {
	int swapped; /* written on a machine of the other byte order */
	int nanos;
	uint32_t snaplen;
	uint32_t linktype;
};

struct qe_pcap_record {
	uint32_t sec, frac, caplen, origlen;
};

/* Decodes a global header (QE_PCAP_GLOBAL_LEN bytes); 0 when the magic is not pcap's. */
static inline int qe_pcap_global_decode(const unsigned char *p, struct qe_pcap_global *g)
{
	uint32_t magic, snaplen, linktype;
	memcpy(&magic, p, 4);
	memcpy(&snaplen, p + 16, 4);
	memcpy(&linktype, p + 20, 4);
	if (magic == QE_PCAP_MAGIC_MICRO || magic == QE_PCAP_MAGIC_NANO) {
		g->swapped = 0;
	} else if (__builtin_bswap32(magic) == QE_PCAP_MAGIC_MICRO || __builtin_bswap32(magic) == QE_PCAP_MAGIC_NANO) {
		g->swapped = 1;
		magic = __builtin_bswap32(magic);
		snaplen = __builtin_bswap32(snaplen);
		linktype = __builtin_bswap32(linktype);
	} else {
		return 0;
	}
	g->nanos = magic == QE_PCAP_MAGIC_NANO;
	g->snaplen = snaplen;
	g->linktype = linktype & QE_PCAP_LINKTYPE_MASK;
	return 1;
}

static inline void qe_pcap_record_decode(const unsigned char *p, int swapped, struct qe_pcap_record *r)
{
	uint32_t h[4];
	memcpy(h, p, sizeof h);
	if (swapped)
		for (int i = 0; i < 4; i++)
			h[i] = __builtin_bswap32(h[i]);
	r->sec = h[0];
	r->frac = h[1];
	r->caplen = h[2];
	r->origlen = h[3];
}

/* The largest caplen a reader takes in a file whose header says `snaplen` (see the top). */
static inline uint32_t qe_pcap_caplen_limit(uint32_t snaplen)
{
	uint32_t s = snaplen < QE_PCAP_CAPLEN_FLOOR ? QE_PCAP_CAPLEN_FLOOR : snaplen;
	return s > QE_PCAP_CAPLEN_CEILING ? QE_PCAP_CAPLEN_CEILING : s;
}

/* The record's instant; a fraction of a second or more carries into the seconds. */
static inline uint64_t qe_pcap_record_ns(const struct qe_pcap_record *r, int nanos)
{
	return (uint64_t)r->sec * QE_PCAP_NS_PER_S + (nanos ? (uint64_t)r->frac : (uint64_t)r->frac * 1000u);
}

/* What is wrong with a record, or NULL when it is valid: every record the helper writes is valid,
 * and the cut after a crash keeps valid records only. */
static inline const char *qe_pcap_record_problem(const struct qe_pcap_record *r, int nanos)
{
	if (r->frac >= (nanos ? QE_PCAP_NS_PER_S : 1000000u))
		return nanos ? "a nanosecond fraction of a second or more" : "a microsecond fraction of a second or more";
	if (r->origlen == 0)
		return "an original length of 0";
	if (r->caplen > r->origlen)
		return "a captured length greater than the original length";
	if (r->origlen > QE_PCAP_CAPLEN_CEILING)
		return "an original length beyond the largest plausible packet";
	return 0;
}

/* A whole record of a file (its header at `off`, the file `size` bytes long) that a crash cannot
 * have left: the test both the helper's cut and the daemon's repair apply, so they agree on where
 * a torn file ends. [lo_ns, hi_ns] is the file's plausible span (QE_PCAP_CLOCK_SLACK_NS). */
static inline int qe_pcap_record_whole(const struct qe_pcap_record *r, const struct qe_pcap_global *g, uint64_t off,
				       uint64_t size, uint64_t lo_ns, uint64_t hi_ns)
{
	if (r->caplen > qe_pcap_caplen_limit(g->snaplen) || off + QE_PCAP_RECORD_LEN + r->caplen > size)
		return 0;
	if (qe_pcap_record_problem(r, g->nanos))
		return 0;
	uint64_t ns = qe_pcap_record_ns(r, g->nanos);
	return ns >= lo_ns && ns <= hi_ns;
}

/* The span a crashed file's records must lie in (see QE_PCAP_CLOCK_SLACK_NS). */
static inline void qe_pcap_plausible_span(uint64_t name_ns, uint64_t written_ns, uint64_t *lo, uint64_t *hi)
{
	*lo = name_ns > QE_PCAP_CLOCK_SLACK_NS ? name_ns - QE_PCAP_CLOCK_SLACK_NS : 0;
	*hi = (written_ns > name_ns ? written_ns : name_ns) + QE_PCAP_CLOCK_SLACK_NS;
}

/* A record too far from a file's first to go into it: it starts a new file. */
static inline int qe_pcap_too_far(uint64_t first_ns, uint64_t ns)
{
	return ns + QE_PCAP_CLOCK_SLACK_NS < first_ns || ns > first_ns + QE_PCAP_CLOCK_SLACK_NS;
}

/* Reads `len` bytes at `off` into `buf`; returns the bytes read (fewer at the end). */
typedef size_t (*qe_pcap_pread)(void *ctx, unsigned char *buf, size_t len, uint64_t off);

/* Walks the whole records of a file from the first one on and returns the offset just past the
 * last (QE_PCAP_GLOBAL_LEN when there is none, 0 when the global header is not pcap's); `packets`
 * gets their number. Only headers are read. */
uint64_t qe_pcap_whole_end(qe_pcap_pread rd, void *ctx, uint64_t size, uint64_t lo_ns, uint64_t hi_ns,
			   uint64_t *packets);

/* A link type libpcap and Wireshark can read back (a stored file of another type cannot be opened). */
int qe_pcap_linktype_known(uint32_t linktype);
#endif
