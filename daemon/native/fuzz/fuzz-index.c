/* The packet field parser and the index builder on arbitrary packets. The input is a classic pcap
 * file, walked leniently (any caplen that fits what is left); each packet is copied into a buffer of
 * exactly its length, so a read past caplen is a heap overflow the sanitizer reports. The link type
 * is the file's when the parser reads it, else one of those it reads; the index fields are the
 * snaplen's low six bits (0: all). Every pointer the parser returns must lie inside the packet, and
 * the segments and the complete index must be well formed. */
#include <zlib.h>

#include "harness.h"
#include "../index-build.h"
#include "../packet-fields.h"

static const uint32_t linktypes[] = { QE_PF_LINKTYPE_ETHERNET, QE_PF_LINKTYPE_RAW,	  QE_PF_LINKTYPE_IPV4,
				      QE_PF_LINKTYPE_IPV6,     QE_PF_LINKTYPE_LINUX_SLL, QE_PF_LINKTYPE_LINUX_SLL2 };

static void inside(const uint8_t *p, size_t n, const uint8_t *pkt, uint32_t caplen)
{
	if (p && (p < pkt || p + n > pkt + caplen))
		abort();
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* A run of segments: checksums (the fence's, each entry's and each block table group's too), each
 * fence key the key of the entry it names, directory inside
 * the body, postings ascending blocks of [off_lo, off_hi), each where the block table has a record
 * start inside its block and the segment. */
static void check_segments(const unsigned char *p, size_t len, unsigned shift)
{
	for (size_t at = 0; at < len;) {
		if (len - at < QE_IDX_SEGMENT_HEADER_LEN)
			abort();
		const unsigned char *h = p + at;
		uint64_t body = le64(h + QE_IDX_S_BODY_LEN), nkeys = le32(h + QE_IDX_S_NKEYS);
		if (le32(h + QE_IDX_S_MAGIC) != QE_IDX_SEGMENT_MAGIC || body > len - at - QE_IDX_SEGMENT_HEADER_LEN ||
		    le32(h + QE_IDX_S_CRC) != (uint32_t)crc32(0, h, QE_IDX_S_CRC) ||
		    le32(h + QE_IDX_S_BODY_CRC) != (uint32_t)crc32(0, h + QE_IDX_SEGMENT_HEADER_LEN, (uInt)body) ||
		    qe_idx_fence_len(nkeys) + nkeys * QE_IDX_ENTRY_LEN > body)
			abort();
		uint64_t lo = le64(h + QE_IDX_S_OFF_LO), hi = le64(h + QE_IDX_S_OFF_HI);
		uint64_t b0 = lo >> shift, nblocks = qe_idx_bt_blocks(lo, hi, shift), table_len = qe_idx_bt_len(nblocks);
		uint64_t fence_len = qe_idx_fence_len(nkeys);
		if (fence_len + nkeys * QE_IDX_ENTRY_LEN + table_len > body)
			abort();
		const unsigned char *fence = h + QE_IDX_SEGMENT_HEADER_LEN;
		if (le32(fence + fence_len - 4) != (uint32_t)crc32(0, fence, (uInt)(fence_len - 4)))
			abort();
		const unsigned char *e = fence + fence_len, *area = e + nkeys * QE_IDX_ENTRY_LEN;
		uint64_t area_len = body - fence_len - nkeys * QE_IDX_ENTRY_LEN - table_len;
		const unsigned char *table = area + area_len;
		for (uint64_t g = 0; g < nblocks; g += QE_IDX_BT_GROUP) {
			const unsigned char *grp = table + g / QE_IDX_BT_GROUP * (QE_IDX_BT_GROUP + 1) * 4;
			uint64_t n = nblocks - g < QE_IDX_BT_GROUP ? nblocks - g : QE_IDX_BT_GROUP;
			if (le32(grp + n * 4) != (uint32_t)crc32(0, grp, (uInt)(n * 4)))
				abort();
			for (uint64_t j = 0; j < n; j++) {
				uint32_t v = le32(grp + j * 4);
				uint64_t start = ((b0 + g + j) << shift) + v;
				if (v != QE_IDX_BT_NONE && (v >> shift || start < lo || start >= hi))
					abort();
			}
		}
		for (uint64_t i = 0; i < nkeys; i++, e += QE_IDX_ENTRY_LEN) {
			/* sorted by (type, value), no key twice */
			if (i && (e[-QE_IDX_ENTRY_LEN] > e[0] ||
				  (e[-QE_IDX_ENTRY_LEN] == e[0] &&
				   memcmp(e - QE_IDX_ENTRY_LEN + QE_IDX_E_VALUE, e + QE_IDX_E_VALUE, QE_IDX_VALUE_LEN) >= 0)))
				abort();
			const unsigned char *f = fence + i / QE_IDX_FENCE_STRIDE * QE_IDX_FENCE_KEY_LEN;
			if (i % QE_IDX_FENCE_STRIDE == 0 &&
			    (f[0] != e[QE_IDX_E_TYPE] || memcmp(f + 1, e + QE_IDX_E_VALUE, QE_IDX_VALUE_LEN) != 0))
				abort();
			uint64_t off = le64(e + QE_IDX_E_OFF), n = le32(e + QE_IDX_E_LEN), count = le32(e + QE_IDX_E_COUNT);
			if (off + n > area_len || count == 0)
				abort();
			/* the entry's own check: itself with its crc field as 0, then its list */
			unsigned char ent[QE_IDX_ENTRY_LEN];
			memcpy(ent, e, QE_IDX_ENTRY_LEN);
			memset(ent + QE_IDX_E_CRC, 0, 4);
			if (le32(e + QE_IDX_E_CRC) != (uint32_t)crc32(crc32(0, ent, QE_IDX_ENTRY_LEN), area + off, (uInt)n))
				abort();
			memset(ent + QE_IDX_E_KEY_CRC, 0, 2);
			if ((uint32_t)(e[QE_IDX_E_KEY_CRC] | e[QE_IDX_E_KEY_CRC + 1] << 8) != (crc32(0, ent, QE_IDX_ENTRY_LEN) & 0xffff))
				abort();
			uint64_t v = 0, got = 0;
			for (uint64_t q = off; q < off + n;) {
				uint64_t x = 0;
				for (int shift = 0;; shift += 7) {
					if (q >= off + n || shift > 63)
						abort();
					x |= (uint64_t)(area[q] & 0x7f) << shift;
					if (!(area[q++] & 0x80))
						break;
				}
				if (got && x == 0)
					abort();
				v = got++ ? v + x : x;
				if (v < b0 || v >= b0 + nblocks)
					abort();
				uint64_t i = v - b0;
				if (le32(table + i / QE_IDX_BT_GROUP * (QE_IDX_BT_GROUP + 1) * 4 + i % QE_IDX_BT_GROUP * 4) == QE_IDX_BT_NONE)
					abort();
			}
			if (got != count)
				abort();
		}
		at += QE_IDX_SEGMENT_HEADER_LEN + body;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qe_pcap_global g;
	if (size < QE_PCAP_GLOBAL_LEN || !qe_pcap_global_decode(data, &g))
		return 0;
	uint32_t linktype = qe_idx_linktype_ok(g.linktype) ? g.linktype : linktypes[g.linktype % 6];
	uint32_t fields = g.snaplen & QE_IDX_FIELDS_KNOWN;
	if (!fields)
		fields = QE_IDX_FIELDS_KNOWN;
	struct qe_idx_builder *b = qe_idx_builder_new(fields, QE_IDX_BLOCK_SIZE_MIN, linktype);
	/* The same records through a builder that sorts its log in runs of a few postings and emits
	 * no segment: its complete index must be the same bytes. */
	struct qe_idx_builder *b2 = qe_idx_builder_new(fields, QE_IDX_BLOCK_SIZE_MIN, linktype);
	if (!b || !b2)
		abort();
	qe_idx_set_log_spill(b2, 8 + (uint32_t)(size % 23));
	struct qe_out segs = { 0 }, whole = { 0 };
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
		inside(f.src_mac, 6, pkt, caplen);
		inside(f.dst_mac, 6, pkt, caplen);
		inside(f.arp_spa, 4, pkt, caplen);
		inside(f.arp_tpa, 4, pkt, caplen);
		if (f.nip > QE_PF_MAX_IP || f.nvlan > QE_PF_MAX_VLAN)
			abort();
		for (int i = 0; i < f.nip; i++) {
			size_t alen = f.ip[i].version == 4 ? 4 : 16;
			inside(f.ip[i].src, alen, pkt, caplen);
			inside(f.ip[i].dst, alen, pkt, caplen);
			if (f.ip[i].l4_off > caplen || f.ip[i].end > caplen || f.ip[i].nchain > QE_PF_MAX_CHAIN)
				abort();
		}
		qe_idx_add(b, off, qe_pcap_record_ns(&r, g.nanos), pkt, caplen);
		qe_idx_add(b2, off, qe_pcap_record_ns(&r, g.nanos), pkt, caplen);
		free(pkt);
		off += QE_PCAP_RECORD_LEN + caplen;
		if (++n % 7 == 0 && qe_idx_next_segment(b, &segs) < 0)
			abort();
	}
	if (qe_idx_next_segment(b, &segs) < 0 || qe_idx_complete(b, &whole) < 0)
		abort();
	unsigned shift = (unsigned)__builtin_ctz(QE_IDX_BLOCK_SIZE_MIN);
	check_segments(segs.p, segs.len, shift);
	if (whole.len < QE_IDX_HEADER_LEN || le32(whole.p + QE_IDX_H_CRC) != (uint32_t)crc32(0, whole.p, QE_IDX_H_CRC))
		abort();
	check_segments(whole.p + QE_IDX_HEADER_LEN, whole.len - QE_IDX_HEADER_LEN, shift);
	struct qe_out whole2 = { 0 };
	if (qe_idx_complete(b2, &whole2) < 0 || whole2.len != whole.len || memcmp(whole2.p, whole.p, whole.len) != 0)
		abort();
	qe_out_free(&whole2);
	qe_idx_builder_free(b2);
	qe_out_free(&segs);
	qe_out_free(&whole);
	qe_idx_builder_free(b);
	return 0;
}
