#include "index-build.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "packet-fields.h"
#include "pcap-format.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "keys are held as the words their bytes load into on a little-endian machine (struct key)"
#endif

#define FRAG_SLOTS 1024 /* datagrams being reassembled at once, as far as their ports go */
#define LIST_INLINE 16
#define NO_BLOCK UINT32_MAX

/* A key and its posting list for the whole file: block numbers, the first absolute, then
 * differences (the complete index's list as it is). What a posting touches fits one cache line: with many
 * hosts most postings go to keys out of the cache, and a line is one miss. */
struct key {
	uint64_t v0, v1; /* the value's 16 bytes as they lie in memory (network order, zero-padded) */
	uint8_t type, len;
	uint32_t count;
	uint32_t last_block;
	uint32_t seg_count;
	uint32_t list_len, list_cap;
	union {
		uint8_t inl[LIST_INLINE];
		uint8_t *heap;
	} list;
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct key) == 64, "a key is one cache line");

/* A key's part in the pending segment, used once per key and segment: the segment's part of its
 * list starts at pos, after its first posting, which a segment writes absolute (first). */
struct key_seg {
	uint32_t first;
	uint32_t pos;
};

/* What a datagram's first fragment said about its ports, for its later fragments. */
struct frag {
	uint8_t used, version, proto, pad;
	uint32_t id;
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
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

	struct key *keys; /* 64-byte aligned (grow_keys) */
	struct key_seg *kseg; /* beside keys, same index */
	uint32_t nkeys, keys_cap;
	uint32_t *slots; /* open addressing: key index + 1, 0 empty */
	uint32_t slots_mask;
	uint32_t *seg_keys; /* keys with postings in the pending segment */
	uint32_t nseg_keys, seg_keys_cap;
	size_t mem;

	uint64_t records, first_ns, last_ns;
	uint64_t file_lo, end; /* first record's offset, and just past the last */
	uint64_t pending, seg_lo, seg_first_ns, seg_first_off;
	/* For each block of the file, where its first record starts (offset in the block), or
	 * QE_IDX_BT_NONE: the block tables are cut from it. */
	uint32_t *bfirst;
	uint32_t nbfirst, bfirst_cap;

	struct recent recent[RECENT_SLOTS];
	struct frag frags[FRAG_SLOTS];
};

/* ---- little-endian output ---- */

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t crc(const unsigned char *p, size_t n)
{
	uLong c = crc32(0L, Z_NULL, 0);
	while (n) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		c = crc32(c, p, chunk);
		p += chunk;
		n -= chunk;
	}
	return (uint32_t)c;
}

static size_t leb_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

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
	b->slots_mask = 1023;
	b->slots = calloc(b->slots_mask + 1, sizeof *b->slots);
	if (!b->slots) {
		free(b);
		return NULL;
	}
	b->mem = sizeof *b + (b->slots_mask + 1) * sizeof *b->slots;
	b->file_lo = b->end = b->seg_lo = QE_PCAP_GLOBAL_LEN;
	for (uint32_t i = 0; i < RECENT_SLOTS; i++)
		b->recent[i].block = NO_BLOCK;
	return b;
}

static uint8_t *list_bytes(struct key *k)
{
	return k->list_cap > LIST_INLINE ? k->list.heap : k->list.inl;
}

void qe_idx_builder_free(struct qe_idx_builder *b)
{
	if (!b)
		return;
	for (uint32_t i = 0; i < b->nkeys; i++)
		if (b->keys[i].list_cap > LIST_INLINE)
			free(b->keys[i].list.heap);
	free(b->keys);
	free(b->kseg);
	free(b->slots);
	free(b->seg_keys);
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

/* Every probe of the large table starts here (post_slow, grow_slots): both must agree. */
static inline uint32_t slot_of(uint32_t hash, uint32_t mask)
{
	return (hash >> 8) & mask;
}

static int grow_slots(struct qe_idx_builder *b)
{
	uint32_t cap = (b->slots_mask + 1) * 2;
	uint32_t *s = calloc(cap, sizeof *s);
	if (!s)
		return -1;
	for (uint32_t i = 0; i < b->nkeys; i++) {
		uint32_t h = slot_of(key_hash(b->keys[i].type, b->keys[i].v0, b->keys[i].v1), cap - 1);
		while (s[h])
			h = (h + 1) & (cap - 1);
		s[h] = i + 1;
	}
	b->mem += (size_t)(cap - b->slots_mask - 1) * sizeof *s;
	free(b->slots);
	b->slots = s;
	b->slots_mask = cap - 1;
	return 0;
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

/* keys[] grows with its alignment kept (realloc keeps 16 bytes), kseg[] with it. */
static int grow_keys(struct qe_idx_builder *b)
{
	uint32_t n = b->keys_cap ? b->keys_cap * 2 : 256;
	struct key *k = aligned_alloc(64, (size_t)n * sizeof *k);
	if (!k)
		return -1;
	struct key_seg *ks = realloc(b->kseg, (size_t)n * sizeof *ks);
	if (!ks) {
		free(k);
		return -1;
	}
	b->kseg = ks;
	if (b->nkeys)
		memcpy(k, b->keys, (size_t)b->nkeys * sizeof *k);
	free(b->keys);
	b->keys = k;
	b->mem += (size_t)(n - b->keys_cap) * (sizeof *k + sizeof *ks);
	b->keys_cap = n;
	return 0;
}

static int list_append(struct qe_idx_builder *b, struct key *k, uint64_t v)
{
	if (k->list_len + 10 > k->list_cap) {
		uint32_t cap = k->list_cap * 2;
		uint8_t *p;
		if (k->list_cap > LIST_INLINE) {
			p = realloc(k->list.heap, cap);
			if (!p)
				return -1;
		} else {
			p = malloc(cap);
			if (!p)
				return -1;
			memcpy(p, k->list.inl, k->list_len);
		}
		b->mem += cap - (k->list_cap > LIST_INLINE ? k->list_cap : 0);
		k->list.heap = p;
		k->list_cap = cap;
	}
	k->list_len += (uint32_t)leb_put(list_bytes(k) + k->list_len, v);
	return 0;
}

/* The recent-keys slot: one multiply whose top bits depend on every bit of the key. Most keys of a
 * packet were posted in its block already and stop here, so this is the per-key cost of a packet;
 * the stronger key_hash is paid only by the keys it misses. */
static inline uint32_t recent_slot(uint8_t type, uint64_t v0, uint64_t v1)
{
	uint64_t x = v0 ^ (v1 << 17 | v1 >> 47) ^ (uint64_t)type << 59;
	return (uint32_t)((x * 0x9e3779b97f4a7c15ull) >> (64 - RECENT_BITS));
}

static void post_slow(struct qe_idx_builder *b, uint8_t type, uint64_t v0, uint64_t v1, uint8_t len, uint32_t block);

/* A posting for the key (its value as two words, see struct key) in this block, unless it has one.
 * Inlined into qe_idx_add: the common case (the key was posted lately in this block) is a few
 * instructions without a call. */
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
	post_slow(b, type, v0, v1, len, block);
}

static __attribute__((noinline)) void post_slow(struct qe_idx_builder *b, uint8_t type, uint64_t v0, uint64_t v1, uint8_t len,
						 uint32_t block)
{
	uint32_t h = slot_of(key_hash(type, v0, v1), b->slots_mask);
	struct key *k;
	for (;;) {
		uint32_t s = b->slots[h];
		if (!s)
			break;
		k = &b->keys[s - 1];
		if (k->v0 == v0 && k->v1 == v1 && k->type == type)
			goto found;
		h = (h + 1) & b->slots_mask;
	}
	if (b->nkeys == b->keys_cap && grow_keys(b) < 0)
		goto oom;
	k = &b->keys[b->nkeys];
	memset(k, 0, sizeof *k);
	k->type = type;
	k->len = len;
	k->v0 = v0;
	k->v1 = v1;
	k->last_block = NO_BLOCK;
	k->list_cap = LIST_INLINE;
	b->slots[h] = ++b->nkeys;
	if (b->nkeys * 2 > b->slots_mask && grow_slots(b) < 0)
		goto oom;
found:
	if (k->last_block == block)
		return;
	if (k->seg_count == 0 && b->nseg_keys == b->seg_keys_cap &&
	    grow_array((void **)&b->seg_keys, &b->seg_keys_cap, sizeof *b->seg_keys, &b->mem) < 0)
		goto oom;
	if (list_append(b, k, k->count ? block - k->last_block : block) < 0)
		goto oom;
	k->count++;
	k->last_block = block;
	if (k->seg_count++ == 0) {
		b->kseg[k - b->keys] = (struct key_seg){ block, k->list_len };
		b->seg_keys[b->nseg_keys++] = (uint32_t)(k - b->keys);
	}
	return;
oom:
	b->broken = 1;
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

static uint32_t frag_slot(uint8_t version, uint8_t proto, uint32_t id, const uint8_t *src, const uint8_t *dst, size_t alen)
{
	uint32_t h = id * 0x9e3779b1u ^ (uint32_t)proto << 8 ^ version;
	for (size_t i = 0; i < alen; i++)
		h = (h ^ src[i] ^ (uint32_t)dst[i] << 8) * 0x01000193u;
	return h & (FRAG_SLOTS - 1);
}

/* The first fragment's ports are kept for the datagram's later fragments, which carry none: a
 * port lookup then finds every fragment of a matching datagram (fragments that arrive before
 * their first one are found by their addresses only). */
static int frag_ports(struct qe_idx_builder *b, const struct qe_pf_ip *ip, uint16_t *sport, uint16_t *dport)
{
	size_t alen = ip->version == 4 ? 4 : 16;
	struct frag *f = &b->frags[frag_slot(ip->version, ip->proto, ip->frag_id, ip->src, ip->dst, alen)];
	if (ip->frag == QE_PF_FRAG_FIRST) {
		if (ip->has_ports != (QE_PF_SPORT | QE_PF_DPORT))
			return 0;
		f->used = 1;
		f->version = ip->version;
		f->proto = ip->proto;
		f->id = ip->frag_id;
		memcpy(f->src, ip->src, alen);
		memcpy(f->dst, ip->dst, alen);
		f->sport = ip->sport;
		f->dport = ip->dport;
		return 0;
	}
	if (f->used && f->version == ip->version && f->proto == ip->proto && f->id == ip->frag_id &&
	    memcmp(f->src, ip->src, alen) == 0 && memcmp(f->dst, ip->dst, alen) == 0) {
		*sport = f->sport;
		*dport = f->dport;
		return 1;
	}
	return 0;
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

void qe_idx_add(struct qe_idx_builder *b, uint64_t off, uint64_t ts_ns, const unsigned char *data, uint32_t caplen)
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
	struct qe_packet_fields f;
	qe_packet_parse(b->linktype, data, caplen, b->tunnels, &f);

	if (fields & QE_IDX_FIELD_MAC) {
		if (f.src_mac)
			post6(b, QE_IDX_KEY_MAC, f.src_mac, block);
		if (f.dst_mac)
			post6(b, QE_IDX_KEY_MAC, f.dst_mac, block);
	}
	if (fields & QE_IDX_FIELD_VLAN)
		for (int i = 0; i < f.nvlan; i++)
			post_be16(b, QE_IDX_KEY_VLAN, f.vlan[i], block);
	if (fields & QE_IDX_FIELD_IP) {
		if (f.arp_spa)
			post4(b, QE_IDX_KEY_IPV4, f.arp_spa, block);
		if (f.arp_tpa)
			post4(b, QE_IDX_KEY_IPV4, f.arp_tpa, block);
	}
	for (int i = 0; i < f.nip; i++) {
		const struct qe_pf_ip *ip = &f.ip[i];
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
	put16(out + QE_IDX_H_VERSION, QE_IDX_VERSION);
	put16(out + QE_IDX_H_HEADER_LEN, QE_IDX_HEADER_LEN);
	put32(out + QE_IDX_H_FLAGS, complete ? QE_IDX_FLAG_COMPLETE : 0);
	put32(out + QE_IDX_H_BLOCK_SIZE, b->block_size);
	put32(out + QE_IDX_H_FIELDS, b->fields);
	put32(out + QE_IDX_H_LINKTYPE, b->linktype);
	put32(out + QE_IDX_H_BUILDER, QE_IDX_BUILDER_REVISION);
	put64(out + QE_IDX_H_PCAP_FIRST_NS, b->records ? b->first_ns : 0);
	put32(out + QE_IDX_H_CRC, crc(out, QE_IDX_H_CRC));
}

static int reserve(struct qe_idx_out *o, size_t more)
{
	if (o->len + more <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 4096;
	while (cap < o->len + more)
		cap *= 2;
	unsigned char *p = realloc(o->p, cap);
	if (!p)
		return -1;
	o->p = p;
	o->cap = cap;
	return 0;
}

void qe_idx_out_free(struct qe_idx_out *o)
{
	free(o->p);
	o->p = NULL;
	o->len = o->cap = 0;
}

static int key_cmp(const void *x, const void *y, void *ctx)
{
	const struct key *keys = ctx;
	const struct key *a = &keys[*(const uint32_t *)x], *c = &keys[*(const uint32_t *)y];
	if (a->type != c->type)
		return a->type < c->type ? -1 : 1;
	uint8_t va[QE_IDX_VALUE_LEN], vc[QE_IDX_VALUE_LEN];
	memcpy(va, &a->v0, 8);
	memcpy(va + 8, &a->v1, 8);
	memcpy(vc, &c->v0, 8);
	memcpy(vc + 8, &c->v1, 8);
	return memcmp(va, vc, QE_IDX_VALUE_LEN);
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
		put32(p, v);
		p += 4;
		if ((i + 1) % QE_IDX_BT_GROUP == 0 || i + 1 == n) {
			put32(p, crc(group, (size_t)(p - group)));
			p += 4;
			group = p;
		}
	}
}

/* One segment of the keys `ids` (sorted here): the whole file's lists, or the pending part. */
static int write_segment(const struct qe_idx_builder *b, uint32_t *ids, uint32_t n, int whole, const struct span *s,
			 struct qe_idx_out *out)
{
	struct key *keys = b->keys;
	if (n) /* a segment whose records carry no key has no list to sort (and ids may be NULL) */
		qsort_r(ids, n, sizeof *ids, key_cmp, keys);
	uint64_t postings = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct key *k = &keys[ids[i]];
		const struct key_seg *ks = &b->kseg[ids[i]];
		postings += whole ? k->list_len : leb_len(ks->first) + (k->list_len - ks->pos);
	}
	uint64_t table = qe_idx_bt_len(qe_idx_bt_blocks(s->off_lo, s->off_hi, b->block_shift));
	uint64_t body = (uint64_t)n * QE_IDX_ENTRY_LEN + postings + table;
	if (reserve(out, QE_IDX_SEGMENT_HEADER_LEN + body) < 0)
		return -1;
	unsigned char *h = out->p + out->len, *e = h + QE_IDX_SEGMENT_HEADER_LEN;
	unsigned char *area = e + (size_t)n * QE_IDX_ENTRY_LEN, *p = area;
	for (uint32_t i = 0; i < n; i++, e += QE_IDX_ENTRY_LEN) {
		struct key *k = &keys[ids[i]];
		const uint8_t *list = k->list_cap > LIST_INLINE ? k->list.heap : k->list.inl;
		unsigned char *start = p;
		if (whole) {
			memcpy(p, list, k->list_len);
			p += k->list_len;
		} else {
			const struct key_seg *ks = &b->kseg[ids[i]];
			p += leb_put(p, ks->first);
			memcpy(p, list + ks->pos, k->list_len - ks->pos);
			p += k->list_len - ks->pos;
		}
		memset(e, 0, QE_IDX_ENTRY_LEN);
		e[QE_IDX_E_TYPE] = k->type;
		e[QE_IDX_E_VALUE_LEN] = k->len;
		put32(e + QE_IDX_E_COUNT, whole ? k->count : k->seg_count);
		put64(e + QE_IDX_E_OFF, (uint64_t)(start - area));
		put32(e + QE_IDX_E_LEN, (uint32_t)(p - start));
		memcpy(e + QE_IDX_E_VALUE, &k->v0, 8);
		memcpy(e + QE_IDX_E_VALUE + 8, &k->v1, 8);
		put16(e + QE_IDX_E_KEY_CRC, (uint16_t)crc(e, QE_IDX_ENTRY_LEN));
		put32(e + QE_IDX_E_CRC, (uint32_t)crc32(crc(e, QE_IDX_ENTRY_LEN), start, (uInt)(p - start)));
	}
	write_block_table(b, s, p);
	memset(h, 0, QE_IDX_SEGMENT_HEADER_LEN);
	put32(h + QE_IDX_S_MAGIC, QE_IDX_SEGMENT_MAGIC);
	put32(h + QE_IDX_S_NKEYS, n);
	put64(h + QE_IDX_S_BODY_LEN, body);
	put64(h + QE_IDX_S_OFF_LO, s->off_lo);
	put64(h + QE_IDX_S_OFF_HI, s->off_hi);
	put64(h + QE_IDX_S_RECORDS, s->records);
	put64(h + QE_IDX_S_FIRST_NS, s->first_ns);
	put64(h + QE_IDX_S_LAST_NS, s->last_ns);
	put32(h + QE_IDX_S_BODY_CRC, crc(h + QE_IDX_SEGMENT_HEADER_LEN, body));
	put32(h + QE_IDX_S_CRC, crc(h, QE_IDX_S_CRC));
	out->len += QE_IDX_SEGMENT_HEADER_LEN + body;
	return 0;
}

int qe_idx_next_segment(struct qe_idx_builder *b, struct qe_idx_out *out)
{
	if (b->broken)
		return -1;
	if (!b->pending)
		return 0;
	struct span s = { b->seg_lo, b->end, b->pending, b->seg_first_ns, b->last_ns, b->seg_first_off };
	if (write_segment(b, b->seg_keys, b->nseg_keys, 0, &s, out) < 0)
		return -1;
	for (uint32_t i = 0; i < b->nseg_keys; i++)
		b->keys[b->seg_keys[i]].seg_count = 0;
	b->nseg_keys = 0;
	b->pending = 0;
	b->seg_lo = b->end;
	return 1;
}

int qe_idx_complete(const struct qe_idx_builder *b, struct qe_idx_out *out)
{
	if (b->broken || reserve(out, QE_IDX_HEADER_LEN) < 0)
		return -1;
	uint32_t *ids = malloc((size_t)(b->nkeys ? b->nkeys : 1) * sizeof *ids);
	if (!ids)
		return -1;
	for (uint32_t i = 0; i < b->nkeys; i++)
		ids[i] = i;
	size_t at = out->len;
	qe_idx_header(b, 1, out->p + out->len);
	out->len += QE_IDX_HEADER_LEN;
	struct span s = { b->file_lo, b->end, b->records, b->records ? b->first_ns : 0, b->records ? b->last_ns : 0, b->file_lo };
	int rc = write_segment(b, ids, b->nkeys, 1, &s, out);
	free(ids);
	if (rc < 0)
		out->len = at;
	return rc;
}

int64_t qe_idx_write_complete(const struct qe_idx_builder *b, const char *path, int durable)
{
	struct qe_idx_out out = { 0 };
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s%s", path, QE_IDX_TMP_EXT) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (qe_idx_complete(b, &out) < 0) {
		errno = ENOMEM;
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		goto fail;
	for (size_t done = 0; done < out.len;) {
		ssize_t n = write(fd, out.p + done, out.len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			goto fail_fd;
		}
		done += (size_t)n;
	}
	if (durable && fdatasync(fd) != 0)
		goto fail_fd;
	if (close(fd) != 0) {
		fd = -1;
		goto fail_fd;
	}
	if (rename(tmp, path) != 0) {
		fd = -1;
		goto fail_fd;
	}
	int64_t len = (int64_t)out.len;
	qe_idx_out_free(&out);
	return len;
fail_fd: {
	int err = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = err;
}
fail: {
	int err = errno;
	qe_idx_out_free(&out);
	errno = err;
	return -1;
}
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
