#include "index-build.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "frag-table.h"
#include "packet-fields.h"
#include "pcap-format.h"
#include "table-io.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "keys are held as the words their bytes load into on a little-endian machine (struct key)"
#endif

#define NO_BLOCK UINT32_MAX
#define LOG_MARK UINT32_MAX /* in the posting log: the next word is a block number */
/* Postings logged before they are sorted into a run (spill): bounds the log between flushes. */
#define LOG_SPILL (8u << 20)

/* A key of the file. A posting is a compare with the key's last block and, the first time in a
 * block, a word appended to the posting log: the postings' lists are put together later, in
 * sequential passes (spill, merge), not by a write to a list somewhere in memory per posting. Two
 * keys share a cache line: with many hosts most postings go to keys out of the cache. */
struct key {
	uint64_t v0, v1; /* the value's 16 bytes as they lie in memory (network order, zero-padded) */
	uint8_t type, len;
	uint16_t pad;
	uint32_t last_block;
	uint32_t seg_count; /* postings in the log (spill: then where its blocks go) */
	uint32_t pad2;
};
_Static_assert(sizeof(struct key) == 32, "two keys per cache line");

/* A key's postings in one run: the sorted lists of a spill, kept until the complete index is
 * written. `off` is where its list's tail (the postings after the first, as LEB128 differences)
 * starts in the pool; it ends where the next entry's starts. */
struct run_entry {
	uint32_t key, count, first, last, off;
};

/* A run: entries [ent_lo, ent_hi), sorted by key value. */
struct run {
	uint32_t ent_lo, ent_hi;
};

/* The keys posted lately in the current block: most keys of a block repeat, and this small table
 * (in the first-level cache) answers for them without a lookup in the large one. */
#define RECENT_BITS 8
#define RECENT_SLOTS (1u << RECENT_BITS)
struct recent {
	uint64_t v0, v1;
	uint32_t block; /* NO_BLOCK: empty */
	uint8_t type;
};

struct qe_idx_builder {
	uint32_t fields;
	uint32_t block_size;
	uint32_t block_shift;
	uint32_t linktype;
	int tunnels;
	int broken; /* out of memory once: postings were lost, no index may be written */

	/* The keys, in an open-addressing table (linear probing, type 0: empty), 64-byte aligned: a
	 * lookup is one cache line. A key is named by its slot; growing the table renames them all
	 * (grow_keys). */
	struct key *keys;
	uint32_t nkeys, keys_mask;
	/* Keys that missed the recent table, of this packet and the few before it: looked up in
	 * packet order once CANDS_DRAIN of them wait (or before anything reads the postings), their
	 * slots prefetched when they were put here, so their cache misses overlap and have the next
	 * packets' parsing to complete behind. */
	struct cand {
		uint64_t v0, v1;
		uint32_t hash, block;
		uint8_t type, len;
	} cands[64];
	uint32_t ncands;
	uint32_t *seg_keys; /* keys with postings in the log */
	uint32_t nseg_keys, seg_keys_cap;
	uint32_t *log; /* key indexes, in file order; LOG_MARK, block before each new block */
	uint32_t nlog, log_cap, log_block;
	uint32_t log_spill; /* LOG_SPILL, smaller in the fuzz target so every path runs */
	struct run_entry *ents;
	uint32_t nents, ents_cap;
	uint8_t *pool;
	uint32_t pool_len, pool_cap;
	struct run *runs;
	uint32_t nruns, runs_cap;
	uint32_t emitted_runs; /* runs already in a segment of the open file's index */
	size_t mem;

	uint64_t records, first_ns, last_ns;
	uint64_t file_lo, end; /* first record's offset, and just past the last */
	uint64_t pending, seg_lo, seg_first_ns, seg_first_off;
	/* For each block of the file, where its first record starts (offset in the block), or
	 * QE_IDX_BT_NONE: the block tables are cut from it. */
	uint32_t *bfirst;
	uint32_t nbfirst, bfirst_cap;

	struct recent recent[RECENT_SLOTS];
	struct qe_frag_table frags;
};

static size_t leb_put(unsigned char *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

/* ---- the builder ---- */

int qe_idx_block_size_ok(uint64_t bs)
{
	return bs >= QE_IDX_BLOCK_SIZE_MIN && bs <= QE_IDX_BLOCK_SIZE_MAX && (bs & (bs - 1)) == 0;
}

int qe_idx_linktype_ok(uint32_t lt)
{
	return lt == QE_PF_LINKTYPE_ETHERNET || lt == QE_PF_LINKTYPE_RAW || lt == QE_PF_LINKTYPE_IPV4 ||
	       lt == QE_PF_LINKTYPE_IPV6 || lt == QE_PF_LINKTYPE_LINUX_SLL || lt == QE_PF_LINKTYPE_LINUX_SLL2;
}

struct qe_idx_builder *qe_idx_builder_new(uint32_t fields, uint32_t block_size, uint32_t linktype)
{
	if (!qe_idx_block_size_ok(block_size) || !qe_idx_linktype_ok(linktype))
		return NULL;
	struct qe_idx_builder *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->fields = fields & QE_IDX_FIELDS_KNOWN;
	b->block_size = block_size;
	b->block_shift = (uint32_t)__builtin_ctz(block_size);
	b->linktype = linktype;
	b->tunnels = (fields & QE_IDX_FIELD_TUNNEL) && (fields & (QE_IDX_FIELD_IP | QE_IDX_FIELD_PORT));
	b->keys_mask = 1023;
	b->keys = aligned_alloc(64, (size_t)(b->keys_mask + 1) * sizeof *b->keys);
	if (!b->keys) {
		free(b);
		return NULL;
	}
	memset(b->keys, 0, (size_t)(b->keys_mask + 1) * sizeof *b->keys);
	b->mem = sizeof *b + (size_t)(b->keys_mask + 1) * sizeof *b->keys;
	b->file_lo = b->end = b->seg_lo = QE_PCAP_GLOBAL_LEN;
	b->log_block = NO_BLOCK;
	b->log_spill = LOG_SPILL;
	for (uint32_t i = 0; i < RECENT_SLOTS; i++)
		b->recent[i].block = NO_BLOCK;
	return b;
}

void qe_idx_set_log_spill(struct qe_idx_builder *b, uint32_t words)
{
	b->log_spill = words < 8 ? 8 : words;
}

void qe_idx_builder_free(struct qe_idx_builder *b)
{
	if (!b)
		return;
	free(b->keys);
	free(b->seg_keys);
	free(b->log);
	free(b->ents);
	free(b->pool);
	free(b->runs);
	free(b->bfirst);
	free(b);
}

static inline uint32_t key_hash(uint8_t type, uint64_t v0, uint64_t v1)
{
	uint64_t h = (v0 ^ (uint64_t)type << 56) * 0x9e3779b97f4a7c15ull ^ v1 * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 32;
	h *= 0x165667b19e3779f9ull;
	return (uint32_t)(h >> 32);
}

/* Every probe of the key table starts here (post_slow, grow_keys): both must agree. */
static inline uint32_t slot_of(uint32_t hash, uint32_t mask)
{
	return (hash >> 8) & mask;
}

static int grow_array(void **p, uint32_t *cap, size_t elem, size_t *mem)
{
	uint32_t n = *cap ? *cap * 2 : 256;
	void *q = realloc(*p, (size_t)n * elem);
	if (!q)
		return -1;
	*mem += (size_t)(n - *cap) * elem;
	*p = q;
	*cap = n;
	return 0;
}

/* Doubles the key table. Keys move, so every place a key is named by its slot (the log, the
 * pending segment's keys, the runs) is renamed. */
static int grow_keys(struct qe_idx_builder *b)
{
	uint32_t cap = (b->keys_mask + 1) * 2, mask = cap - 1;
	struct key *k = aligned_alloc(64, (size_t)cap * sizeof *k);
	uint32_t *moved = malloc((size_t)(b->keys_mask + 1) * sizeof *moved);
	if (!k || !moved) {
		free(k);
		free(moved);
		return -1;
	}
	memset(k, 0, (size_t)cap * sizeof *k);
	for (uint32_t i = 0; i <= b->keys_mask; i++) {
		const struct key *o = &b->keys[i];
		if (!o->type)
			continue;
		uint32_t h = slot_of(key_hash(o->type, o->v0, o->v1), mask);
		while (k[h].type)
			h = (h + 1) & mask;
		k[h] = *o;
		moved[i] = h;
	}
	for (uint32_t i = 0; i < b->nlog; i++) {
		if (b->log[i] == LOG_MARK)
			i++;
		else
			b->log[i] = moved[b->log[i]];
	}
	for (uint32_t i = 0; i < b->nseg_keys; i++)
		b->seg_keys[i] = moved[b->seg_keys[i]];
	for (uint32_t i = 0; i < b->nents; i++)
		b->ents[i].key = moved[b->ents[i].key];
	free(moved);
	free(b->keys);
	b->keys = k;
	b->mem += (size_t)(cap - b->keys_mask - 1) * sizeof *k;
	b->keys_mask = mask;
	return 0;
}

static int spill(struct qe_idx_builder *b);
static void post_cands(struct qe_idx_builder *b);

/* Room for `n` more words in the log; a full log is sorted into a run first. */
static inline int log_room(struct qe_idx_builder *b, uint32_t n)
{
	if (b->nlog + n > b->log_spill && b->nlog && spill(b) < 0)
		return -1;
	if (b->nlog + n <= b->log_cap)
		return 0;
	return grow_array((void **)&b->log, &b->log_cap, sizeof *b->log, &b->mem);
}

/* The recent-keys slot: one multiply whose top bits depend on every bit of the key. Most keys of a
 * packet were posted in its block already and stop here, so this is the per-key cost of a packet;
 * the stronger key_hash is paid only by the keys it misses. */
static inline uint32_t recent_slot(uint8_t type, uint64_t v0, uint64_t v1)
{
	uint64_t x = v0 ^ (v1 << 17 | v1 >> 47) ^ (uint64_t)type << 59;
	return (uint32_t)((x * 0x9e3779b97f4a7c15ull) >> (64 - RECENT_BITS));
}

/* A posting for the key (its value as two words, see struct key) in this block, unless it has one.
 * Inlined into qe_idx_add: the common case (the key was posted lately in this block) is a few
 * instructions without a call; the others wait in cands[] for post_cands. */
static inline __attribute__((always_inline)) void post(struct qe_idx_builder *b, uint8_t type, uint64_t v0, uint64_t v1,
							uint8_t len, uint32_t block)
{
	struct recent *r = &b->recent[recent_slot(type, v0, v1)];
	if (r->block == block && r->v0 == v0 && r->v1 == v1 && r->type == type)
		return;
	r->block = block;
	r->v0 = v0;
	r->v1 = v1;
	r->type = type;
	if (b->ncands == sizeof b->cands / sizeof b->cands[0])
		post_cands(b); /* a packet with more keys than room is left: the waiting ones first */
	uint32_t h = key_hash(type, v0, v1);
	__builtin_prefetch(&b->keys[slot_of(h, b->keys_mask)], 1);
	b->cands[b->ncands++] = (struct cand){ v0, v1, h, block, type, len };
}

/* Waiting candidates are looked up once this many wait: a key missing the recent table is
 * looked up some 10-20 packets after its slot was prefetched, the table (tens of thousands of keys,
 * megabytes) being mostly out of the first-level caches. Looked up right after its own packet
 * (before): on 2 files of bench traffic qe-index spent half its lookups' time waiting on that load. */
#define CANDS_DRAIN 48

static void post_slow(struct qe_idx_builder *b, const struct cand *c, uint32_t block)
{
	uint32_t h = slot_of(c->hash, b->keys_mask);
	struct key *k;
	for (;;) {
		k = &b->keys[h];
		if (!k->type)
			break;
		if (k->v0 == c->v0 && k->v1 == c->v1 && k->type == c->type)
			goto found;
		h = (h + 1) & b->keys_mask;
	}
	if ((b->nkeys + 1) * 2 > b->keys_mask) {
		if (grow_keys(b) < 0)
			goto oom;
		post_slow(b, c, block); /* into the grown table */
		return;
	}
	k->type = c->type;
	k->len = c->len;
	k->v0 = c->v0;
	k->v1 = c->v1;
	k->last_block = NO_BLOCK;
	k->seg_count = 0;
	b->nkeys++;
found:
	if (k->last_block == block)
		return;
	if (k->seg_count == 0 && b->nseg_keys == b->seg_keys_cap &&
	    grow_array((void **)&b->seg_keys, &b->seg_keys_cap, sizeof *b->seg_keys, &b->mem) < 0)
		goto oom;
	if (log_room(b, 3) < 0)
		goto oom;
	if (b->log_block != block) {
		b->log[b->nlog++] = LOG_MARK;
		b->log[b->nlog++] = block;
		b->log_block = block;
	}
	uint32_t ki = (uint32_t)(k - b->keys);
	b->log[b->nlog++] = ki;
	k->last_block = block;
	if (k->seg_count++ == 0)
		b->seg_keys[b->nseg_keys++] = ki;
	return;
oom:
	b->broken = 1;
}

static __attribute__((noinline)) void post_cands(struct qe_idx_builder *b)
{
	for (uint32_t i = 0; i < b->ncands && !b->broken; i++)
		post_slow(b, &b->cands[i], b->cands[i].block);
	b->ncands = 0;
}

/* Values as post() takes them: loads of the bytes as they are, no byte-by-byte copy. */
static inline void post16(struct qe_idx_builder *b, uint8_t type, const uint8_t *p, uint32_t block)
{
	uint64_t v0, v1;
	memcpy(&v0, p, 8);
	memcpy(&v1, p + 8, 8);
	post(b, type, v0, v1, 16, block);
}

static inline void post4(struct qe_idx_builder *b, uint8_t type, const uint8_t *p, uint32_t block)
{
	uint32_t x;
	memcpy(&x, p, 4);
	post(b, type, x, 0, 4, block);
}

static inline void post6(struct qe_idx_builder *b, uint8_t type, const uint8_t *p, uint32_t block)
{
	uint32_t x;
	uint16_t y;
	memcpy(&x, p, 4);
	memcpy(&y, p + 4, 2);
	uint64_t v0 = 0;
	memcpy(&v0, &x, 4); /* byte order kept: x then y as they were in the packet */
	uint64_t yy = y;
	v0 |= yy << 32;
	post(b, type, v0, 0, 6, block);
}

/* A 16-bit or 8-bit value, in network order in the key. */
static inline void post_be16(struct qe_idx_builder *b, uint8_t type, uint16_t v, uint32_t block)
{
	uint8_t bytes[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	uint16_t x;
	memcpy(&x, bytes, 2);
	post(b, type, x, 0, 2, block);
}

/* The first fragment's ports are kept for the datagram's later fragments, which carry none: a
 * port lookup then finds every fragment of a matching datagram (fragments that arrive before
 * their first one are found by their addresses only). */
static int frag_ports(struct qe_idx_builder *b, const struct qe_pf_ip *ip, uint16_t *sport, uint16_t *dport)
{
	if (ip->frag == QE_PF_FRAG_FIRST) {
		if (ip->has_ports == (QE_PF_SPORT | QE_PF_DPORT))
			qe_frag_remember(&b->frags, ip, ip->sport, ip->dport);
		return 0;
	}
	return qe_frag_lookup(&b->frags, ip, sport, dport);
}

static void post_port(struct qe_idx_builder *b, uint16_t port, uint32_t block)
{
	post_be16(b, QE_IDX_KEY_PORT, port, block);
}

/* The first record starting in a block: records come in file order, so a block's first is the
 * first record seen in a block past those already known (the blocks between hold no start). */
static void block_start(struct qe_idx_builder *b, uint64_t off, uint32_t block)
{
	if (block >= b->bfirst_cap) {
		uint32_t cap = b->bfirst_cap ? b->bfirst_cap : 256;
		while (cap <= block)
			cap *= 2;
		uint32_t *p = realloc(b->bfirst, (size_t)cap * sizeof *p);
		if (!p) {
			b->broken = 1;
			return;
		}
		b->mem += (size_t)(cap - b->bfirst_cap) * sizeof *p;
		b->bfirst = p;
		b->bfirst_cap = cap;
	}
	for (uint32_t i = b->nbfirst; i < block; i++)
		b->bfirst[i] = QE_IDX_BT_NONE;
	b->bfirst[block] = (uint32_t)(off & (b->block_size - 1));
	b->nbfirst = block + 1;
}

int qe_idx_tunnels(const struct qe_idx_builder *b)
{
	return b->tunnels;
}

void qe_idx_add(struct qe_idx_builder *b, uint64_t off, uint64_t ts_ns, const unsigned char *data, uint32_t caplen)
{
	struct qe_packet_fields f;
	qe_packet_parse(b->linktype, data, caplen, b->tunnels, &f);
	qe_idx_add_parsed(b, off, ts_ns, caplen, &f);
}

void qe_idx_add_parsed(struct qe_idx_builder *b, uint64_t off, uint64_t ts_ns, uint32_t caplen, const struct qe_packet_fields *pf)
{
	if (b->records++ == 0) {
		b->file_lo = b->seg_lo = off;
		b->first_ns = ts_ns;
	}
	if (b->pending++ == 0) {
		b->seg_first_ns = ts_ns;
		b->seg_first_off = off;
	}
	b->last_ns = ts_ns;
	b->end = off + QE_PCAP_RECORD_LEN + caplen;
	uint32_t block = (uint32_t)(off >> b->block_shift);
	if (block >= b->nbfirst && !b->broken)
		block_start(b, off, block);
	if (b->broken)
		return;

	uint32_t fields = b->fields;

	if (fields & QE_IDX_FIELD_MAC) {
		if (pf->src_mac)
			post6(b, QE_IDX_KEY_MAC, pf->src_mac, block);
		if (pf->dst_mac)
			post6(b, QE_IDX_KEY_MAC, pf->dst_mac, block);
	}
	if (fields & QE_IDX_FIELD_VLAN)
		for (int i = 0; i < pf->nvlan; i++)
			post_be16(b, QE_IDX_KEY_VLAN, pf->vlan[i], block);
	if (fields & QE_IDX_FIELD_IP) {
		if (pf->arp_spa)
			post4(b, QE_IDX_KEY_IPV4, pf->arp_spa, block);
		if (pf->arp_tpa)
			post4(b, QE_IDX_KEY_IPV4, pf->arp_tpa, block);
	}
	for (int i = 0; i < pf->nip; i++) {
		const struct qe_pf_ip *ip = &pf->ip[i];
		if (fields & QE_IDX_FIELD_IP) {
			if (ip->version == 4) {
				if (ip->src)
					post4(b, QE_IDX_KEY_IPV4, ip->src, block);
				if (ip->dst)
					post4(b, QE_IDX_KEY_IPV4, ip->dst, block);
			} else {
				if (ip->src)
					post16(b, QE_IDX_KEY_IPV6, ip->src, block);
				if (ip->dst)
					post16(b, QE_IDX_KEY_IPV6, ip->dst, block);
			}
		}
		/* The protocol of the outer header only: that is what `ip proto` and `tcp` test. IPv6
		 * gets every next-header value of its chain, so `ip6 proto 0` and `ip6 protochain`
		 * narrow too. */
		if ((fields & QE_IDX_FIELD_PROTO) && i == 0) {
			if (ip->has_proto)
				post(b, QE_IDX_KEY_PROTO, ip->proto, 0, 1, block);
			for (int j = 0; j < ip->nchain; j++)
				post(b, QE_IDX_KEY_PROTO, ip->chain[j], 0, 1, block);
		}
		if (fields & QE_IDX_FIELD_PORT) {
			uint16_t sport = ip->sport, dport = ip->dport;
			int has = ip->has_ports;
			if (ip->frag != QE_PF_FRAG_NONE && ip->src && ip->dst && frag_ports(b, ip, &sport, &dport))
				has = QE_PF_SPORT | QE_PF_DPORT;
			else if (ip->frag == QE_PF_FRAG_LATER) {
				/* Its first fragment is not in the table (another file, or pushed out): port 0
				 * stands for "ports unknown", which every port lookup adds
				 * (daemon/src/index/plan.ts), so qe-extract keeping a whole datagram never outruns the index. */
				sport = 0;
				has = QE_PF_SPORT;
			}
			if (has & QE_PF_SPORT)
				post_port(b, sport, block);
			if (has & QE_PF_DPORT)
				post_port(b, dport, block);
		}
	}
	if (b->ncands >= CANDS_DRAIN)
		post_cands(b);
}

int qe_idx_full(const struct qe_idx_builder *b)
{
	return b->broken || b->mem >= QE_IDX_BUILD_MEM_MAX;
}

uint64_t qe_idx_records(const struct qe_idx_builder *b)
{
	return b->records;
}

uint64_t qe_idx_pending_records(const struct qe_idx_builder *b)
{
	return b->pending;
}

uint64_t qe_idx_keys(const struct qe_idx_builder *b)
{
	return b->nkeys;
}

/* ---- output ---- */

void qe_idx_header(const struct qe_idx_builder *b, int complete, unsigned char out[QE_IDX_HEADER_LEN])
{
	memset(out, 0, QE_IDX_HEADER_LEN);
	memcpy(out, QE_IDX_MAGIC, QE_IDX_MAGIC_LEN);
	qe_put16(out + QE_IDX_H_VERSION, QE_IDX_VERSION);
	qe_put16(out + QE_IDX_H_HEADER_LEN, QE_IDX_HEADER_LEN);
	qe_put32(out + QE_IDX_H_FLAGS, complete ? QE_IDX_FLAG_COMPLETE : 0);
	qe_put32(out + QE_IDX_H_BLOCK_SIZE, b->block_size);
	qe_put32(out + QE_IDX_H_FIELDS, b->fields);
	qe_put32(out + QE_IDX_H_LINKTYPE, b->linktype);
	qe_put32(out + QE_IDX_H_BUILDER, QE_IDX_BUILDER_REVISION);
	qe_put64(out + QE_IDX_H_PCAP_FIRST_NS, b->records ? b->first_ns : 0);
	qe_put32(out + QE_IDX_H_CRC, qe_crc32(out, QE_IDX_H_CRC));
}

/* Directory order, (type, value bytes), as three integers: sorting compares words, not bytes
 * through a callback (a spill sorts every key of the segment). */
struct sort_key {
	uint64_t a, b;
	uint32_t c, id;
};

static inline int sk_less(const struct sort_key *x, const struct sort_key *y)
{
	if (x->a != y->a)
		return x->a < y->a;
	if (x->b != y->b)
		return x->b < y->b;
	return x->c < y->c;
}

static void sk_sort(struct sort_key *v, size_t n)
{
	while (n > 16) {
		struct sort_key *m = &v[n / 2], *l = &v[n - 1], t;
		/* median of three to v[0] */
		if (sk_less(m, v)) { t = *m; *m = *v; *v = t; }
		if (sk_less(l, v)) { t = *l; *l = *v; *v = t; }
		if (sk_less(l, m)) { t = *l; *l = *m; *m = t; }
		t = *m; *m = *v; *v = t;
		struct sort_key pivot = v[0];
		size_t i = 0, j = n;
		for (;;) {
			do i++; while (i < n && sk_less(&v[i], &pivot));
			do j--; while (sk_less(&pivot, &v[j]));
			if (i >= j)
				break;
			t = v[i]; v[i] = v[j]; v[j] = t;
		}
		t = v[0]; v[0] = v[j]; v[j] = t;
		/* recurse into the smaller side, loop on the larger: the stack stays logarithmic */
		if (j < n - j - 1) {
			sk_sort(v, j);
			v += j + 1;
			n -= j + 1;
		} else {
			sk_sort(v + j + 1, n - j - 1);
			n = j;
		}
	}
	for (size_t i = 1; i < n; i++) {
		struct sort_key x = v[i];
		size_t j = i;
		for (; j > 0 && sk_less(&x, &v[j - 1]); j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

/* Sorts key ids into directory order; -1 out of memory. */
static int sort_keys(const struct qe_idx_builder *b, uint32_t *ids, uint32_t n)
{
	struct sort_key *v = malloc((size_t)(n ? n : 1) * sizeof *v);
	if (!v)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const struct key *k = &b->keys[ids[i]];
		uint64_t h = __builtin_bswap64(k->v0), l = __builtin_bswap64(k->v1);
		v[i] = (struct sort_key){ (uint64_t)k->type << 56 | h >> 8, h << 56 | l >> 8, (uint32_t)(l & 0xff), ids[i] };
	}
	sk_sort(v, n);
	for (uint32_t i = 0; i < n; i++)
		ids[i] = v[i].id;
	free(v);
	return 0;
}

static int reserve_bytes(uint8_t **p, uint32_t *cap, uint64_t need, size_t *mem)
{
	if (need <= *cap)
		return 0;
	if (need > UINT32_MAX / 2)
		return -1;
	uint32_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	uint8_t *q = realloc(*p, n);
	if (!q)
		return -1;
	*mem += n - *cap;
	*p = q;
	*cap = n;
	return 0;
}

/* Sorts the log into a run: the logged keys in value order, each with its blocks (the log is in
 * file order, so a counting scatter keeps each key's blocks ascending). */
static int spill(struct qe_idx_builder *b)
{
	uint32_t n = b->nseg_keys;
	if (!n) {
		b->nlog = 0;
		b->log_block = NO_BLOCK;
		return 0;
	}
	uint32_t postings = 0;
	for (uint32_t i = 0; i < n; i++)
		postings += b->keys[b->seg_keys[i]].seg_count;
	uint32_t *blocks = malloc((size_t)postings * sizeof *blocks);
	if (!blocks)
		return -1;
	while (b->nents + n > b->ents_cap)
		if (grow_array((void **)&b->ents, &b->ents_cap, sizeof *b->ents, &b->mem) < 0)
			goto fail;
	if (b->nruns == b->runs_cap && grow_array((void **)&b->runs, &b->runs_cap, sizeof *b->runs, &b->mem) < 0)
		goto fail;
	/* A tail is at most 5 bytes a posting (block numbers are u32). */
	if (reserve_bytes(&b->pool, &b->pool_cap, (uint64_t)b->pool_len + (uint64_t)postings * 5, &b->mem) < 0)
		goto fail;
	if (sort_keys(b, b->seg_keys, n) < 0)
		goto fail;
	uint32_t at = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct key *k = &b->keys[b->seg_keys[i]];
		uint32_t c = k->seg_count;
		k->seg_count = at; /* now where its next block goes */
		b->ents[b->nents + i] = (struct run_entry){ .key = b->seg_keys[i], .count = c };
		at += c;
	}
	uint32_t block = 0;
	for (uint32_t i = 0; i < b->nlog; i++) {
		uint32_t v = b->log[i];
		if (v == LOG_MARK) {
			block = b->log[++i];
			continue;
		}
		blocks[b->keys[v].seg_count++] = block;
	}
	at = 0;
	uint8_t *p = b->pool + b->pool_len;
	for (uint32_t i = 0; i < n; i++) {
		struct run_entry *e = &b->ents[b->nents + i];
		const uint32_t *bl = blocks + at;
		e->first = bl[0];
		e->last = bl[e->count - 1];
		e->off = (uint32_t)(p - b->pool);
		for (uint32_t j = 1; j < e->count; j++)
			p += leb_put(p, bl[j] - bl[j - 1]);
		at += e->count;
		b->keys[e->key].seg_count = 0;
	}
	b->runs[b->nruns++] = (struct run){ b->nents, b->nents + n };
	b->nents += n;
	b->pool_len = (uint32_t)(p - b->pool);
	b->nseg_keys = 0;
	b->nlog = 0;
	b->log_block = NO_BLOCK;
	free(blocks);
	return 0;
fail:
	free(blocks);
	return -1;
}

static uint32_t tail_end(const struct qe_idx_builder *b, uint32_t e)
{
	return e + 1 < b->nents ? b->ents[e + 1].off : b->pool_len;
}

struct span {
	uint64_t off_lo, off_hi, records, first_ns, last_ns;
	uint64_t first_off; /* the first record's offset (a block cut by off_lo has an earlier one) */
};

/* The segment's block table (index-format.h) at p: the file's first record of each block, but
 * for the block off_lo cuts, the segment's own first record. */
static void write_block_table(const struct qe_idx_builder *b, const struct span *s, unsigned char *p)
{
	uint64_t n = qe_idx_bt_blocks(s->off_lo, s->off_hi, b->block_shift);
	uint32_t b0 = (uint32_t)(s->off_lo >> b->block_shift);
	unsigned char *group = p;
	for (uint64_t i = 0; i < n; i++) {
		uint32_t blk = b0 + (uint32_t)i, v = blk < b->nbfirst ? b->bfirst[blk] : QE_IDX_BT_NONE;
		if (i == 0)
			v = s->records && (s->first_off >> b->block_shift) == blk ? (uint32_t)(s->first_off & (b->block_size - 1))
									       : QE_IDX_BT_NONE;
		qe_put32(p, v);
		p += 4;
		if ((i + 1) % QE_IDX_BT_GROUP == 0 || i + 1 == n) {
			qe_put32(p, qe_crc32(group, (size_t)(p - group)));
			p += 4;
			group = p;
		}
	}
}

/* One segment of the runs [r_lo, r_hi): each key's entries of those runs (`order`: entry
 * indexes grouped by key in value order, each key's in run order; `nkeys_out` keys) make one list,
 * the first posting absolute and the rest as differences, as if one run had held them all. */
static int write_segment(const struct qe_idx_builder *b, const uint32_t *order, uint32_t nents, uint32_t nkeys_out,
			 const struct span *s, struct qe_out *out)
{
	uint64_t bound = 0;
	for (uint32_t i = 0; i < nents; i++)
		bound += 5 + (tail_end(b, order[i]) - b->ents[order[i]].off);
	uint64_t table = qe_idx_bt_len(qe_idx_bt_blocks(s->off_lo, s->off_hi, b->block_shift));
	uint64_t fence_len = qe_idx_fence_len(nkeys_out);
	if (qe_out_reserve(out, QE_IDX_SEGMENT_HEADER_LEN + fence_len + (uint64_t)nkeys_out * QE_IDX_ENTRY_LEN + bound + table) < 0)
		return -1;
	unsigned char *h = out->p + out->len, *fence = h + QE_IDX_SEGMENT_HEADER_LEN, *f = fence;
	unsigned char *e = fence + fence_len;
	unsigned char *area = e + (size_t)nkeys_out * QE_IDX_ENTRY_LEN, *p = area;
	for (uint32_t i = 0, n = 0; i < nents; e += QE_IDX_ENTRY_LEN, n++) {
		const struct run_entry *first = &b->ents[order[i]];
		const struct key *k = &b->keys[first->key];
		if (n % QE_IDX_FENCE_STRIDE == 0) {
			f[0] = k->type;
			memcpy(f + 1, &k->v0, 8);
			memcpy(f + 9, &k->v1, 8);
			f += QE_IDX_FENCE_KEY_LEN;
		}
		unsigned char *start = p;
		uint32_t count = 0, prev = 0;
		for (; i < nents && b->ents[order[i]].key == first->key; i++) {
			const struct run_entry *r = &b->ents[order[i]];
			p += leb_put(p, count ? r->first - prev : r->first);
			uint32_t tl = tail_end(b, order[i]) - r->off;
			memcpy(p, b->pool + r->off, tl);
			p += tl;
			count += r->count;
			prev = r->last;
		}
		memset(e, 0, QE_IDX_ENTRY_LEN);
		e[QE_IDX_E_TYPE] = k->type;
		e[QE_IDX_E_VALUE_LEN] = k->len;
		qe_put32(e + QE_IDX_E_COUNT, count);
		qe_put64(e + QE_IDX_E_OFF, (uint64_t)(start - area));
		qe_put32(e + QE_IDX_E_LEN, (uint32_t)(p - start));
		memcpy(e + QE_IDX_E_VALUE, &k->v0, 8);
		memcpy(e + QE_IDX_E_VALUE + 8, &k->v1, 8);
		qe_put16(e + QE_IDX_E_KEY_CRC, (uint16_t)qe_crc32(e, QE_IDX_ENTRY_LEN));
		qe_put32(e + QE_IDX_E_CRC, qe_crc32_more(qe_crc32(e, QE_IDX_ENTRY_LEN), start, (size_t)(p - start)));
	}
	qe_put32(f, qe_crc32(fence, (size_t)(f - fence)));
	write_block_table(b, s, p);
	uint64_t body = (uint64_t)(p - (h + QE_IDX_SEGMENT_HEADER_LEN)) + table;
	memset(h, 0, QE_IDX_SEGMENT_HEADER_LEN);
	qe_put32(h + QE_IDX_S_MAGIC, QE_IDX_SEGMENT_MAGIC);
	qe_put32(h + QE_IDX_S_NKEYS, nkeys_out);
	qe_put64(h + QE_IDX_S_BODY_LEN, body);
	qe_put64(h + QE_IDX_S_OFF_LO, s->off_lo);
	qe_put64(h + QE_IDX_S_OFF_HI, s->off_hi);
	qe_put64(h + QE_IDX_S_RECORDS, s->records);
	qe_put64(h + QE_IDX_S_FIRST_NS, s->first_ns);
	qe_put64(h + QE_IDX_S_LAST_NS, s->last_ns);
	qe_put32(h + QE_IDX_S_BODY_CRC, qe_crc32(h + QE_IDX_SEGMENT_HEADER_LEN, body));
	qe_put32(h + QE_IDX_S_CRC, qe_crc32(h, QE_IDX_S_CRC));
	out->len += QE_IDX_SEGMENT_HEADER_LEN + body;
	return 0;
}

/* The segment of runs [r_lo, r_hi). One run is in key order already; several are merged by a
 * counting sort on the key's rank (keys sorted once), which keeps each key's entries in run
 * order. */
static int write_runs(const struct qe_idx_builder *b, uint32_t r_lo, uint32_t r_hi, const struct span *s, struct qe_out *out)
{
	uint32_t e_lo = r_lo < r_hi ? b->runs[r_lo].ent_lo : 0, e_hi = r_lo < r_hi ? b->runs[r_hi - 1].ent_hi : 0;
	uint32_t n = e_hi - e_lo;
	uint32_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
	if (!order)
		return -1;
	uint32_t nk = n;
	if (r_hi - r_lo <= 1) {
		for (uint32_t i = 0; i < n; i++)
			order[i] = e_lo + i;
	} else {
		uint32_t *pos = calloc((size_t)b->keys_mask + 1, sizeof *pos), *ids = malloc((size_t)n * sizeof *ids);
		if (!pos || !ids) {
			free(pos);
			free(ids);
			free(order);
			return -1;
		}
		nk = 0;
		for (uint32_t i = e_lo; i < e_hi; i++)
			if (pos[b->ents[i].key]++ == 0)
				ids[nk++] = b->ents[i].key;
		if (sort_keys(b, ids, nk) < 0) {
			free(pos);
			free(ids);
			free(order);
			return -1;
		}
		uint32_t at = 0;
		for (uint32_t i = 0; i < nk; i++) {
			uint32_t c = pos[ids[i]];
			pos[ids[i]] = at;
			at += c;
		}
		for (uint32_t i = e_lo; i < e_hi; i++)
			order[pos[b->ents[i].key]++] = i;
		free(pos);
		free(ids);
	}
	int rc = write_segment(b, order, n, nk, s, out);
	free(order);
	return rc;
}

int qe_idx_next_segment(struct qe_idx_builder *b, struct qe_out *out)
{
	post_cands(b);
	if (b->broken)
		return -1;
	if (!b->pending)
		return 0;
	if (spill(b) < 0)
		return -1;
	struct span s = { b->seg_lo, b->end, b->pending, b->seg_first_ns, b->last_ns, b->seg_first_off };
	if (write_runs(b, b->emitted_runs, b->nruns, &s, out) < 0)
		return -1;
	b->emitted_runs = b->nruns;
	b->pending = 0;
	b->seg_lo = b->end;
	return 1;
}

int qe_idx_complete(struct qe_idx_builder *b, struct qe_out *out)
{
	post_cands(b);
	if (b->broken || spill(b) < 0 || qe_out_reserve(out, QE_IDX_HEADER_LEN) < 0)
		return -1;
	size_t at = out->len;
	qe_idx_header(b, 1, out->p + out->len);
	out->len += QE_IDX_HEADER_LEN;
	struct span s = { b->file_lo, b->end, b->records, b->records ? b->first_ns : 0, b->records ? b->last_ns : 0, b->file_lo };
	int rc = write_runs(b, 0, b->nruns, &s, out);
	if (rc < 0)
		out->len = at;
	return rc;
}

int64_t qe_idx_write_complete(struct qe_idx_builder *b, const char *path, int durable)
{
	struct qe_out out = { 0 };
	if (qe_idx_complete(b, &out) < 0) {
		errno = ENOMEM;
		return -1;
	}
	int rc = qe_write_replace(path, QE_IDX_TMP_EXT, out.p, out.len, durable);
	int64_t len = (int64_t)out.len;
	int err = errno;
	qe_out_free(&out);
	errno = err;
	return rc < 0 ? -1 : len;
}

static const struct {
	const char *name;
	uint32_t bit;
} field_names[] = {
	{ "mac", QE_IDX_FIELD_MAC },	 { "vlan", QE_IDX_FIELD_VLAN },	  { "ip", QE_IDX_FIELD_IP },
	{ "port", QE_IDX_FIELD_PORT }, { "proto", QE_IDX_FIELD_PROTO }, { "tunnel", QE_IDX_FIELD_TUNNEL },
};

int64_t qe_idx_parse_fields(const char *list, const char **bad, size_t *bad_len)
{
	uint32_t bits = 0;
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, ", ");
		size_t i;
		for (i = 0; i < sizeof field_names / sizeof field_names[0]; i++)
			if (strlen(field_names[i].name) == n && memcmp(field_names[i].name, p, n) == 0)
				break;
		if (i == sizeof field_names / sizeof field_names[0]) {
			*bad = p;
			*bad_len = n;
			return -1;
		}
		bits |= field_names[i].bit;
		p += n;
	}
	return bits;
}
