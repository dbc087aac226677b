#include "table-feed.h"

static inline void add_parsed(const struct qe_tables *t, uint64_t off, uint64_t ts_ns, uint32_t caplen, uint32_t origlen,
			      const unsigned char *data, const struct qe_packet_fields *f)
{
	if (t->idx)
		qe_idx_add_parsed(t->idx, off, ts_ns, caplen, f);
	uint32_t ref = QE_FLOW_REF_NONE;
	if (t->flows)
		ref = qe_flow_add(t->flows, off, ts_ns, caplen, origlen, f);
	if (t->elems)
		qe_elements_add(t->elems, ts_ns, caplen, origlen, data, f, t->flow_file, ref);
}

void qe_tables_add(const struct qe_tables *t, uint64_t off, uint64_t ts_ns, uint32_t caplen, uint32_t origlen,
		   const unsigned char *data)
{
	if (!t->idx && !t->flows && !t->elems)
		return;
	struct qe_packet_fields f;
	qe_packet_parse(t->linktype, data, caplen, t->idx ? qe_idx_tunnels(t->idx) : 0, &f);
	add_parsed(t, off, ts_ns, caplen, origlen, data, &f);
}

static inline void add_rec(const struct qe_tables *t, const struct qe_tables_rec *r)
{
	add_parsed(t, r->off, r->ts_ns, r->caplen, r->origlen, r->data, &r->f);
}

void qe_tables_batch_add(struct qe_tables_batch *b, uint64_t off, uint64_t ts_ns, uint32_t caplen, uint32_t origlen,
			 const unsigned char *data)
{
	const struct qe_tables *t = &b->t;
	if (!t->idx && !t->flows && !t->elems)
		return;
	if (b->n == QE_TABLES_DEPTH) {
		add_rec(t, &b->q[b->head]);
		b->head = (b->head + 1) % QE_TABLES_DEPTH;
		b->n--;
	}
	struct qe_tables_rec *r = &b->q[(b->head + b->n++) % QE_TABLES_DEPTH];
	r->off = off;
	r->ts_ns = ts_ns;
	r->caplen = caplen;
	r->origlen = origlen;
	r->data = data;
	qe_packet_parse(t->linktype, data, caplen, t->idx ? qe_idx_tunnels(t->idx) : 0, &r->f);
	if (t->flows) {
		r->hint = qe_flow_prefetch_slot(t->flows, &r->f);
		if (b->n > QE_TABLES_LAG)
			qe_flow_prefetch_flow(t->flows, b->q[(b->head + b->n - 1 - QE_TABLES_LAG) % QE_TABLES_DEPTH].hint);
	}
}

void qe_tables_flush(struct qe_tables_batch *b)
{
	const struct qe_tables *t = &b->t;
	if (t->flows)
		for (uint32_t i = b->n > QE_TABLES_LAG ? b->n - QE_TABLES_LAG : 0; i < b->n; i++)
			qe_flow_prefetch_flow(t->flows, b->q[(b->head + i) % QE_TABLES_DEPTH].hint);
	for (uint32_t i = 0; i < b->n; i++)
		add_rec(t, &b->q[(b->head + i) % QE_TABLES_DEPTH]);
	b->head = b->n = 0;
}
