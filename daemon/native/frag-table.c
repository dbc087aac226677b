#include "frag-table.h"

#include <string.h>

static uint32_t frag_slot(const struct qe_pf_ip *ip, size_t alen)
{
	uint32_t h = ip->frag_id * 0x9e3779b1u ^ (uint32_t)ip->proto << 8 ^ ip->version;
	for (size_t i = 0; i < alen; i++)
		h = (h ^ ip->src[i] ^ (uint32_t)ip->dst[i] << 8) * 0x01000193u;
	return h & (QE_FRAG_SLOTS - 1);
}

void qe_frag_remember(struct qe_frag_table *t, const struct qe_pf_ip *ip, uint16_t a, uint16_t b)
{
	size_t alen = ip->version == 4 ? 4 : 16;
	struct qe_frag *f = &t->slot[frag_slot(ip, alen)];
	f->used = 1;
	f->version = ip->version;
	f->proto = ip->proto;
	f->id = ip->frag_id;
	memcpy(f->src, ip->src, alen);
	memcpy(f->dst, ip->dst, alen);
	f->a = a;
	f->b = b;
}

int qe_frag_lookup(const struct qe_frag_table *t, const struct qe_pf_ip *ip, uint16_t *a, uint16_t *b)
{
	size_t alen = ip->version == 4 ? 4 : 16;
	const struct qe_frag *f = &t->slot[frag_slot(ip, alen)];
	if (!f->used || f->version != ip->version || f->proto != ip->proto || f->id != ip->frag_id ||
	    memcmp(f->src, ip->src, alen) != 0 || memcmp(f->dst, ip->dst, alen) != 0)
		return 0;
	*a = f->a;
	*b = f->b;
	return 1;
}
