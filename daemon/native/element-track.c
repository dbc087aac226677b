#include "element-track.h"

#include <errno.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "element-format.h"
#include "field-parsers.h"
#include "proto.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define SWEEP_EVERY_NS NS_PER_S
#define NIL 0u /* chains hold flow index + 1 */

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

struct flow {
	uint32_t next; /* NIL, or the next flow of the bucket (+1); the free list too */
	uint8_t ver, proto, tcp, flags;
	uint16_t port_a, port_b;
	uint8_t addr_a[16], addr_b[16];
	uint64_t last_ns;
	uint64_t syn_first_ns; /* the attempt's first SYN: the timeout runs from it */
	uint64_t syn_last_ns;  /* its latest SYN: the one a SYN-ACK most likely answers */
};

struct counters {
	uint64_t packets, bytes, last_ns;
	uint64_t tcp_attempts, tcp_answered, tcp_unanswered, tcp_reset;
	uint64_t answers[QE_FIELD_PARSERS_MAX], errors[QE_FIELD_PARSERS_MAX];
	uint64_t custom[QE_ELEM_MAX_CUSTOM];
	uint64_t rtt[QE_ELEM_RTT_BUCKETS];
};

struct element {
	struct bpf_program prog;
	unsigned ncustom;
	struct bpf_program custom[QE_ELEM_MAX_CUSTOM];
	struct counters c;
};

struct qe_elements {
	unsigned n;
	unsigned words; /* mask words per flow */
	struct element *el;
	struct flow *flows;
	uint64_t *masks;  /* words per flow, by flow index */
	uint32_t *bucket; /* QE_ELEM_TRACK_FLOWS chains */
	uint32_t used;    /* flows ever taken from the array (the rest is untouched memory) */
	uint32_t free;    /* list of forgotten flows */
	uint64_t now_ns;  /* the latest time seen */
	uint64_t next_sweep_ns;
};

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

struct qe_elements *qe_elements_parse(const char *text, size_t len, const char *name, uint32_t linktype, uint32_t snaplen,
				      char *err, size_t errlen)
{
	struct qe_elements *e = calloc(1, sizeof *e);
	pcap_t *p = pcap_open_dead((int)linktype, (int)snaplen);
	if (!e || !p || !(e->el = calloc(QE_ELEM_MAX, sizeof *e->el))) {
		fail(err, errlen, name, 0, "out of memory");
		goto bad;
	}
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
			if (compile(p, q, (size_t)(lend - q), &el->custom[el->ncustom], why, sizeof why) != 0) {
				fail(err, errlen, name, line, "element %ld custom filter %ld: %s", i, k, why);
				goto bad;
			}
			el->ncustom++;
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
	e->words = (e->n + 63) / 64;
	/* Zeroed pages the kernel hands out as flows are first used: the bound costs nothing unused. */
	if (e->n && (!(e->flows = calloc(QE_ELEM_TRACK_FLOWS, sizeof *e->flows)) ||
		     !(e->masks = calloc((size_t)QE_ELEM_TRACK_FLOWS * e->words, sizeof *e->masks)) ||
		     !(e->bucket = calloc(QE_ELEM_TRACK_FLOWS, sizeof *e->bucket)))) {
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
		for (unsigned i = 0; i < QE_ELEM_MAX; i++) {
			pcap_freecode(&e->el[i].prog);
			for (unsigned k = 0; k < QE_ELEM_MAX_CUSTOM; k++)
				pcap_freecode(&e->el[i].custom[k]);
		}
	free(e->el);
	free(e->flows);
	free(e->masks);
	free(e->bucket);
	free(e);
}

unsigned qe_elements_count(const struct qe_elements *e)
{
	return e ? e->n : 0;
}

/* ---- the flow table ---- */

struct key {
	uint8_t ver, proto;
	uint16_t port_a, port_b;
	uint8_t addr_a[16], addr_b[16];
	int src_is_a; /* the packet was sent by end a */
};

static void make_key(const struct qe_pf_ip *ip, struct key *k)
{
	unsigned alen = ip->version == 4 ? 4 : 16;
	uint16_t sp = 0, dp = 0;
	if (ip->has_ports == (QE_PF_SPORT | QE_PF_DPORT) && ip->frag != QE_PF_FRAG_LATER) {
		sp = ip->sport;
		dp = ip->dport;
	}
	uint8_t s[16] = { 0 }, d[16] = { 0 };
	memcpy(s, ip->src, alen);
	memcpy(d, ip->dst, alen);
	int c = memcmp(s, d, 16);
	k->src_is_a = c < 0 || (c == 0 && sp <= dp);
	k->ver = ip->version;
	k->proto = ip->has_proto ? ip->proto : 0;
	memcpy(k->addr_a, k->src_is_a ? s : d, 16);
	memcpy(k->addr_b, k->src_is_a ? d : s, 16);
	k->port_a = k->src_is_a ? sp : dp;
	k->port_b = k->src_is_a ? dp : sp;
}

static uint32_t hash_key(const struct key *k)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)k->ver << 8 | k->proto) ^ ((uint64_t)k->port_a << 32 | (uint64_t)k->port_b << 16);
	for (int i = 0; i < 16; i += 8) {
		uint64_t a, b;
		memcpy(&a, k->addr_a + i, 8);
		memcpy(&b, k->addr_b + i, 8);
		h = (h ^ a) * 0xff51afd7ed558ccdull;
		h = (h ^ b ^ (h >> 29)) * 0xc4ceb9fe1a85ec53ull;
	}
	h ^= h >> 32;
	return (uint32_t)h & (QE_ELEM_TRACK_FLOWS - 1);
}

static int same(const struct flow *f, const struct key *k)
{
	return f->ver == k->ver && f->proto == k->proto && f->port_a == k->port_a && f->port_b == k->port_b &&
	       memcmp(f->addr_a, k->addr_a, 16) == 0 && memcmp(f->addr_b, k->addr_b, 16) == 0;
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

/* Which elements a flow belongs to: every element's filter on its first packet's frame. */
static void match(const struct qe_elements *e, uint64_t *mask, uint32_t caplen, uint32_t origlen, const uint8_t *data)
{
	memset(mask, 0, e->words * sizeof *mask);
	for (unsigned i = 0; i < e->n; i++)
		if (bpf_filter(e->el[i].prog.bf_insns, data, origlen, caplen))
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

static void count_unanswered(struct qe_elements *e, uint32_t fi)
{
	const uint64_t *mask = e->masks + (size_t)fi * e->words;
	for (unsigned w = 0; w < e->words; w++)
		for (uint64_t m = mask[w]; m; m &= m - 1)
			e->el[w * 64 + (unsigned)__builtin_ctzll(m)].c.tcp_unanswered++;
}

/* SYNs past the timeout are counted unanswered; flows idle too long are forgotten. */
static void sweep(struct qe_elements *e, uint64_t now)
{
	const uint64_t timeout = QE_ELEM_SYN_TIMEOUT_MS * NS_PER_MS, idle = QE_ELEM_TRACK_IDLE_S * NS_PER_S;
	e->next_sweep_ns = now + SWEEP_EVERY_NS;
	if (!e->used)
		return;
	for (uint32_t b = 0; b < QE_ELEM_TRACK_FLOWS; b++) {
		uint32_t *link = &e->bucket[b];
		while (*link) {
			uint32_t fi = *link - 1;
			struct flow *fl = &e->flows[fi];
			if (fl->tcp == TCP_PENDING && now >= fl->syn_first_ns + timeout) {
				fl->tcp = TCP_UNANSWERED;
				count_unanswered(e, fi);
			}
			if (now >= fl->last_ns + idle) {
				*link = fl->next;
				fl->next = e->free;
				e->free = fi + 1;
			} else {
				link = &fl->next;
			}
		}
	}
}

void qe_elements_tick(struct qe_elements *e, uint64_t now_ns)
{
	if (!e || !e->n || now_ns <= e->now_ns)
		return;
	e->now_ns = now_ns;
	sweep(e, now_ns);
}

void qe_elements_add(struct qe_elements *e, uint64_t ts_ns, uint32_t caplen, uint32_t origlen, const uint8_t *data,
		     const struct qe_packet_fields *f)
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
	struct key k;
	make_key(ip, &k);
	uint32_t h = hash_key(&k), fi = UINT32_MAX;
	for (uint32_t i = e->bucket[h]; i; i = e->flows[i - 1].next)
		if (same(&e->flows[i - 1], &k)) {
			fi = i - 1;
			break;
		}
	int first = fi == UINT32_MAX;
	uint64_t spill[QE_ELEM_MAX / 64];
	uint64_t *mask = spill;
	struct flow *fl = NULL;
	if (first && (fi = take_flow(e)) != UINT32_MAX) {
		fl = &e->flows[fi];
		memset(fl, 0, sizeof *fl);
		fl->ver = k.ver;
		fl->proto = k.proto;
		fl->port_a = k.port_a;
		fl->port_b = k.port_b;
		memcpy(fl->addr_a, k.addr_a, 16);
		memcpy(fl->addr_b, k.addr_b, 16);
		fl->next = e->bucket[h];
		e->bucket[h] = fi + 1;
		mask = e->masks + (size_t)fi * e->words;
		match(e, mask, caplen, origlen, data);
	} else if (first) {
		match(e, mask, caplen, origlen, data); /* table full: this packet alone */
	} else {
		fl = &e->flows[fi];
		mask = e->masks + (size_t)fi * e->words;
	}
	if (fl)
		fl->last_ns = ts_ns > fl->last_ns ? ts_ns : fl->last_ns;
	uint64_t any = 0;
	for (unsigned w = 0; w < e->words; w++)
		any |= mask[w];
	if (!any)
		return;

	struct tcp_event ev = { .rtt_bucket = -1 };
	uint8_t side = QE_FIELD_SIDE_UNKNOWN;
	if (fl && k.proto == QE_IPPROTO_TCP && ip->tcp_flags_ok && ip->has_ports == (QE_PF_SPORT | QE_PF_DPORT)) {
		follow_tcp(fl, k.src_is_a, ip->tcp_flags, ts_ns, first, &ev);
		if (fl->tcp != TCP_NONE)
			side = !!(fl->flags & FF_INIT_A) == k.src_is_a ? QE_FIELD_SIDE_CLIENT : QE_FIELD_SIDE_SERVER;
	}
	uint8_t outcome[QE_FIELD_PARSERS_MAX] = { 0 };
	uint32_t plen = 0, poff = payload(ip, data, caplen, &plen);
	if (poff) {
		struct qe_field_ctx ctx = { .payload = data + poff, .len = plen, .proto = ip->proto, .side = side,
					    .sport = ip->sport, .dport = ip->dport };
		for (unsigned p = 0; p < qe_field_parser_count; p++)
			outcome[p] = (uint8_t)qe_field_parsers[p].parse(&ctx);
	}
	for (unsigned w = 0; w < e->words; w++)
		for (uint64_t m = mask[w]; m; m &= m - 1) {
			struct element *el = &e->el[w * 64 + (unsigned)__builtin_ctzll(m)];
			struct counters *c = &el->c;
			c->packets++;
			c->bytes += origlen;
			if (ts_ns > c->last_ns)
				c->last_ns = ts_ns;
			c->tcp_attempts += ev.attempt;
			c->tcp_answered += ev.answered;
			c->tcp_reset += ev.reset;
			if (ev.rtt_bucket >= 0)
				c->rtt[ev.rtt_bucket]++;
			if (poff)
				for (unsigned p = 0; p < qe_field_parser_count; p++) {
					c->answers[p] += outcome[p] != QE_FIELD_NONE;
					c->errors[p] += outcome[p] == QE_FIELD_ERROR;
				}
			for (unsigned x = 0; x < el->ncustom; x++)
				c->custom[x] += bpf_filter(el->custom[x].bf_insns, data, origlen, caplen) != 0;
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

void qe_elements_report(const struct qe_elements *e, const char *iface, uint64_t generation)
{
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
