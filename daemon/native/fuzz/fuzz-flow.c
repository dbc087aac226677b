/* The flow builder on arbitrary packets. The input is a classic pcap file, walked leniently (any
 * caplen that fits what is left); each packet is copied into a buffer of exactly its length (a read
 * past caplen is a heap overflow the sanitizer reports) and parsed as the writer parses it for the
 * flows. The link type is the file's when the parser reads it, else one of those it reads; a
 * segment is emitted every few packets (the snaplen's low bits say how many). Every segment must be
 * well formed and hold what its packets added, and the complete table must be the reader's merge of
 * the segments (flow-format.h), record for record and in order. */
#include <zlib.h>

#include "harness.h"
#include "../flow-build.h"
#include "../packet-fields.h"
#include "../table-feed.h"

static const uint32_t linktypes[] = { QE_PF_LINKTYPE_ETHERNET, QE_PF_LINKTYPE_RAW,	  QE_PF_LINKTYPE_IPV4,
				      QE_PF_LINKTYPE_IPV6,     QE_PF_LINKTYPE_LINUX_SLL, QE_PF_LINKTYPE_LINUX_SLL2 };

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* A flow's identity within a file: everything but its counts, flags and times (ICMP's bit too). */
static int same_flow(const unsigned char *a, const unsigned char *b)
{
	return memcmp(a, b, 3) == 0 && memcmp(a + QE_FLOW_R_SPORT, b + QE_FLOW_R_SPORT, qe_flow_tail_off(a[0]) - QE_FLOW_R_SPORT) == 0 &&
	       ((a[QE_FLOW_R_FLAGS] ^ b[QE_FLOW_R_FLAGS]) & QE_FLOW_RF_ICMP) == 0;
}

static void add32(unsigned char *p, uint32_t v)
{
	uint32_t x = le32(p) + v;
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(x >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* The reader's merge of record r into m (flow-format.h). */
/* The reader's merge of record r into m, a record of the same flow (flow-format.h). */
static void merge(unsigned char *m, const unsigned char *r)
{
	unsigned char *mt = m + qe_flow_tail_off(m[0]);
	const unsigned char *rt = r + qe_flow_tail_off(r[0]);
	if (le64(rt + QE_FLOW_T_FIRST_NS) < le64(mt + QE_FLOW_T_FIRST_NS))
		put64(mt + QE_FLOW_T_FIRST_NS, le64(rt + QE_FLOW_T_FIRST_NS));
	if (le64(rt + QE_FLOW_T_LAST_NS) > le64(mt + QE_FLOW_T_LAST_NS))
		put64(mt + QE_FLOW_T_LAST_NS, le64(rt + QE_FLOW_T_LAST_NS));
	put64(mt + QE_FLOW_T_BYTES, le64(mt + QE_FLOW_T_BYTES) + le64(rt + QE_FLOW_T_BYTES));
	put64(mt + QE_FLOW_T_BYTES_REV, le64(mt + QE_FLOW_T_BYTES_REV) + le64(rt + QE_FLOW_T_BYTES_REV));
	for (int at = QE_FLOW_T_PACKETS; at <= QE_FLOW_T_RST; at += 4)
		add32(mt + at, le32(rt + at));
	m[QE_FLOW_R_TCP_FLAGS_FWD] |= r[QE_FLOW_R_TCP_FLAGS_FWD];
	m[QE_FLOW_R_TCP_FLAGS_REV] |= r[QE_FLOW_R_TCP_FLAGS_REV];
	if (!(m[QE_FLOW_R_FLAGS] & QE_FLOW_RF_RTT) && (r[QE_FLOW_R_FLAGS] & QE_FLOW_RF_RTT))
		memcpy(mt + QE_FLOW_T_RTT_US, rt + QE_FLOW_T_RTT_US, 4);
	m[QE_FLOW_R_FLAGS] |= r[QE_FLOW_R_FLAGS];
}

/* Checks a run of segments (chained offsets, checksums, packets) and merges their records into
 * merged[] (nmerged of them, in the order of their first record, each in a slot of
 * QE_FLOW_RECORD_MAX bytes zeroed past its length); returns the packets. */
static uint64_t check_segments(const unsigned char *p, size_t len, unsigned char *merged, size_t *nmerged, size_t cap,
			       uint64_t *lo, uint64_t *hi)
{
	uint64_t packets = 0;
	for (size_t at = 0; at < len;) {
		if (len - at < QE_FLOW_SEGMENT_HEADER_LEN)
			abort();
		const unsigned char *h = p + at;
		uint32_t n = le32(h + QE_FLOW_S_NRECORDS);
		uint64_t body = le64(h + QE_FLOW_S_BODY_LEN);
		if (le32(h + QE_FLOW_S_MAGIC) != QE_FLOW_SEGMENT_MAGIC || body > len - at - QE_FLOW_SEGMENT_HEADER_LEN ||
		    qe_flow_body_records(h + QE_FLOW_SEGMENT_HEADER_LEN, body) != (int64_t)n || le32(h + QE_FLOW_S_CRC) != (uint32_t)crc32(0, h, QE_FLOW_S_CRC) ||
		    le32(h + QE_FLOW_S_BODY_CRC) != (uint32_t)crc32(0, h + QE_FLOW_SEGMENT_HEADER_LEN, (uInt)body))
			abort();
		uint64_t off_lo = le64(h + QE_FLOW_S_OFF_LO), off_hi = le64(h + QE_FLOW_S_OFF_HI);
		if (at == 0)
			*lo = off_lo;
		else if (off_lo != *hi)
			abort(); /* segments follow one another */
		if (off_hi < off_lo)
			abort();
		*hi = off_hi;
		uint64_t seg_packets = 0;
		const unsigned char *r = h + QE_FLOW_SEGMENT_HEADER_LEN;
		for (uint32_t i = 0; i < n; i++, r += qe_flow_record_len(r[0])) {
			const unsigned char *t = r + qe_flow_tail_off(r[0]);
			uint64_t c = (uint64_t)le32(t + QE_FLOW_T_PACKETS) + le32(t + QE_FLOW_T_PACKETS_REV);
			if (c == 0 || r[QE_FLOW_R_NVLAN] > QE_FLOW_MAX_VLAN || le32(t + QE_FLOW_T_RESERVED) != 0 ||
			    le64(t + QE_FLOW_T_FIRST_NS) > le64(t + QE_FLOW_T_LAST_NS))
				abort();
			if (r[QE_FLOW_R_IP_VERSION] == 0 &&
			    (le32(t + QE_FLOW_T_PACKETS_REV) || r[QE_FLOW_R_PROTO] || r[QE_FLOW_R_FLAGS] || le32(t + QE_FLOW_T_SYN)))
				abort(); /* a non-IP record has no direction, protocol or TCP counts */
			seg_packets += c;
			size_t j;
			for (j = 0; j < *nmerged; j++)
				if (same_flow(merged + j * QE_FLOW_RECORD_MAX, r))
					break;
			if (j == *nmerged) {
				if (j == cap)
					abort();
				memcpy(merged + j * QE_FLOW_RECORD_MAX, r, qe_flow_record_len(r[0]));
				(*nmerged)++;
			} else {
				merge(merged + j * QE_FLOW_RECORD_MAX, r);
			}
		}
		if (seg_packets != le64(h + QE_FLOW_S_PACKETS))
			abort();
		packets += seg_packets;
		at += QE_FLOW_SEGMENT_HEADER_LEN + body;
	}
	return packets;
}

static int same_bytes(const struct qe_out *a, const struct qe_out *b)
{
	return a->len == b->len && (!a->len || memcmp(a->p, b->p, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qe_pcap_global g;
	if (size < QE_PCAP_GLOBAL_LEN || !qe_pcap_global_decode(data, &g))
		return 0;
	uint32_t linktype = linktypes[g.linktype % 6];
	for (int i = 0; i < 6; i++)
		if (linktypes[i] == g.linktype)
			linktype = g.linktype;
	uint32_t every = 1 + (g.snaplen & 15);
	struct qe_flow_builder *b = qe_flow_builder_new(linktype);
	if (!b)
		abort();
	struct qe_out segs = { 0 }, whole = { 0 }, segs2 = { 0 }, whole2 = { 0 };
	struct qe_tables_batch batch = { .t = { .flows = qe_flow_builder_new(linktype), .linktype = linktype } };
	if (!batch.t.flows)
		abort();
	/* The batch's packets stay until it is flushed, each in a buffer of exactly its length. */
	uint8_t **held = NULL;
	size_t nheld = 0;
	size_t off = QE_PCAP_GLOBAL_LEN;
	uint64_t n = 0;
	while (size - off >= QE_PCAP_RECORD_LEN) {
		struct qe_pcap_record r;
		qe_pcap_record_decode(data + off, g.swapped, &r);
		size_t left = size - off - QE_PCAP_RECORD_LEN;
		uint32_t caplen = r.caplen < left ? r.caplen : (uint32_t)left;
		uint8_t *pkt = malloc(caplen ? caplen : 1);
		if (!pkt)
			abort();
		memcpy(pkt, data + off + QE_PCAP_RECORD_LEN, caplen);
		struct qe_packet_fields f;
		qe_packet_parse(linktype, pkt, caplen, (int)(n & 1), &f);
		qe_flow_add(b, off, qe_pcap_record_ns(&r, g.nanos), caplen, r.origlen, &f);
		qe_tables_batch_add(&batch, off, qe_pcap_record_ns(&r, g.nanos), caplen, r.origlen, pkt);
		if (!(held = realloc(held, (nheld + 1) * sizeof *held)))
			abort();
		held[nheld++] = pkt;
		off += QE_PCAP_RECORD_LEN + caplen;
		if (++n % every == 0) {
			qe_tables_flush(&batch);
			while (nheld)
				free(held[--nheld]);
			if (qe_flow_next_segment(b, &segs) < 0 || qe_flow_next_segment(batch.t.flows, &segs2) < 0)
				abort();
		}
	}
	qe_tables_flush(&batch);
	while (nheld)
		free(held[--nheld]);
	free(held);
	if (qe_flow_next_segment(b, &segs) < 0 || qe_flow_complete(b, &whole) < 0 ||
	    qe_flow_next_segment(batch.t.flows, &segs2) < 0 || qe_flow_complete(batch.t.flows, &whole2) < 0)
		abort();
	if (!same_bytes(&segs, &segs2) || !same_bytes(&whole, &whole2))
		abort();
	if (whole.len < QE_FLOW_HEADER_LEN || le32(whole.p + QE_FLOW_H_CRC) != (uint32_t)crc32(0, whole.p, QE_FLOW_H_CRC))
		abort();
	size_t cap = qe_flow_count(b) + 1;
	unsigned char *merged = calloc(cap, QE_FLOW_RECORD_MAX), *all = calloc(cap, QE_FLOW_RECORD_MAX);
	if (!merged || !all)
		abort();
	size_t nmerged = 0, nall = 0;
	uint64_t lo = 0, hi = 0, lo2 = 0, hi2 = 0;
	uint64_t p1 = check_segments(segs.p, segs.len, merged, &nmerged, cap, &lo, &hi);
	uint64_t p2 = check_segments(whole.p + QE_FLOW_HEADER_LEN, whole.len - QE_FLOW_HEADER_LEN, all, &nall, cap, &lo2, &hi2);
	/* One segment, one record per flow, and what the segments said. */
	if (p1 != n || p2 != n || nall != qe_flow_count(b) || nmerged != nall ||
	    memcmp(merged, all, nall * QE_FLOW_RECORD_MAX) != 0 || (n && (lo != lo2 || hi != hi2 || hi != off)))
		abort();
	if (le32(whole.p + QE_FLOW_HEADER_LEN + QE_FLOW_S_NRECORDS) != nall)
		abort();
	free(merged);
	free(all);
	qe_out_free(&segs);
	qe_out_free(&whole);
	qe_out_free(&segs2);
	qe_out_free(&whole2);
	qe_flow_builder_free(b);
	qe_flow_builder_free(batch.t.flows);
	return 0;
}
