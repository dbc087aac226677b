#include "element-track.h"

#include <errno.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpf-run.h"
#include "element-format.h"
#include "field-parsers.h"
#include "flow-build.h"
#include "proto.h"
#include "linktype.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define SWEEP_EVERY_NS NS_PER_S
#define NIL 0u /* chains hold flow index + 1 */
#define PEND_PROGS 2

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* A flow's handshake as seen from the capture point. */
enum tcp_state {
	TCP_NONE = 0,       /* its first packet was not a SYN: not an attempt */
	TCP_PENDING = 1,    /* a SYN, nothing from the other end yet */
	TCP_ANSWERED = 2,   /* a SYN-ACK came back */
	TCP_UNANSWERED = 3, /* the SYN timeout passed first */
	TCP_REFUSED = 4,    /* an RST came before any SYN-ACK */
};

#define FF_INIT_A 1u    /* the SYN came from end a */
#define FF_RESET 2u     /* this attempt's reset is counted */
#define FF_ENDED 4u     /* a FIN or RST: the ends may open it again with a new SYN */
#define FF_FREE 8u      /* forgotten: on the free list (take_flow clears it) */

/* Most flows' packets need nothing but their counts: no handshake to follow (not TCP, or a TCP
 * packet without SYN, FIN or RST, which moves no state of follow_tcp) and no field parser that may
 * answer on the flow's protocol and ports (may_answer, asked once). Those take a short path. */
enum quiet {
	QUIET_NO = 0,      /* every packet takes the whole path */
	QUIET_COUNT = 1,   /* of some element, counted in the flow: its packets only add to it */
	QUIET_NOBODY = 2,  /* of no element: its packets only keep it alive */
};

/* What a packet of a known flow touches is in the first cache line (the link, the state, the time,
 * the element bits of a set of up to 64 elements, the counts pending for its elements); the key,
 * read by a lookup, and the SYN times, read on handshake packets, are in the second. */
struct flow {
	uint32_t next; /* NIL, or the next flow of the bucket (+1); the free list too */
	uint8_t tcp, flags;
	/* What the flow's packets added to each of its elements since the last fold (fold_pending):
	 * counted here rather than in every element's counters. The custom filters' matches are
	 * counted per distinct filter of the flow's elements (PEND_PROGS at most; a flow of more
	 * counts into its elements directly, `direct`). */
	uint8_t pending, direct;
	uint64_t last_ns;
	uint64_t mask0; /* the element bits when there are at most 64 elements (else in masks[]) */
	uint64_t pend_bytes;
	uint32_t pend_packets;
	uint16_t prog[PEND_PROGS];
	uint32_t prog_hits[PEND_PROGS];
	uint8_t nprogs;
	uint8_t quiet; /* enum quiet: what its packets need, decided on its first */
	struct key {
		/* The ends, each an address as the words its bytes load into (IPv4 zero-padded), a before
		 * b in the order of those words (any fixed order will do), then w: IP version, protocol and
		 * the ports of a and b. Words compare and hash without a byte loop or a library call. */
		uint64_t a0, a1, b0, b1, w;
	} k __attribute__((aligned(64)));
	uint64_t syn_first_ns; /* the attempt's first SYN: the timeout runs from it */
	uint64_t syn_last_ns;  /* its latest SYN: the one a SYN-ACK most likely answers */
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct flow) == 128, "a flow is two cache lines, the packet's first");

struct counters {
	/* What a packet counted into its elements directly (a flow of many custom filters, or with the
	 * table full) adds to first: with the element's custom filter indexes before them, one cache
	 * line (up to two custom filters). */
	uint64_t packets, bytes, last_ns;
	uint64_t custom[QE_ELEM_MAX_CUSTOM];
	uint64_t tcp_attempts, tcp_answered, tcp_unanswered, tcp_reset;
	uint64_t answers[QE_FIELD_PARSERS_MAX], errors[QE_FIELD_PARSERS_MAX];
	uint64_t rtt[QE_ELEM_RTT_BUCKETS];
};

struct element {
	uint32_t ncustom;
	int inline_run; /* its filter passed qe_bpf_usable: qe_bpf_run runs it, else libpcap */
	uint16_t cprog[QE_ELEM_MAX_CUSTOM]; /* its custom filters: indexes in qe_elements.progs */
	struct counters c;
	struct bpf_program prog;
} __attribute__((aligned(64)));

/* A custom filter, compiled once however many elements give the same text: a packet of several
 * of them is filtered once (the verdict is kept for the packet, by its sequence number). */
struct custom_prog {
	uint64_t seq;                 /* the packet the verdict is for */
	int verdict;
	char *text;
	size_t len;
	struct bpf_program prog;
};

/* What running a custom filter on a packet reads: its instructions (a copy in qe_elements.insns,
 * every filter's in one place) and who runs them. */
struct prog_run {
	const struct bpf_insn *insns;
	int inline_run; /* qe_bpf_usable: qe_bpf_run runs it, else libpcap */
};

struct qe_elements {
	/* What every packet reads first, in one cache line. */
	unsigned n;
	unsigned words;     /* mask words per flow */
	struct flow *flows; /* in flows_mem, on a cache line boundary */
	uint64_t now_ns;    /* the latest time seen */
	uint64_t next_sweep_ns;
	/* The open file's flow table (flow-build.h) finds each packet's flow already: its flows map to
	 * this table's, so a packet of a known flow costs an array read here, not a second lookup.
	 * By the flow table's flow index: this table's flow + 1 and, in the top bit, whether the flow
	 * table's end b is this table's end a; 0 not known yet. The map belongs to one flow table
	 * (via_file) and is forgotten when a sweep forgets any flow (its entries could name it). */
	uint32_t *via;
	uint32_t via_cap, via_used;
	uint64_t via_file;
	struct prog_run *run; /* by custom filter, in `insns` */
	/* The rest. */
	uint32_t *dirty __attribute__((aligned(64))); /* flows with pending counts */
	struct custom_prog *progs;
	uint32_t ndirty;
	struct element *el;
	void *flows_mem;
	uint64_t *masks;  /* words per flow, by flow index, when more than one (flow_mask) */
	uint32_t *bucket; /* QE_ELEM_TRACK_FLOWS chains */
	uint32_t used;    /* flows ever taken from the array (the rest is untouched memory) */
	uint32_t free;    /* list of forgotten flows */
	unsigned nprogs;
	void *insns; /* `run`, then every custom filter's instructions side by side */
	uint64_t seq; /* packets of some element so far */
} __attribute__((aligned(64)));
_Static_assert(__builtin_offsetof(struct qe_elements, dirty) == 64, "a packet's fields in the first line");

#define VIA_B_IS_A 0x80000000u

/* ---- the elements file ---- */

static void fail(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void fail(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
{
	int n = line ? snprintf(err, errlen, "%s line %u: ", name, line) : snprintf(err, errlen, "%s: ", name);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* A decimal index at *p followed by a space; -1 otherwise. */
static long index_at(const char **p, const char *end)
{
	long v = 0;
	const char *s = *p;
	if (s >= end || *s < '0' || *s > '9')
		return -1;
	while (s < end && *s >= '0' && *s <= '9' && v < 100000)
		v = v * 10 + (*s++ - '0');
	if (s >= end || *s != ' ')
		return -1;
	*p = s + 1;
	return v;
}

static int compile(pcap_t *p, const char *expr, size_t len, struct bpf_program *prog, char *why, size_t whylen)
{
	char *s = strndup(expr, len);
	if (!s) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	int rc = pcap_compile(p, prog, s, 1, PCAP_NETMASK_UNKNOWN);
	if (rc != 0)
		snprintf(why, whylen, "filter '%.200s': %s", s, pcap_geterr(p));
	free(s);
	return rc;
}

/* The custom filters' instructions side by side: a packet's run through them reads a few lines,
 * not one allocation per filter. */
static int pack_programs(struct qe_elements *e)
{
	size_t n = 0;
	for (unsigned i = 0; i < e->nprogs; i++)
		n += e->progs[i].prog.bf_len;
	if (!n)
		return 0;
	/* What a flow's packet reads to run its filters (a prog_run each, then their instructions)
	 * in one block: for a few short filters, one cache line. */
	size_t head = e->nprogs * sizeof *e->run;
	if (!(e->insns = aligned_alloc(64, (head + n * sizeof(struct bpf_insn) + 63) / 64 * 64)))
		return -1;
	e->run = (struct prog_run *)e->insns;
	struct bpf_insn *at = (struct bpf_insn *)((char *)e->insns + head);
	for (unsigned i = 0; i < e->nprogs; i++) {
		memcpy(at, e->progs[i].prog.bf_insns, e->progs[i].prog.bf_len * sizeof *at);
		e->run[i] = (struct prog_run){ .insns = at, .inline_run = qe_bpf_usable(at, e->progs[i].prog.bf_len) };
		at += e->progs[i].prog.bf_len;
	}
	return 0;
}

struct qe_elements *qe_elements_parse(const char *text, size_t len, const char *name, uint32_t linktype, uint32_t snaplen,
				      char *err, size_t errlen)
{
	struct qe_elements *e = aligned_alloc(64, sizeof *e);
	if (e)
		memset(e, 0, sizeof *e);
	pcap_t *p = pcap_open_dead(qe_linktype_to_dlt(linktype), (int)snaplen);
	if (e)
		e->el = aligned_alloc(64, QE_ELEM_MAX * sizeof *e->el); /* a line per element's hot counters */
	if (!e || !p || !e->el || !(e->progs = calloc(QE_ELEM_MAX * QE_ELEM_MAX_CUSTOM, sizeof *e->progs))) {
		fail(err, errlen, name, 0, "out of memory");
		goto bad;
	}
	memset(e->el, 0, QE_ELEM_MAX * sizeof *e->el);
	const char *s = text, *end = text + len;
	unsigned line = 0;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		if (!nl) {
			fail(err, errlen, name, line + 1, "no newline at the end: the file is cut short");
			goto bad;
		}
		line++;
		const char *l = s;
		size_t ll = (size_t)(nl - s);
		s = nl + 1;
		char why[512];
		if (line == 1) {
			char want[32];
			int wl = snprintf(want, sizeof want, "%s %d", QE_ELEM_FILE_MAGIC, QE_ELEM_FILE_VERSION);
			if (ll != (size_t)wl || memcmp(l, want, ll) != 0) {
				fail(err, errlen, name, line, "not an elements file of version %d (the first line must be '%s')",
				     QE_ELEM_FILE_VERSION, want);
				goto bad;
			}
			continue;
		}
		const char *q = l, *lend = l + ll;
		if (ll > 8 && memcmp(l, "element ", 8) == 0) {
			q += 8;
			long i = index_at(&q, lend);
			if (i != (long)e->n) {
				fail(err, errlen, name, line, "expected 'element %u FILTER'", e->n);
				goto bad;
			}
			if (e->n == QE_ELEM_MAX) {
				fail(err, errlen, name, line, "more than %d elements", QE_ELEM_MAX);
				goto bad;
			}
			if ((size_t)(lend - q) > QE_ELEM_FILTER_MAX) {
				fail(err, errlen, name, line, "a filter longer than %d bytes", QE_ELEM_FILTER_MAX);
				goto bad;
			}
			if (compile(p, q, (size_t)(lend - q), &e->el[e->n].prog, why, sizeof why) != 0) {
				fail(err, errlen, name, line, "element %u: %s", e->n, why);
				goto bad;
			}
			e->el[e->n].inline_run = qe_bpf_usable(e->el[e->n].prog.bf_insns, e->el[e->n].prog.bf_len);
			e->n++;
		} else if (ll > 7 && memcmp(l, "custom ", 7) == 0) {
			q += 7;
			long i = index_at(&q, lend);
			struct element *el = i >= 0 && e->n && i == (long)e->n - 1 ? &e->el[i] : NULL;
			long k = el ? index_at(&q, lend) : -1;
			if (!el || k != (long)el->ncustom) {
				fail(err, errlen, name, line, "expected 'custom %u %u FILTER' (custom filters follow their element, in order)",
				     e->n ? e->n - 1 : 0, e->n ? e->el[e->n - 1].ncustom : 0);
				goto bad;
			}
			if (el->ncustom == QE_ELEM_MAX_CUSTOM) {
				fail(err, errlen, name, line, "more than %d custom filters for element %ld", QE_ELEM_MAX_CUSTOM, i);
				goto bad;
			}
			if ((size_t)(lend - q) > QE_ELEM_FILTER_MAX) {
				fail(err, errlen, name, line, "a filter longer than %d bytes", QE_ELEM_FILTER_MAX);
				goto bad;
			}
			size_t tl = (size_t)(lend - q);
			unsigned id = 0;
			while (id < e->nprogs && !(e->progs[id].len == tl && memcmp(e->progs[id].text, q, tl) == 0))
				id++;
			if (id == e->nprogs) {
				if (!(e->progs[id].text = strndup(q, tl))) {
					fail(err, errlen, name, line, "out of memory");
					goto bad;
				}
				e->progs[id].len = tl;
				e->nprogs++;
				if (compile(p, q, tl, &e->progs[id].prog, why, sizeof why) != 0) {
					fail(err, errlen, name, line, "element %ld custom filter %ld: %s", i, k, why);
					goto bad;
				}
			}
			el->cprog[el->ncustom++] = (uint16_t)id;
		} else {
			fail(err, errlen, name, line, "expected 'element I FILTER' or 'custom I K FILTER', got '%.60s'", l);
			goto bad;
		}
	}
	if (line == 0) {
		fail(err, errlen, name, 0, "empty (the first line must be '%s %d')", QE_ELEM_FILE_MAGIC, QE_ELEM_FILE_VERSION);
		goto bad;
	}
	pcap_close(p);
	if (pack_programs(e) < 0) {
		fail(err, errlen, name, 0, "out of memory");
		qe_elements_free(e);
		return NULL;
	}
	e->words = (e->n + 63) / 64;
	/* Zeroed pages the kernel hands out as flows are first used: the bound costs nothing unused.
	 * calloc, not aligned_alloc (which would need a memset of it all), placed on a line boundary
	 * by hand. */
	if (e->n && (!(e->flows_mem = calloc(1, (size_t)QE_ELEM_TRACK_FLOWS * sizeof *e->flows + 64)) ||
		     !(e->flows = (struct flow *)(((uintptr_t)e->flows_mem + 63) & ~(uintptr_t)63)) ||
		     (e->words > 1 && !(e->masks = calloc((size_t)QE_ELEM_TRACK_FLOWS * e->words, sizeof *e->masks))) ||
		     !(e->bucket = calloc(QE_ELEM_TRACK_FLOWS, sizeof *e->bucket)) ||
		     !(e->dirty = calloc(QE_ELEM_TRACK_FLOWS, sizeof *e->dirty)))) {
		fail(err, errlen, name, 0, "out of memory for the flow table");
		qe_elements_free(e);
		return NULL;
	}
	return e;
bad:
	if (p)
		pcap_close(p);
	qe_elements_free(e);
	return NULL;
}

/* Room for the largest valid file: every element with every custom filter at the longest. */
#define FILE_MAX ((size_t)QE_ELEM_MAX * (1 + QE_ELEM_MAX_CUSTOM) * (QE_ELEM_FILTER_MAX + 32) + 64)

struct qe_elements *qe_elements_load(const char *path, uint32_t linktype, uint32_t snaplen, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fail(err, errlen, path, 0, "%s", strerror(errno));
		return NULL;
	}
	char *buf = malloc(FILE_MAX + 1);
	size_t len = buf ? fread(buf, 1, FILE_MAX + 1, f) : 0;
	int read_error = ferror(f);
	fclose(f);
	struct qe_elements *e = NULL;
	if (!buf)
		fail(err, errlen, path, 0, "out of memory");
	else if (read_error)
		fail(err, errlen, path, 0, "read error");
	else if (len > FILE_MAX)
		fail(err, errlen, path, 0, "larger than any valid elements file (%zu bytes)", FILE_MAX);
	else
		e = qe_elements_parse(buf, len, path, linktype, snaplen, err, errlen);
	free(buf);
	return e;
}

void qe_elements_free(struct qe_elements *e)
{
	if (!e)
		return;
	if (e->el)
		for (unsigned i = 0; i < QE_ELEM_MAX; i++)
			pcap_freecode(&e->el[i].prog);
	if (e->progs)
		for (unsigned i = 0; i < e->nprogs; i++) {
			pcap_freecode(&e->progs[i].prog);
			free(e->progs[i].text);
		}
	free(e->progs);
	free(e->insns);
	free(e->el);
	free(e->flows_mem);
	free(e->masks);
	free(e->bucket);
	free(e->dirty);
	free(e->via);
	free(e);
}

unsigned qe_elements_count(const struct qe_elements *e)
{
	return e ? e->n : 0;
}

/* ---- the flow table ---- */

/* The packet's flow key; returns whether the packet was sent by end a. */
static inline int make_key(const struct qe_pf_ip *ip, struct key *k)
{
	uint64_t sp = 0, dp = 0, s0, s1, d0, d1;
	if (ip->has_ports == (QE_PF_SPORT | QE_PF_DPORT) && ip->frag != QE_PF_FRAG_LATER) {
		sp = ip->sport;
		dp = ip->dport;
	}
	size_t alen = ip->version == 4 ? 4 : 16;
	qe_pf_addr_words(ip->src, alen, &s0, &s1);
	qe_pf_addr_words(ip->dst, alen, &d0, &d1);
	int src_is_a = s0 != d0 ? s0 < d0 : s1 != d1 ? s1 < d1 : sp <= dp;
	uint64_t w = (uint64_t)ip->version | (uint64_t)(ip->has_proto ? ip->proto : 0) << 8;
	if (src_is_a) {
		k->a0 = s0, k->a1 = s1, k->b0 = d0, k->b1 = d1;
		k->w = w | sp << 16 | dp << 32;
	} else {
		k->a0 = d0, k->a1 = d1, k->b0 = s0, k->b1 = s1;
		k->w = w | dp << 16 | sp << 32;
	}
	return src_is_a;
}

static inline uint32_t hash_key(const struct key *k)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ k->w;
	h = (h ^ k->a0) * 0xff51afd7ed558ccdull;
	h = (h ^ k->b0 ^ (h >> 29)) * 0xc4ceb9fe1a85ec53ull;
	h = (h ^ k->a1) * 0xff51afd7ed558ccdull;
	h = (h ^ k->b1 ^ (h >> 29)) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 32;
	return (uint32_t)h & (QE_ELEM_TRACK_FLOWS - 1);
}

static inline int same(const struct key *x, const struct key *y)
{
	return ((x->a0 ^ y->a0) | (x->a1 ^ y->a1) | (x->b0 ^ y->b0) | (x->b1 ^ y->b1) | (x->w ^ y->w)) == 0;
}

static uint32_t take_flow(struct qe_elements *e)
{
	if (e->free) {
		uint32_t i = e->free - 1;
		e->free = e->flows[i].next;
		return i;
	}
	return e->used < QE_ELEM_TRACK_FLOWS ? e->used++ : UINT32_MAX;
}

/* A filter's verdict on a frame: by bpf-run.h for the programs it takes (all pcap_compile makes
 * but protochain's), by libpcap's interpreter for the others. */
static inline int run_program(int inline_run, const struct bpf_insn *insns, const uint8_t *data, uint32_t origlen, uint32_t caplen)
{
	return (inline_run ? qe_bpf_run(insns, data, origlen, caplen) : bpf_filter(insns, data, origlen, caplen)) != 0;
}

static inline int run_custom(const struct prog_run *r, const uint8_t *data, uint32_t origlen, uint32_t caplen)
{
	return run_program(r->inline_run, r->insns, data, origlen, caplen);
}

/* Which elements a flow belongs to: every element's filter on its first packet's frame. */
static void match(const struct qe_elements *e, uint64_t *mask, uint32_t caplen, uint32_t origlen, const uint8_t *data)
{
	memset(mask, 0, e->words * sizeof *mask);
	for (unsigned i = 0; i < e->n; i++)
		if (run_program(e->el[i].inline_run, e->el[i].prog.bf_insns, data, origlen, caplen))
			mask[i / 64] |= 1ull << (i % 64);
}

/* ---- counting ---- */

/* What a packet did to its flow's handshake, the same for each of the flow's elements. */
struct tcp_event {
	uint8_t attempt, answered, reset;
	int rtt_bucket; /* -1: none */
};

static unsigned rtt_bucket(uint64_t us)
{
	if (us < 1)
		us = 1;
	unsigned msb = 63u - (unsigned)__builtin_clzll(us);
	/* us < 2^47 keeps us << 16 in 64 bits; a longer round trip is in the last bucket anyway */
	if (msb >= 47)
		return QE_ELEM_RTT_BUCKETS - 1;
	uint64_t m = (us << 16) >> msb;
	unsigned b = QE_ELEM_RTT_PER_DOUBLING * msb + (m >= QE_ELEM_RTT_Q1) + (m >= QE_ELEM_RTT_Q2) + (m >= QE_ELEM_RTT_Q3);
	return b < QE_ELEM_RTT_BUCKETS ? b : QE_ELEM_RTT_BUCKETS - 1;
}

static void start_attempt(struct flow *fl, int src_is_a, uint64_t ts, struct tcp_event *ev)
{
	fl->tcp = TCP_PENDING;
	fl->flags = src_is_a ? FF_INIT_A : 0;
	fl->syn_first_ns = fl->syn_last_ns = ts;
	ev->attempt = 1;
}

static void follow_tcp(struct flow *fl, int src_is_a, uint8_t flags, uint64_t ts, int first, struct tcp_event *ev)
{
	int syn_only = (flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	int from_init = !!(fl->flags & FF_INIT_A) == src_is_a;
	if (first) {
		if (syn_only)
			start_attempt(fl, src_is_a, ts, ev);
		else
			fl->tcp = TCP_NONE;
	} else if (syn_only) {
		if (fl->tcp == TCP_PENDING && from_init) {
			fl->syn_last_ns = ts; /* a retransmission: the same attempt */
		} else if (fl->tcp == TCP_REFUSED || ((fl->tcp == TCP_ANSWERED) && (fl->flags & FF_ENDED))) {
			start_attempt(fl, src_is_a, ts, ev); /* the same ends, a new connection */
		}
	}
	if (fl->tcp == TCP_NONE)
		return;
	from_init = !!(fl->flags & FF_INIT_A) == src_is_a;
	if ((flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK) && !from_init && fl->tcp == TCP_PENDING) {
		fl->tcp = TCP_ANSWERED;
		ev->answered = 1;
		if (ts >= fl->syn_last_ns)
			ev->rtt_bucket = (int)rtt_bucket((ts - fl->syn_last_ns) / 1000);
	}
	if (flags & TCP_RST) {
		if (fl->tcp == TCP_PENDING)
			fl->tcp = TCP_REFUSED;
		if (!(fl->flags & FF_RESET) && fl->tcp != TCP_UNANSWERED) {
			fl->flags |= FF_RESET;
			ev->reset = 1;
		}
	}
	if (flags & (TCP_FIN | TCP_RST))
		fl->flags |= FF_ENDED;
}

/* Where the transport payload is, inside the frame and the datagram; 0 when there is none. */
static uint32_t payload(const struct qe_pf_ip *ip, const uint8_t *data, uint32_t caplen, uint32_t *len)
{
	uint32_t end = ip->end < caplen ? ip->end : caplen, at;
	if (!ip->l4_off || ip->frag == QE_PF_FRAG_LATER || ip->has_ports != (QE_PF_SPORT | QE_PF_DPORT))
		return 0;
	if (ip->proto == QE_IPPROTO_TCP) {
		if ((uint64_t)ip->l4_off + 13 > end)
			return 0;
		uint32_t doff = (uint32_t)(data[ip->l4_off + 12] >> 4) * 4;
		if (doff < 20)
			return 0;
		at = ip->l4_off + doff;
	} else if (ip->proto == QE_IPPROTO_UDP) {
		at = ip->l4_off + 8;
	} else {
		return 0;
	}
	if (at >= end)
		return 0;
	*len = end - at;
	return at;
}

static inline uint64_t *flow_mask(struct qe_elements *e, uint32_t fi)
{
	return e->words == 1 ? &e->flows[fi].mask0 : e->masks + (size_t)fi * e->words;
}

static void forget_via(struct qe_elements *e)
{
	if (e->via_used)
		memset(e->via, 0, (size_t)e->via_used * sizeof *e->via);
	e->via_used = 0;
}

static void count_unanswered(struct qe_elements *e, uint32_t fi)
{
	const uint64_t *mask = flow_mask(e, fi);
	for (unsigned w = 0; w < e->words; w++)
		for (uint64_t m = mask[w]; m; m &= m - 1)
			e->el[w * 64 + (unsigned)__builtin_ctzll(m)].c.tcp_unanswered++;
}

/* The flows' pending counts into their elements' counters. */
static void fold_pending(struct qe_elements *e)
{
	for (uint32_t d = 0; d < e->ndirty; d++) {
		uint32_t fi = e->dirty[d];
		struct flow *fl = &e->flows[fi];
		const uint64_t *mask = flow_mask(e, fi);
		for (unsigned w = 0; w < e->words; w++)
			for (uint64_t m = mask[w]; m; m &= m - 1) {
				struct element *el = &e->el[w * 64 + (unsigned)__builtin_ctzll(m)];
				struct counters *c = &el->c;
				c->packets += fl->pend_packets;
				c->bytes += fl->pend_bytes;
				if (fl->last_ns > c->last_ns)
					c->last_ns = fl->last_ns;
				for (unsigned x = 0; x < el->ncustom; x++)
					for (unsigned j = 0; j < fl->nprogs; j++)
						if (fl->prog[j] == el->cprog[x])
							c->custom[x] += fl->prog_hits[j];
			}
		fl->pend_packets = 0;
		fl->pend_bytes = 0;
		for (unsigned j = 0; j < fl->nprogs; j++)
			fl->prog_hits[j] = 0;
		fl->pending = 0;
	}
	e->ndirty = 0;
}

/* A new flow's distinct custom filters, over the elements it belongs to: counted in the flow when
 * they fit in it. */
static void flow_programs(const struct qe_elements *e, struct flow *fl, const uint64_t *mask)
{
	fl->nprogs = 0;
	fl->direct = 0;
	for (unsigned w = 0; w < e->words; w++)
		for (uint64_t m = mask[w]; m; m &= m - 1) {
			const struct element *el = &e->el[w * 64 + (unsigned)__builtin_ctzll(m)];
			for (unsigned x = 0; x < el->ncustom; x++) {
				unsigned j = 0;
				while (j < fl->nprogs && fl->prog[j] != el->cprog[x])
					j++;
				if (j < fl->nprogs)
					continue;
				if (fl->nprogs == PEND_PROGS) {
					fl->direct = 1;
					return;
				}
				fl->prog[fl->nprogs++] = el->cprog[x];
			}
		}
}

/* A flow's time has passed: its SYN's timeout counted; whether it is idle long enough to forget. */
static int expired(struct qe_elements *e, uint32_t fi, uint64_t now)
{
	const uint64_t timeout = QE_ELEM_SYN_TIMEOUT_MS * NS_PER_MS, idle = QE_ELEM_TRACK_IDLE_S * NS_PER_S;
	struct flow *fl = &e->flows[fi];
	if (fl->tcp == TCP_PENDING && now >= fl->syn_first_ns + timeout) {
		fl->tcp = TCP_UNANSWERED;
		count_unanswered(e, fi);
	}
	return now >= fl->last_ns + idle;
}

static void forget_flow(struct qe_elements *e, uint32_t *link, uint32_t fi)
{
	struct flow *fl = &e->flows[fi];
	*link = fl->next;
	fl->next = e->free;
	fl->flags |= FF_FREE;
	e->free = fi + 1;
}

/* SYNs past the timeout are counted unanswered; flows idle too long are forgotten. */
static void sweep(struct qe_elements *e, uint64_t now)
{
	e->next_sweep_ns = now + SWEEP_EVERY_NS;
	if (!e->used)
		return;
	fold_pending(e); /* a flow forgotten below has nothing pending */
	int freed = 0;
	/* Walk whichever is smaller, the flows ever used (a line each) or every chain: on a link of a
	 * few thousand flows the chains' half megabyte would be read, and evicted from the capture's
	 * caches, every second for nothing. */
	if ((size_t)e->used * 64 < (size_t)QE_ELEM_TRACK_FLOWS * sizeof *e->bucket) {
		for (uint32_t fi = 0; fi < e->used; fi++) {
			if ((e->flows[fi].flags & FF_FREE) || !expired(e, fi, now))
				continue;
			uint32_t *link = &e->bucket[hash_key(&e->flows[fi].k)];
			while (*link != fi + 1)
				link = &e->flows[*link - 1].next;
			forget_flow(e, link, fi);
			freed = 1;
		}
	} else {
		for (uint32_t b = 0; b < QE_ELEM_TRACK_FLOWS; b++) {
			uint32_t *link = &e->bucket[b];
			while (*link) {
				uint32_t fi = *link - 1;
				if (expired(e, fi, now)) {
					forget_flow(e, link, fi);
					freed = 1;
				} else {
					link = &e->flows[fi].next;
				}
			}
		}
	}
	/* A freed flow's number is given to the next new flow: the map from the flow table's flows
	 * must not lead there. Cleared once a sweep, not once a freed flow (it can be large). */
	if (freed)
		forget_via(e);
}

void qe_elements_tick(struct qe_elements *e, uint64_t now_ns)
{
	if (!e || !e->n || now_ns <= e->now_ns)
		return;
	e->now_ns = now_ns;
	sweep(e, now_ns);
}

/* The packet's flow in this table (its index, UINT32_MAX when the table is full), found by a
 * lookup; *first when the packet starts it. */
static uint32_t find_flow(struct qe_elements *e, const struct key *k, int *first)
{
	uint32_t h = hash_key(k);
	for (uint32_t i = e->bucket[h]; i; i = e->flows[i - 1].next)
		if (same(&e->flows[i - 1].k, k)) {
			*first = 0;
			return i - 1;
		}
	*first = 1;
	uint32_t fi = take_flow(e);
	if (fi == UINT32_MAX)
		return fi;
	struct flow *fl = &e->flows[fi];
	memset(fl, 0, sizeof *fl);
	fl->k = *k;
	fl->next = e->bucket[h];
	e->bucket[h] = fi + 1;
	return fi;
}

/* A new flow's enum quiet, from its elements and its key's protocol and ports. */
static uint8_t flow_quiet(const struct qe_elements *e, const struct flow *fl, const uint64_t *mask)
{
	uint64_t any = 0;
	for (unsigned w = 0; w < e->words; w++)
		any |= mask[w];
	if (!any)
		return QUIET_NOBODY;
	if (fl->direct)
		return QUIET_NO;
	uint8_t proto = (uint8_t)(fl->k.w >> 8);
	uint16_t pa = (uint16_t)(fl->k.w >> 16), pb = (uint16_t)(fl->k.w >> 32);
	for (unsigned p = 0; p < qe_field_parser_count; p++)
		if (!qe_field_parsers[p].may_answer || qe_field_parsers[p].may_answer(proto, pa, pb))
			return QUIET_NO;
	return QUIET_COUNT;
}

/* Whether this packet of a quiet flow can take the short path: it would not move follow_tcp. */
static inline int quiet_packet(const struct qe_pf_ip *ip)
{
	return !(ip->has_proto && ip->proto == QE_IPPROTO_TCP && ip->tcp_flags_ok && ip->has_ports == (QE_PF_SPORT | QE_PF_DPORT) &&
		 (ip->tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST)));
}

/* A packet of a flow counted in itself (not `direct`): its elements get it at the next fold. */
static inline void count_in_flow(struct qe_elements *e, struct flow *fl, uint32_t fi, uint32_t caplen, uint32_t origlen,
				 const uint8_t *data)
{
	if (!fl->pending) {
		fl->pending = 1;
		e->dirty[e->ndirty++] = fi;
	}
	fl->pend_packets++;
	fl->pend_bytes += origlen;
	for (unsigned j = 0; j < fl->nprogs; j++)
		fl->prog_hits[j] += run_custom(&e->run[fl->prog[j]], data, origlen, caplen);
}

/* The map entry of the flow table's flow `ref` names (grown as needed), or NULL. */
static inline uint32_t *via_slot(struct qe_elements *e, uint64_t file, uint32_t ref)
{
	if (ref == QE_FLOW_REF_NONE)
		return NULL;
	if (file != e->via_file) {
		forget_via(e);
		e->via_file = file;
	}
	uint32_t i = QE_FLOW_REF_FLOW(ref);
	if (i >= e->via_cap) {
		uint32_t cap = e->via_cap ? e->via_cap : 4096;
		while (cap <= i)
			cap *= 2;
		uint32_t *p = realloc(e->via, (size_t)cap * sizeof *p);
		if (!p)
			return NULL; /* counted by the lookup instead */
		memset(p + e->via_cap, 0, (size_t)(cap - e->via_cap) * sizeof *p);
		e->via = p;
		e->via_cap = cap;
	}
	if (i >= e->via_used)
		e->via_used = i + 1;
	return &e->via[i];
}

void qe_elements_add(struct qe_elements *e, uint64_t ts_ns, uint32_t caplen, uint32_t origlen, const uint8_t *data,
		     const struct qe_packet_fields *f, uint64_t flow_file, uint32_t flow_ref)
{
	if (!e->n)
		return;
	if (ts_ns > e->now_ns)
		e->now_ns = ts_ns;
	if (e->now_ns >= e->next_sweep_ns)
		sweep(e, e->now_ns);
	if (!f->nip || !f->ip[0].src || !f->ip[0].dst)
		return;
	const struct qe_pf_ip *ip = &f->ip[0];
	/* A fragment's flow in the flow table is its datagram's (with the ports), here it is keyed
	 * by what the fragment itself carries: fragments always take the lookup. */
	uint32_t *via = ip->frag == QE_PF_FRAG_NONE ? via_slot(e, flow_file, flow_ref) : NULL;
	uint32_t fi;
	int first = 0, src_is_a;
	if (via && *via) {
		fi = (*via & ~VIA_B_IS_A) - 1;
		src_is_a = (int)QE_FLOW_REF_FROM_B(flow_ref) == !!(*via & VIA_B_IS_A);
	} else {
		struct key k;
		src_is_a = make_key(ip, &k);
		fi = find_flow(e, &k, &first);
		if (via && fi != UINT32_MAX)
			*via = (fi + 1) | ((int)QE_FLOW_REF_FROM_B(flow_ref) == src_is_a ? VIA_B_IS_A : 0);
	}
	uint64_t spill[QE_ELEM_MAX / 64];
	uint64_t *mask = spill;
	struct flow *fl = NULL;
	if (fi != UINT32_MAX) {
		fl = &e->flows[fi];
		if (ts_ns > fl->last_ns)
			fl->last_ns = ts_ns;
		if (!first && fl->quiet != QUIET_NO && quiet_packet(ip)) {
			if (fl->quiet == QUIET_COUNT)
				count_in_flow(e, fl, fi, caplen, origlen, data);
			return;
		}
		mask = flow_mask(e, fi);
		if (first) {
			match(e, mask, caplen, origlen, data);
			flow_programs(e, fl, mask);
			fl->quiet = flow_quiet(e, fl, mask);
		}
	} else {
		match(e, mask, caplen, origlen, data); /* table full: this packet alone */
	}
	uint64_t any = 0;
	for (unsigned w = 0; w < e->words; w++)
		any |= mask[w];
	if (!any)
		return;

	struct tcp_event ev = { .rtt_bucket = -1 };
	uint8_t side = QE_FIELD_SIDE_UNKNOWN;
	if (fl && ip->has_proto && ip->proto == QE_IPPROTO_TCP && ip->tcp_flags_ok && ip->has_ports == (QE_PF_SPORT | QE_PF_DPORT)) {
		follow_tcp(fl, src_is_a, ip->tcp_flags, ts_ns, first, &ev);
		if (fl->tcp != TCP_NONE)
			side = !!(fl->flags & FF_INIT_A) == src_is_a ? QE_FIELD_SIDE_CLIENT : QE_FIELD_SIDE_SERVER;
	}
	uint8_t outcome[QE_FIELD_PARSERS_MAX] = { 0 };
	uint32_t plen = 0, poff = fl && fl->quiet != QUIET_NO ? 0 : payload(ip, data, caplen, &plen);
	if (poff) {
		struct qe_field_ctx ctx = { .payload = data + poff, .len = plen, .proto = ip->proto, .side = side,
					    .sport = ip->sport, .dport = ip->dport };
		for (unsigned p = 0; p < qe_field_parser_count; p++)
			outcome[p] = (uint8_t)qe_field_parsers[p].parse(&ctx);
	}
	int events = ev.attempt | ev.answered | ev.reset | (ev.rtt_bucket >= 0), fields = 0;
	for (unsigned p = 0; p < qe_field_parser_count; p++)
		fields |= outcome[p] != QE_FIELD_NONE;
	uint64_t seq = ++e->seq;
	int in_flow = fl && !fl->direct;
	if (in_flow) {
		count_in_flow(e, fl, fi, caplen, origlen, data);
		if (!events && !fields)
			return;
	}
	for (unsigned w = 0; w < e->words; w++)
		for (uint64_t m = mask[w]; m; m &= m - 1) {
			struct element *el = &e->el[w * 64 + (unsigned)__builtin_ctzll(m)];
			struct counters *c = &el->c;
			if (!in_flow) {
				c->packets++;
				c->bytes += origlen;
				if (ts_ns > c->last_ns)
					c->last_ns = ts_ns;
				for (unsigned x = 0; x < el->ncustom; x++) {
					struct custom_prog *cp = &e->progs[el->cprog[x]];
					if (cp->seq != seq) {
						cp->seq = seq;
						cp->verdict = run_custom(&e->run[el->cprog[x]], data, origlen, caplen);
					}
					c->custom[x] += (uint64_t)cp->verdict;
				}
			}
			/* Most packets end no handshake and carry no field a parser reads: their counters
			 * stay untouched (and out of the cache). */
			if (events) {
				c->tcp_attempts += ev.attempt;
				c->tcp_answered += ev.answered;
				c->tcp_reset += ev.reset;
				if (ev.rtt_bucket >= 0)
					c->rtt[ev.rtt_bucket]++;
			}
			if (fields)
				for (unsigned p = 0; p < qe_field_parser_count; p++) {
					c->answers[p] += outcome[p] != QE_FIELD_NONE;
					c->errors[p] += outcome[p] == QE_FIELD_ERROR;
				}
		}
}

/* ---- the message ---- */

struct out {
	char *p;
	size_t len, cap;
	int failed;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void outf(struct out *o, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = o->failed ? -1 : vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		char *q = realloc(o->p, o->cap * 2 + (size_t)n);
		if (!q) {
			o->failed = 1;
			return;
		}
		o->p = q;
		o->cap = o->cap * 2 + (size_t)n;
	}
}

void qe_elements_report(struct qe_elements *e, const char *iface, uint64_t generation)
{
	fold_pending(e);
	struct msg head;
	msg_begin(&head, "elements", iface);
	msg_u64(&head, "generation", generation);
	struct out o = { .cap = head.len + 512 * (size_t)(e->n + 1) };
	if (!(o.p = malloc(o.cap)))
		return;
	outf(&o, "%.*s,\"elements\":[", (int)head.len, head.buf);
	for (unsigned i = 0; i < e->n; i++) {
		const struct counters *c = &e->el[i].c;
		outf(&o,
		     "%s{\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"last_ns\":\"%" PRIu64 "\",\"tcp_attempts\":%" PRIu64
		     ",\"tcp_answered\":%" PRIu64 ",\"tcp_unanswered\":%" PRIu64 ",\"tcp_reset\":%" PRIu64 ",\"rtt_hist\":[",
		     i ? "," : "", c->packets, c->bytes, c->last_ns, c->tcp_attempts, c->tcp_answered, c->tcp_unanswered,
		     c->tcp_reset);
		int firstb = 1;
		for (unsigned b = 0; b < QE_ELEM_RTT_BUCKETS; b++)
			if (c->rtt[b]) {
				outf(&o, "%s[%u,%" PRIu64 "]", firstb ? "" : ",", b, c->rtt[b]);
				firstb = 0;
			}
		outf(&o, "]");
		for (unsigned p = 0; p < qe_field_parser_count; p++)
			outf(&o, ",\"%s\":%" PRIu64 ",\"%s\":%" PRIu64, qe_field_parsers[p].answers_key, c->answers[p],
			     qe_field_parsers[p].errors_key, c->errors[p]);
		outf(&o, ",\"custom\":[");
		for (unsigned x = 0; x < e->el[i].ncustom; x++)
			outf(&o, "%s%" PRIu64, x ? "," : "", c->custom[x]);
		outf(&o, "]}");
	}
	outf(&o, "]}\n");
	if (!o.failed)
		msg_send_line(o.p, o.len);
	free(o.p);
}
