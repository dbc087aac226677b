#include "flow-build.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frag-table.h"
#include "pcap-format.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* The arrays at this size (about 210 bytes a flow) stay within QE_FLOW_BUILD_MEM_MAX; they grow
 * by doubling, so the cap is a power of two. */
#define MAX_FLOWS QE_FLOW_BUILD_MAX_FLOWS
_Static_assert((uint64_t)MAX_FLOWS * (128 + 64 + 2 * 8 + 4) <= QE_FLOW_BUILD_MEM_MAX, "MAX_FLOWS fits the memory bound");

/* A flow's key: the ends in a fixed order (a before b, whatever sent first), each an address as
 * the words its bytes load into (IPv4 zero-padded) and a port; then VLAN stack, IP version and
 * protocol. Non-IP: no addresses, the EtherType as port a. */
struct key {
	uint64_t a0, a1, b0, b1;
	uint64_t w0; /* pa | pb << 16 | vlan[0] << 32 | vlan[1] << 48 */
	uint64_t w1; /* vlan[2] | ip_version << 16 | proto << 24 | nvlan << 32 */
};

/* What a run of packets added to a flow: the pending segment's, and (in base[]) the file's
 * before it. "fwd" [0] is from the flow's src, [1] from its dst. */
struct counts {
	uint64_t first_ns, last_ns;
	uint64_t bytes[2];
	uint32_t packets[2];
	uint32_t syn, synack, fin, rst;
	uint8_t tcp[2];
	uint8_t rflags; /* QE_FLOW_RF_FRAGMENTS, QE_FLOW_RF_RTT */
	uint8_t pad;
	uint32_t rtt_us;
};
_Static_assert(sizeof(struct counts) == 64, "a flow's pending counts are one cache line");

/* Two cache lines: the key (what a lookup compares) and the pending counts (what a packet adds
 * to); the file's counts before the pending segment are elsewhere (base[]), touched per segment. */
struct flow {
	struct key k;
	uint8_t src_b;	   /* the file's first packet of the flow came from end b: b is the record's src */
	uint8_t icmp;	   /* QE_FLOW_RF_ICMP: type and code below are the first packet's */
	uint8_t type, code;
	uint8_t syn_from;  /* 0: no SYN yet; 1 + direction of the first SYN; 3: the round trip is known */
	uint8_t pad[3];
	uint64_t syn_ns;
	struct counts seg;
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct flow) == 128, "a flow is two cache lines");

struct qe_flow_builder {
	uint32_t linktype;
	int broken; /* out of memory, or past MAX_FLOWS: packets went uncounted, no table may be written */
	struct flow *flows;
	struct counts *base;
	uint32_t nflows, cap;
	uint64_t *slots; /* open addressing: flow index + 1 in the low half, 0 empty; the hash in the high */
	uint32_t mask;
	uint32_t *seg; /* flows with packets in the pending segment, in the order of their first one */
	uint32_t nseg, seg_cap;
	uint32_t last; /* the flow of the previous packet + 1: a train of one flow skips the lookup */
	size_t mem;

	uint64_t packets, first_ns, last_ns;
	uint64_t file_lo, end;
	uint64_t pending, seg_lo, seg_first_ns;
	struct qe_frag_table frags;
};

struct qe_flow_builder *qe_flow_builder_new(uint32_t linktype)
{
	struct qe_flow_builder *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->linktype = linktype;
	b->mask = 1023;
	b->slots = calloc(b->mask + 1, sizeof *b->slots);
	if (!b->slots) {
		free(b);
		return NULL;
	}
	b->mem = sizeof *b + (b->mask + 1) * sizeof *b->slots;
	b->file_lo = b->end = b->seg_lo = QE_PCAP_GLOBAL_LEN;
	return b;
}

void qe_flow_builder_free(struct qe_flow_builder *b)
{
	if (!b)
		return;
	free(b->flows);
	free(b->base);
	free(b->slots);
	free(b->seg);
	free(b);
}

static inline uint32_t key_hash(const struct key *k)
{
	uint64_t h = (k->a0 * 0x9e3779b97f4a7c15ull) ^ (k->a1 * 0xc2b2ae3d27d4eb4full) ^ (k->b0 * 0x165667b19e3779f9ull) ^
		     (k->b1 * 0xd6e8feb86659fd93ull) ^ (k->w0 * 0xff51afd7ed558ccdull) ^ (k->w1 * 0xc4ceb9fe1a85ec53ull);
	h ^= h >> 29;
	h *= 0x9e3779b97f4a7c15ull;
	return (uint32_t)(h >> 32);
}

static inline int key_eq(const struct key *x, const struct key *y)
{
	return ((x->a0 ^ y->a0) | (x->a1 ^ y->a1) | (x->b0 ^ y->b0) | (x->b1 ^ y->b1) | (x->w0 ^ y->w0) | (x->w1 ^ y->w1)) == 0;
}

static int grow_slots(struct qe_flow_builder *b)
{
	uint32_t cap = (b->mask + 1) * 2;
	uint64_t *s = calloc(cap, sizeof *s);
	if (!s)
		return -1;
	for (uint32_t i = 0; i < (b->mask + 1); i++) {
		uint64_t v = b->slots[i];
		if (!v)
			continue;
		uint32_t h = (uint32_t)(v >> 32) & (cap - 1);
		while (s[h])
			h = (h + 1) & (cap - 1);
		s[h] = v;
	}
	b->mem += (size_t)(cap - b->mask - 1) * sizeof *s;
	free(b->slots);
	b->slots = s;
	b->mask = cap - 1;
	return 0;
}

/* flows[] keeps its alignment (realloc keeps 16 bytes): 128 bytes, so that a flow is one pair of
 * lines, which the adjacent-line prefetcher fetches together; base[] grows with it. */
static int grow_flows(struct qe_flow_builder *b)
{
	uint32_t n = b->cap ? b->cap * 2 : 256;
	struct flow *fl = aligned_alloc(128, (size_t)n * sizeof *fl);
	if (!fl)
		return -1;
	struct counts *base = realloc(b->base, (size_t)n * sizeof *base);
	if (!base) {
		free(fl);
		return -1;
	}
	b->base = base;
	if (b->nflows)
		memcpy(fl, b->flows, (size_t)b->nflows * sizeof *fl);
	free(b->flows);
	b->flows = fl;
	b->mem += (size_t)(n - b->cap) * (sizeof *fl + sizeof *base);
	b->cap = n;
	return 0;
}

/* The flow of key k (created with the orientation and ICMP fields given), or UINT32_MAX. */
static __attribute__((noinline)) uint32_t lookup(struct qe_flow_builder *b, const struct key *k, int from_b, uint8_t icmp,
						  uint8_t type, uint8_t code)
{
	uint32_t hash = key_hash(k);
	uint32_t h = hash & b->mask;
	for (;;) {
		uint64_t v = b->slots[h];
		if (!v)
			break;
		if ((uint32_t)(v >> 32) == hash && key_eq(&b->flows[(uint32_t)v - 1].k, k))
			return (uint32_t)v - 1;
		h = (h + 1) & b->mask;
	}
	if (b->nflows == MAX_FLOWS || (b->nflows == b->cap && grow_flows(b) < 0))
		return UINT32_MAX;
	uint32_t i = b->nflows;
	struct flow *fl = &b->flows[i];
	memset(fl, 0, sizeof *fl);
	memset(&b->base[i], 0, sizeof b->base[i]);
	fl->k = *k;
	fl->src_b = (uint8_t)from_b;
	fl->icmp = icmp;
	fl->type = type;
	fl->code = code;
	b->slots[h] = (uint64_t)hash << 32 | (i + 1);
	b->nflows++;
	if (b->nflows * 2 > b->mask && grow_slots(b) < 0)
		return UINT32_MAX;
	return i;
}

/* Community ID v1's ICMP port mapping (the spec's two-way types, as daemon/src/flows/community-id.ts
 * has them): the type as the source port and, for a request or reply type, its counterpart as the
 * destination port (so both directions are one flow); else the code. */
static uint16_t icmp_dport(uint8_t version, uint8_t type, uint8_t code)
{
	static const uint8_t v4[][2] = { { 8, 0 }, { 13, 14 }, { 15, 16 }, { 10, 9 }, { 17, 18 } };
	static const uint8_t v6[][2] = { { 128, 129 }, { 130, 131 }, { 133, 134 }, { 135, 136 }, { 139, 140 }, { 144, 145 } };
	const uint8_t(*t)[2] = version == 4 ? v4 : v6;
	size_t n = version == 4 ? sizeof v4 / sizeof v4[0] : sizeof v6 / sizeof v6[0];
	for (size_t i = 0; i < n; i++) {
		if (t[i][0] == type)
			return t[i][1];
		if (t[i][1] == type)
			return t[i][0];
	}
	return code;
}

static void tcp_events(struct flow *fl, struct counts *c, int dir, uint8_t tcp, uint64_t ts_ns)
{
	if (tcp & TCP_SYN) {
		if (!(tcp & TCP_ACK)) {
			c->syn++;
			if (!fl->syn_from) {
				fl->syn_from = (uint8_t)(1 + dir);
				fl->syn_ns = ts_ns;
			}
		} else {
			c->synack++;
			if (fl->syn_from == 2 - dir) { /* the first SYN came from the other end */
				uint64_t us = ts_ns > fl->syn_ns ? (ts_ns - fl->syn_ns) / 1000 : 0;
				c->rtt_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
				c->rflags |= QE_FLOW_RF_RTT;
				fl->syn_from = 3;
			}
		}
	}
	if (tcp & TCP_FIN)
		c->fin++;
	if (tcp & TCP_RST)
		c->rst++;
}

/* The ports of a flow's key from an IP header that is not a later fragment: TCP/UDP/SCTP's, or
 * ICMP's type and its counterpart (then QE_FLOW_RF_ICMP is returned); else 0 and 0. */
static inline uint8_t ends_of(const struct qe_pf_ip *ip, uint16_t *sp, uint16_t *dp)
{
	uint8_t proto = ip->has_proto ? ip->proto : 0;
	if (ip->has_ports == (QE_PF_SPORT | QE_PF_DPORT)) {
		*sp = ip->sport;
		*dp = ip->dport;
		return 0;
	}
	if ((ip->version == 4 ? proto == 1 : proto == 58) && ip->has_icmp) {
		*sp = ip->icmp_type;
		*dp = icmp_dport(ip->version, ip->icmp_type, ip->icmp_code);
		return QE_FLOW_RF_ICMP;
	}
	*sp = *dp = 0;
	return 0;
}

/* The key of a record with these fields and ports (an IP flow's, or else its EtherType's); returns
 * whether its source is the key's end b. */
static inline int key_of(const struct qe_packet_fields *f, uint16_t sp, uint16_t dp, struct key *k)
{
	int from_b = 0;
	uint32_t nv = f->nvlan < QE_FLOW_MAX_VLAN ? f->nvlan : QE_FLOW_MAX_VLAN;
	uint64_t vl[QE_FLOW_MAX_VLAN] = { 0 };
	for (uint32_t i = 0; i < nv; i++)
		vl[i] = f->vlan[i];
	const struct qe_pf_ip *ip = &f->ip[0];
	if (f->nip && ip->src && ip->dst) {
		size_t alen = ip->version == 4 ? 4 : 16;
		uint8_t proto = ip->has_proto ? ip->proto : 0;
		uint64_t s0, s1, d0, d1;
		qe_pf_addr_words(ip->src, alen, &s0, &s1);
		qe_pf_addr_words(ip->dst, alen, &d0, &d1);
		/* Any fixed order of the ends will do: the reader orders them its own way (Community ID). */
		from_b = s0 != d0 ? s0 > d0 : s1 != d1 ? s1 > d1 : sp > dp;
		if (from_b) {
			k->a0 = d0, k->a1 = d1, k->b0 = s0, k->b1 = s1;
			k->w0 = dp | (uint64_t)sp << 16;
		} else {
			k->a0 = s0, k->a1 = s1, k->b0 = d0, k->b1 = d1;
			k->w0 = sp | (uint64_t)dp << 16;
		}
		k->w1 = vl[2] | (uint64_t)ip->version << 16 | (uint64_t)proto << 24 | (uint64_t)nv << 32;
	} else {
		k->a0 = k->a1 = k->b0 = k->b1 = 0;
		k->w0 = f->ethertype;
		k->w1 = vl[2] | (uint64_t)nv << 32;
	}
	k->w0 |= vl[0] << 32 | vl[1] << 48;
	return from_b;
}

uint64_t qe_flow_prefetch_slot(const struct qe_flow_builder *b, const struct qe_packet_fields *f)
{
	if (b->broken)
		return 0;
	const struct qe_pf_ip *ip = &f->ip[0];
	uint16_t sp = 0, dp = 0;
	if (f->nip && ip->src && ip->dst) {
		if (ip->frag == QE_PF_FRAG_LATER)
			return 0; /* its ports are in the fragment table, which only qe_flow_add may touch */
		ends_of(ip, &sp, &dp);
	}
	struct key k;
	key_of(f, sp, dp, &k);
	uint32_t hash = key_hash(&k);
	__builtin_prefetch(&b->slots[hash & b->mask]);
	return (uint64_t)1 << 32 | hash;
}

void qe_flow_prefetch_flow(const struct qe_flow_builder *b, uint64_t hint)
{
	if (!hint || b->broken)
		return;
	uint32_t hash = (uint32_t)hint;
	uint64_t v = b->slots[hash & b->mask];
	if (v && (uint32_t)(v >> 32) == hash) {
		const struct flow *fl = &b->flows[(uint32_t)v - 1];
		__builtin_prefetch(fl);
		__builtin_prefetch(&fl->seg, 1);
	}
}

uint32_t qe_flow_add(struct qe_flow_builder *b, uint64_t off, uint64_t ts_ns, uint32_t caplen, uint32_t origlen,
		     const struct qe_packet_fields *f)
{
	if (b->packets++ == 0) {
		b->file_lo = b->seg_lo = off;
		b->first_ns = ts_ns;
	}
	if (b->pending++ == 0)
		b->seg_first_ns = ts_ns;
	b->last_ns = ts_ns;
	b->end = off + QE_PCAP_RECORD_LEN + caplen;
	if (b->broken)
		return QE_FLOW_REF_NONE;

	struct key k;
	int from_b, has_tcp = 0;
	uint8_t icmp = 0, type = 0, code = 0, frag = 0, tcp = 0;
	const struct qe_pf_ip *ip = &f->ip[0];
	uint16_t sp = 0, dp = 0;
	if (f->nip && ip->src && ip->dst) {
		if (ip->frag == QE_PF_FRAG_LATER) {
			frag = QE_FLOW_RF_FRAGMENTS;
			if (!qe_frag_lookup(&b->frags, ip, &sp, &dp))
				sp = dp = 0; /* its first fragment was not seen: ports unknown */
		} else {
			icmp = ends_of(ip, &sp, &dp);
			if (ip->has_ports == (QE_PF_SPORT | QE_PF_DPORT) && ip->has_proto && ip->proto == 6 && ip->tcp_flags_ok) {
				has_tcp = 1;
				tcp = ip->tcp_flags;
			} else if (icmp) {
				type = ip->icmp_type;
				code = ip->icmp_code;
			}
			if (ip->frag == QE_PF_FRAG_FIRST) {
				frag = QE_FLOW_RF_FRAGMENTS;
				qe_frag_remember(&b->frags, ip, sp, dp);
			}
		}
	}
	from_b = key_of(f, sp, dp, &k);

	uint32_t i;
	if (b->last && key_eq(&b->flows[b->last - 1].k, &k)) {
		i = b->last - 1;
	} else {
		i = lookup(b, &k, from_b, icmp, type, code);
		if (i == UINT32_MAX) {
			b->broken = 1;
			return QE_FLOW_REF_NONE;
		}
		b->last = i + 1;
	}
	struct flow *fl = &b->flows[i];
	struct counts *c = &fl->seg;
	int dir = from_b != fl->src_b;
	if ((c->packets[0] | c->packets[1]) == 0) {
		if (b->nseg == b->seg_cap) {
			uint32_t n = b->seg_cap ? b->seg_cap * 2 : 256;
			uint32_t *p = realloc(b->seg, (size_t)n * sizeof *p);
			if (!p) {
				b->broken = 1;
				return QE_FLOW_REF_NONE;
			}
			b->mem += (size_t)(n - b->seg_cap) * sizeof *p;
			b->seg = p;
			b->seg_cap = n;
		}
		b->seg[b->nseg++] = i;
		c->first_ns = c->last_ns = ts_ns;
	}
	if (ts_ns < c->first_ns)
		c->first_ns = ts_ns;
	if (ts_ns > c->last_ns)
		c->last_ns = ts_ns;
	c->packets[dir]++;
	c->bytes[dir] += origlen;
	c->rflags |= frag;
	if (has_tcp) {
		c->tcp[dir] |= tcp;
		if (tcp & (TCP_SYN | TCP_FIN | TCP_RST))
			tcp_events(fl, c, dir, tcp, ts_ns);
	}
	return QE_FLOW_REF(i, from_b);
}

int qe_flow_full(const struct qe_flow_builder *b)
{
	return b->broken || b->nflows >= MAX_FLOWS || b->mem >= QE_FLOW_BUILD_MEM_MAX;
}

int qe_flow_room(const struct qe_flow_builder *b, uint64_t records)
{
	return !qe_flow_full(b) && records <= MAX_FLOWS - b->nflows;
}

uint64_t qe_flow_packets(const struct qe_flow_builder *b)
{
	return b->packets;
}

uint64_t qe_flow_pending_packets(const struct qe_flow_builder *b)
{
	return b->pending;
}

uint64_t qe_flow_count(const struct qe_flow_builder *b)
{
	return b->nflows;
}

/* What a reader does with two records of a flow (flow-format.h): sums, ORs, the earliest first,
 * the latest last, the first round trip. */
static void merge(struct counts *into, const struct counts *c)
{
	if ((c->packets[0] | c->packets[1]) == 0)
		return;
	if ((into->packets[0] | into->packets[1]) == 0) {
		into->first_ns = c->first_ns;
		into->last_ns = c->last_ns;
	} else {
		if (c->first_ns < into->first_ns)
			into->first_ns = c->first_ns;
		if (c->last_ns > into->last_ns)
			into->last_ns = c->last_ns;
	}
	for (int d = 0; d < 2; d++) {
		into->bytes[d] += c->bytes[d];
		into->packets[d] += c->packets[d];
		into->tcp[d] |= c->tcp[d];
	}
	into->syn += c->syn;
	into->synack += c->synack;
	into->fin += c->fin;
	into->rst += c->rst;
	if ((c->rflags & QE_FLOW_RF_RTT) && !(into->rflags & QE_FLOW_RF_RTT))
		into->rtt_us = c->rtt_us;
	into->rflags |= c->rflags;
}

/* Writes the record at p and returns its length (qe_flow_record_len of its version). */
static size_t write_record(unsigned char *p, const struct flow *fl, const struct counts *c)
{
	const struct key *k = &fl->k;
	uint8_t version = (uint8_t)(k->w1 >> 16), nv = (uint8_t)(k->w1 >> 32);
	size_t alen = qe_flow_addr_len(version), len = qe_flow_record_len(version);
	unsigned char *t = p + qe_flow_tail_off(version);
	memset(p, 0, len);
	p[QE_FLOW_R_IP_VERSION] = version;
	p[QE_FLOW_R_NVLAN] = nv;
	qe_put16(p + QE_FLOW_R_VLAN, (uint16_t)(k->w0 >> 32));
	qe_put16(p + QE_FLOW_R_VLAN + 2, (uint16_t)(k->w0 >> 48));
	qe_put16(p + QE_FLOW_R_VLAN + 4, (uint16_t)k->w1);
	qe_put64(t + QE_FLOW_T_FIRST_NS, c->first_ns);
	qe_put64(t + QE_FLOW_T_LAST_NS, c->last_ns);
	qe_put64(t + QE_FLOW_T_BYTES, c->bytes[0]);
	qe_put32(t + QE_FLOW_T_PACKETS, c->packets[0]);
	if (!version) {
		qe_put16(p + QE_FLOW_R_SPORT, (uint16_t)k->w0);
		return len;
	}
	p[QE_FLOW_R_PROTO] = (uint8_t)(k->w1 >> 24);
	p[QE_FLOW_R_FLAGS] = (uint8_t)(fl->icmp | c->rflags);
	p[QE_FLOW_R_TCP_FLAGS_FWD] = c->tcp[0];
	p[QE_FLOW_R_TCP_FLAGS_REV] = c->tcp[1];
	uint16_t pa = (uint16_t)k->w0, pb = (uint16_t)(k->w0 >> 16);
	if (fl->icmp) {
		qe_put16(p + QE_FLOW_R_SPORT, fl->type);
		qe_put16(p + QE_FLOW_R_DPORT, fl->code);
	} else {
		qe_put16(p + QE_FLOW_R_SPORT, fl->src_b ? pb : pa);
		qe_put16(p + QE_FLOW_R_DPORT, fl->src_b ? pa : pb);
	}
	uint64_t src[2] = { fl->src_b ? k->b0 : k->a0, fl->src_b ? k->b1 : k->a1 };
	uint64_t dst[2] = { fl->src_b ? k->a0 : k->b0, fl->src_b ? k->a1 : k->b1 };
	/* The key holds an IPv4 address in its first 4 bytes, as the record does. */
	memcpy(p + QE_FLOW_R_SRC, src, alen);
	memcpy(p + QE_FLOW_R_SRC + alen, dst, alen);
	qe_put64(t + QE_FLOW_T_BYTES_REV, c->bytes[1]);
	qe_put32(t + QE_FLOW_T_PACKETS_REV, c->packets[1]);
	qe_put32(t + QE_FLOW_T_SYN, c->syn);
	qe_put32(t + QE_FLOW_T_SYNACK, c->synack);
	qe_put32(t + QE_FLOW_T_FIN, c->fin);
	qe_put32(t + QE_FLOW_T_RST, c->rst);
	if (c->rflags & QE_FLOW_RF_RTT)
		qe_put32(t + QE_FLOW_T_RTT_US, c->rtt_us);
	return len;
}

void qe_flow_set_span(struct qe_flow_builder *b, uint64_t lo, uint64_t hi)
{
	b->file_lo = lo;
	b->end = hi;
}

void qe_flow_header(const struct qe_flow_builder *b, int complete, unsigned char out[QE_FLOW_HEADER_LEN])
{
	memset(out, 0, QE_FLOW_HEADER_LEN);
	memcpy(out, QE_FLOW_MAGIC, QE_FLOW_MAGIC_LEN);
	qe_put16(out + QE_FLOW_H_VERSION, QE_FLOW_VERSION);
	qe_put16(out + QE_FLOW_H_HEADER_LEN, QE_FLOW_HEADER_LEN);
	qe_put32(out + QE_FLOW_H_FLAGS, complete ? QE_FLOW_FLAG_COMPLETE : 0);
	qe_put32(out + QE_FLOW_H_LINKTYPE, b->linktype);
	qe_put32(out + QE_FLOW_H_BUILDER, QE_FLOW_BUILDER_REVISION);
	qe_put64(out + QE_FLOW_H_PCAP_FIRST_NS, b->packets ? b->first_ns : 0);
	qe_put32(out + QE_FLOW_H_CRC, qe_crc32(out, QE_FLOW_H_CRC));
}

struct span {
	uint64_t off_lo, off_hi, packets, first_ns, last_ns;
};

/* Reserves room for a segment of n records at the end of out (as if all were IPv6); its records
 * are written by the caller. */
static unsigned char *segment_begin(struct qe_out *out, uint32_t n)
{
	if (qe_out_reserve(out, QE_FLOW_SEGMENT_HEADER_LEN + (size_t)n * QE_FLOW_RECORD_MAX) < 0)
		return NULL;
	return out->p + out->len;
}

static void segment_end(struct qe_out *out, unsigned char *h, uint32_t n, uint64_t body, const struct span *s)
{
	memset(h, 0, QE_FLOW_SEGMENT_HEADER_LEN);
	qe_put32(h + QE_FLOW_S_MAGIC, QE_FLOW_SEGMENT_MAGIC);
	qe_put32(h + QE_FLOW_S_NRECORDS, n);
	qe_put64(h + QE_FLOW_S_BODY_LEN, body);
	qe_put64(h + QE_FLOW_S_OFF_LO, s->off_lo);
	qe_put64(h + QE_FLOW_S_OFF_HI, s->off_hi);
	qe_put64(h + QE_FLOW_S_PACKETS, s->packets);
	qe_put64(h + QE_FLOW_S_FIRST_NS, s->first_ns);
	qe_put64(h + QE_FLOW_S_LAST_NS, s->last_ns);
	qe_put32(h + QE_FLOW_S_BODY_CRC, qe_crc32(h + QE_FLOW_SEGMENT_HEADER_LEN, body));
	qe_put32(h + QE_FLOW_S_CRC, qe_crc32(h, QE_FLOW_S_CRC));
	out->len += QE_FLOW_SEGMENT_HEADER_LEN + body;
}

int qe_flow_next_segment(struct qe_flow_builder *b, struct qe_out *out)
{
	if (b->broken)
		return -1;
	if (!b->pending)
		return 0;
	unsigned char *h = segment_begin(out, b->nseg);
	if (!h)
		return -1;
	unsigned char *body = h + QE_FLOW_SEGMENT_HEADER_LEN, *p = body;
	for (uint32_t j = 0; j < b->nseg; j++) {
		struct flow *fl = &b->flows[b->seg[j]];
		p += write_record(p, fl, &fl->seg);
		merge(&b->base[b->seg[j]], &fl->seg);
		memset(&fl->seg, 0, sizeof fl->seg);
	}
	struct span s = { b->seg_lo, b->end, b->pending, b->seg_first_ns, b->last_ns };
	segment_end(out, h, b->nseg, (uint64_t)(p - body), &s);
	b->nseg = 0;
	b->pending = 0;
	b->seg_lo = b->end;
	return 1;
}

int qe_flow_complete(const struct qe_flow_builder *b, struct qe_out *out)
{
	if (b->broken || qe_out_reserve(out, QE_FLOW_HEADER_LEN) < 0)
		return -1;
	size_t at = out->len;
	qe_flow_header(b, 1, out->p + out->len);
	out->len += QE_FLOW_HEADER_LEN;
	unsigned char *h = segment_begin(out, b->nflows);
	if (!h) {
		out->len = at;
		return -1;
	}
	unsigned char *body = h + QE_FLOW_SEGMENT_HEADER_LEN, *p = body;
	for (uint32_t i = 0; i < b->nflows; i++) {
		struct counts c = b->base[i];
		merge(&c, &b->flows[i].seg);
		p += write_record(p, &b->flows[i], &c);
	}
	struct span s = { b->file_lo, b->end, b->packets, b->packets ? b->first_ns : 0, b->packets ? b->last_ns : 0 };
	segment_end(out, h, b->nflows, (uint64_t)(p - body), &s);
	return 0;
}

int64_t qe_flow_write_complete(const struct qe_flow_builder *b, const char *path, int durable)
{
	struct qe_out out = { 0 };
	if (qe_flow_complete(b, &out) < 0) {
		errno = ENOMEM;
		return -1;
	}
	int rc = qe_write_replace(path, QE_FLOW_TMP_EXT, out.p, out.len, durable);
	int err = errno;
	int64_t len = (int64_t)out.len;
	qe_out_free(&out);
	errno = err;
	return rc < 0 ? -1 : len;
}
