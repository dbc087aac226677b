/* The index reader (index-read.c, what `qe-extract --plan` runs on every file of a query) on
 * arbitrary index files, and its plan parser on arbitrary text. Input: one mode byte, then
 *   mode bit 7 set: a plan's text (index-plan.h), parsed and freed;
 *   else: an index file. Bit 0 set: its checksums are made to agree first (header, segment
 *   headers, fences, entries with their lists, block table groups, as far as the structure lets
 *   them be found), so the fuzzer gets past them to the structure checks; bits 1-3 choose the plan.
 * The pcap file's facts are taken from the index's header, so the reader goes on to its segments.
 * Whatever the index holds, a lookup either refuses it or gives record starts that are ascending,
 * one per block, and inside what the index covers. */
#include "harness.h"
#include "../index-read.c"

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* Recomputes every checksum the reader checks, walking the layout with the same bounds. */
static void fix_checksums(unsigned char *b, size_t size)
{
	if (size < QE_IDX_HEADER_LEN)
		return;
	put32(b + QE_IDX_H_CRC, crc(b, QE_IDX_H_CRC));
	uint32_t bs = le32(b + QE_IDX_H_BLOCK_SIZE);
	if (bs < QE_IDX_BLOCK_SIZE_MIN || bs > QE_IDX_BLOCK_SIZE_MAX || (bs & (bs - 1)))
		return;
	unsigned shift = (unsigned)__builtin_ctz(bs);
	uint64_t at = le16(b + QE_IDX_H_HEADER_LEN);
	while (size >= QE_IDX_SEGMENT_HEADER_LEN && at <= size - QE_IDX_SEGMENT_HEADER_LEN) {
		unsigned char *h = b + at;
		put32(h + QE_IDX_S_MAGIC, QE_IDX_SEGMENT_MAGIC);
		put32(h + QE_IDX_S_CRC, crc(h, QE_IDX_S_CRC));
		uint64_t body = le64(h + QE_IDX_S_BODY_LEN), nkeys = le32(h + QE_IDX_S_NKEYS);
		if (body > size - at - QE_IDX_SEGMENT_HEADER_LEN)
			return;
		uint64_t nblocks = qe_idx_bt_blocks(le64(h + QE_IDX_S_OFF_LO), le64(h + QE_IDX_S_OFF_HI), shift);
		uint64_t fence_len = qe_idx_fence_len(nkeys);
		if (nblocks > body / 4 || body < fence_len + nkeys * QE_IDX_ENTRY_LEN + qe_idx_bt_len(nblocks))
			return;
		unsigned char *fence = h + QE_IDX_SEGMENT_HEADER_LEN, *dir = fence + fence_len;
		unsigned char *area = dir + nkeys * QE_IDX_ENTRY_LEN;
		uint64_t table_len = qe_idx_bt_len(nblocks), area_len = body - fence_len - nkeys * QE_IDX_ENTRY_LEN - table_len;
		put32(fence + fence_len - 4, crc(fence, fence_len - 4));
		for (uint64_t i = 0; i < nkeys; i++) {
			unsigned char *e = dir + i * QE_IDX_ENTRY_LEN, z[QE_IDX_ENTRY_LEN];
			memcpy(z, e, sizeof z);
			memset(z + QE_IDX_E_KEY_CRC, 0, 2);
			memset(z + QE_IDX_E_CRC, 0, 4);
			uint32_t k = crc(z, sizeof z) & 0xffff;
			e[QE_IDX_E_KEY_CRC] = (unsigned char)k;
			e[QE_IDX_E_KEY_CRC + 1] = (unsigned char)(k >> 8);
			uint64_t off = le64(e + QE_IDX_E_OFF), len = le32(e + QE_IDX_E_LEN);
			if (off > area_len || len > area_len - off)
				continue;
			memcpy(z, e, sizeof z);
			memset(z + QE_IDX_E_CRC, 0, 4);
			put32(e + QE_IDX_E_CRC, (uint32_t)crc32(crc32(crc32(0, Z_NULL, 0), z, sizeof z), area + off, (uInt)len));
		}
		unsigned char *table = area + area_len;
		for (uint64_t g = 0; g * QE_IDX_BT_GROUP < nblocks; g++) {
			unsigned char *grp = table + g * (QE_IDX_BT_GROUP + 1) * 4;
			uint64_t n = nblocks - g * QE_IDX_BT_GROUP < QE_IDX_BT_GROUP ? nblocks - g * QE_IDX_BT_GROUP : QE_IDX_BT_GROUP;
			put32(grp + n * 4, crc(grp, n * 4));
		}
		at += QE_IDX_SEGMENT_HEADER_LEN + body;
	}
}

static const char *const plans[8] = {
	"key 3 0a000001",
	"or 2 key 5 0035 key 5 0000",
	"and 2 key 3 0a000001 or 2 key 5 0035 key 5 0000",
	"range 3 0a000000 0affffff",
	"range 5 0000 ffff",
	"key 2 00c8",
	"or 3 key 1 020000000003 key 6 06 range 4 20010db8000000000000000000000000 20010db8ffffffffffffffffffffffff",
	"and 2 range 6 00 ff key 3 c0a80509",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	char err[256];
	if (mode & 0x80) {
		char *text = malloc(size + 1);
		if (!text)
			abort();
		memcpy(text, data, size);
		text[size] = 0;
		struct qe_plan p;
		if (qe_plan_parse(text, &p, err, sizeof err) == 0) {
			if (p.nnodes == 0 || p.nnodes > QE_PLAN_MAX_NODES)
				abort();
			for (uint32_t i = 0; i < p.nnodes; i++)
				for (uint32_t k = 0; k < (p.nodes[i].kind >= QE_PLAN_AND ? p.nodes[i].nkids : 0); k++)
					if (p.kids[p.nodes[i].first_kid + k] >= p.nnodes)
						abort();
			qe_plan_free(&p);
		}
		free(text);
		return 0;
	}
	unsigned char *b = malloc(size ? size : 1);
	if (!b)
		abort();
	memcpy(b, data, size);
	if (mode & 1)
		fix_checksums(b, size);
	struct qe_ir_pcap pcap = { .size = UINT64_MAX / 4 };
	if (size >= QE_IDX_HEADER_LEN) {
		pcap.linktype = le32(b + QE_IDX_H_LINKTYPE);
		pcap.first_ns = le64(b + QE_IDX_H_PCAP_FIRST_NS);
	}
	int fd = harness_memfd(b, size, 0);
	free(b);
	struct qe_plan p;
	if (qe_plan_parse(plans[(mode >> 1) & 7], &p, err, sizeof err) < 0)
		abort();
	char note[QE_IR_NOTE_MAX];
	struct qe_ir ix;
	if (qe_ir_open_fd(&ix, fd, "fuzz.qeidx", "fuzz.pcap", &pcap, note, sizeof note) == QE_IR_OK) {
		uint64_t *starts;
		size_t n;
		if (qe_ir_lookup(&ix, &p, &starts, &n) == QE_IR_OK) {
			uint64_t covered = qe_ir_covered_end(&ix);
			for (size_t i = 0; i < n; i++)
				if (starts[i] >= covered || starts[i] < QE_PCAP_GLOBAL_LEN ||
				    (i > 0 && (starts[i] >> ix.shift) <= (starts[i - 1] >> ix.shift)))
					abort();
			free(starts);
		}
		qe_ir_close(&ix);
	}
	close(fd);
	qe_plan_free(&p);
	return 0;
}
