/* The on-disk format of a capture file's index (docs/INDEX.md), version 2. Its one other copy is
 * daemon/src/index/format.ts, which test/index-format.test.ts holds to this header.
 *
 * An index answers "in which blocks of this pcap file does a record carrying this key start".
 * A block is block_size bytes of the pcap file (offset / block_size); each segment's block table
 * says where the first record starting in each block is, and a reader reads a candidate block from
 * there to the end of the last record that starts inside it, then applies the exact filter to each
 * record. One posting (a block number) per key per block keeps the index small (most keys repeat
 * within a block) while a cold read is never more than a block or so per posting.
 *
 * Layout (all integers little-endian):
 *   file header (QE_IDX_HEADER_LEN bytes)
 *   segment*            each: segment header, fence, key directory, postings, block table
 * A closed pcap file's index has one segment covering the whole file, and its header says
 * complete. The index of an open file (.part) grows by one segment per flush; a torn last segment
 * (crash) fails its checksum and is ignored, and what it would have covered is scanned. Whatever a
 * reader trusts covers [QE_PCAP_GLOBAL_LEN, covered_end) of the pcap file: bytes past that are
 * scanned, so an index that lags its file is slower, never wrong. */
#ifndef QE_INDEX_FORMAT_H
#define QE_INDEX_FORMAT_H
#include <stdint.h>

/* File names: the index of `X.pcap` is `X.pcap.qeidx`, written as `X.pcap.qeidx.tmp` and renamed
 * when complete; the index of an open `X.pcap.part` is `X.pcap.part.qeidx`, appended segment by
 * segment, and replaced by the closed file's when the pcap file is renamed. */
#define QE_IDX_EXT ".qeidx"
#define QE_IDX_TMP_EXT ".tmp"

#define QE_IDX_MAGIC "QEIDX\r\n\x1a" /* 8 bytes, no terminator counted: catches text-mode mangling */
#define QE_IDX_MAGIC_LEN 8
#define QE_IDX_VERSION 2            /* readers refuse other versions and scan the file instead */
#define QE_IDX_HEADER_LEN 64
#define QE_IDX_SEGMENT_MAGIC 0x47455351u /* "QSEG" */
#define QE_IDX_SEGMENT_HEADER_LEN 64
#define QE_IDX_ENTRY_LEN 40
#define QE_IDX_VALUE_LEN 16
#define QE_IDX_BLOCK_SIZE_DEFAULT 16384u
#define QE_IDX_BLOCK_SIZE_MIN 4096u
#define QE_IDX_BLOCK_SIZE_MAX (1u << 24)

/* Header flags. */
#define QE_IDX_FLAG_COMPLETE 1u /* one segment, covering the pcap file to its end: the file is closed */

/* Fields, as chosen in index.fields; the header records the set the index was built with. */
enum qe_idx_field {
	QE_IDX_FIELD_MAC = 1u << 0,
	QE_IDX_FIELD_VLAN = 1u << 1,
	QE_IDX_FIELD_IP = 1u << 2,
	QE_IDX_FIELD_PORT = 1u << 3,
	QE_IDX_FIELD_PROTO = 1u << 4,
	QE_IDX_FIELD_TUNNEL = 1u << 5,
};
#define QE_IDX_FIELDS_KNOWN 0x3fu

/* Key types: the first byte of a directory entry. Values are in network byte order, left-aligned
 * in QE_IDX_VALUE_LEN bytes and zero-padded; entries sort by (type, value) as bytes. Addresses and
 * ports carry no direction (a `src host` query is narrowed by the host's key, then filtered). */
enum qe_idx_key_type {
	QE_IDX_KEY_MAC = 1,   /* 6 bytes: source and destination MAC */
	QE_IDX_KEY_VLAN = 2,  /* 2 bytes: each VLAN ID of the stack (12 bits) */
	QE_IDX_KEY_IPV4 = 3,  /* 4 bytes: source and destination, inner ones too with `tunnel` */
	QE_IDX_KEY_IPV6 = 4,  /* 16 bytes */
	QE_IDX_KEY_PORT = 5,  /* 2 bytes: TCP, UDP and SCTP source and destination port */
	QE_IDX_KEY_PROTO = 6, /* 1 byte: the IP protocol (IPv6: the upper-layer header after extensions) */
};

/* File header, QE_IDX_HEADER_LEN bytes:
 *   0  magic[8]          QE_IDX_MAGIC
 *   8  u16 version       QE_IDX_VERSION
 *  10  u16 header_len    QE_IDX_HEADER_LEN (a reader skips what it does not know of a longer one)
 *  12  u32 flags         QE_IDX_FLAG_*
 *  16  u32 block_size    a power of two in [MIN, MAX]
 *  20  u32 fields        enum qe_idx_field bits the index was built with
 *  24  u32 linktype      of the pcap file
 *  28  u32 builder       the qe-packets index builder revision: a reader may rebuild older ones
 *  32  u64 pcap_first_ns the pcap file's first record's timestamp (0 when empty): ties the index
 *                        to its file, so an index left beside another file of the same name is
 *                        never trusted
 *  40  u64 reserved      0
 *  48  u64 reserved      0
 *  56  u32 reserved      0
 *  60  u32 crc           CRC-32 (zlib's) of bytes 0..59
 */
#define QE_IDX_H_VERSION 8
#define QE_IDX_H_HEADER_LEN 10
#define QE_IDX_H_FLAGS 12
#define QE_IDX_H_BLOCK_SIZE 16
#define QE_IDX_H_FIELDS 20
#define QE_IDX_H_LINKTYPE 24
#define QE_IDX_H_BUILDER 28
#define QE_IDX_H_PCAP_FIRST_NS 32
#define QE_IDX_H_CRC 60

/* Segment header, QE_IDX_SEGMENT_HEADER_LEN bytes, then the fence, then nkeys directory entries,
 * then postings, then the block table:
 *   0  u32 magic         QE_IDX_SEGMENT_MAGIC
 *   4  u32 nkeys
 *   8  u64 body_len      bytes after this header: qe_idx_fence_len(nkeys) + nkeys * QE_IDX_ENTRY_LEN +
 *                        postings + block table
 *  16  u64 off_lo        pcap offset of the first record this segment covers
 *  24  u64 off_hi        pcap offset just past the last record it covers (the next segment's off_lo)
 *  32  u64 records       records in [off_lo, off_hi)
 *  40  u64 first_ns      timestamp of the first of them
 *  48  u64 last_ns       timestamp of the last of them
 *  56  u32 body_crc      CRC-32 of the body_len bytes after this header
 *  60  u32 crc           CRC-32 of bytes 0..59
 */
#define QE_IDX_S_MAGIC 0
#define QE_IDX_S_NKEYS 4
#define QE_IDX_S_BODY_LEN 8
#define QE_IDX_S_OFF_LO 16
#define QE_IDX_S_OFF_HI 24
#define QE_IDX_S_RECORDS 32
#define QE_IDX_S_FIRST_NS 40
#define QE_IDX_S_LAST_NS 48
#define QE_IDX_S_BODY_CRC 56
#define QE_IDX_S_CRC 60

/* Fence: the sort key (type, then value[16]: QE_IDX_FENCE_KEY_LEN bytes) of directory entries
 * 0, QE_IDX_FENCE_STRIDE, 2 * QE_IDX_FENCE_STRIDE, ..., then the u32 CRC-32 of those keys. It
 * comes right after the segment header, so the read that fetches a complete index's headers
 * fetches it too; a lookup searches it in memory and then reads one run of QE_IDX_FENCE_STRIDE
 * entries (4080 bytes: one disk trip), instead of a binary search over the whole directory (a
 * trip per probe until the probes share a page: 8 or 9 on a 1 MiB directory). A reader checks
 * it against its CRC, its keys ascending, and each key against the entry it names when it reads
 * that entry. */
#define QE_IDX_FENCE_STRIDE 102u
#define QE_IDX_FENCE_KEY_LEN 17u
static inline uint64_t qe_idx_fence_keys(uint64_t nkeys)
{
	return (nkeys + QE_IDX_FENCE_STRIDE - 1) / QE_IDX_FENCE_STRIDE;
}
static inline uint64_t qe_idx_fence_len(uint64_t nkeys)
{
	return qe_idx_fence_keys(nkeys) * QE_IDX_FENCE_KEY_LEN + 4;
}

/* Directory entry, QE_IDX_ENTRY_LEN bytes, sorted by (type, value) with no duplicates:
 *   0  u8  type          enum qe_idx_key_type
 *   1  u8  value_len     bytes of value used
 *   2  u16 key_crc       the low 16 bits of the CRC-32 of the entry with key_crc and crc as 0: what
 *                        a binary search checks of each entry it probes without reading its list
 *   4  u32 count         postings (blocks) in the list
 *   8  u64 off           of the list, from the start of the segment's postings area
 *  16  u32 len           bytes of the list
 *  20  u32 crc           CRC-32 of the entry (this field taken as 0) and then of its posting list,
 *                        checked when the list is read: a query reads a few entries and lists,
 *                        never the whole body its body_crc covers, so each carries its own check
 *  24  u8  value[16]
 * A posting list is `count` unsigned LEB128 numbers: the blocks (pcap offset / block_size) in
 * which a record of [off_lo, off_hi) carrying the key starts, ascending, the first absolute and
 * each next one as the difference from the one before (at least 1). Block numbers, not offsets:
 * with many interleaved flows most keys are rare (a client, an ephemeral port) and their next
 * record is a megabyte on, tens of blocks (one byte) but millions of bytes (three or four). */
#define QE_IDX_E_TYPE 0
#define QE_IDX_E_VALUE_LEN 1
#define QE_IDX_E_KEY_CRC 2
#define QE_IDX_E_COUNT 4
#define QE_IDX_E_OFF 8
#define QE_IDX_E_LEN 16
#define QE_IDX_E_CRC 20
#define QE_IDX_E_VALUE 24

/* Block table: the last bytes of a segment's body, after the posting lists. It has one entry for
 * each block the segment touches, floor(off_lo / block_size) .. floor((off_hi - 1) / block_size)
 * (none when off_hi == off_lo): a u32, the offset from the block's start of the first record that
 * starts in that block within [off_lo, off_hi), or QE_IDX_BT_NONE when none does (a record that
 * spans whole blocks). A block cut by a segment boundary has an entry in each segment. Entries
 * come in groups of QE_IDX_BT_GROUP (the last group may be shorter), each group followed by the
 * u32 CRC-32 of its entries: a query reads and checks only the groups of its candidate blocks.
 * A reader turns a posting's block into a read from that first record to the end of the last
 * record starting in the block. */
#define QE_IDX_BT_NONE 0xffffffffu
#define QE_IDX_BT_GROUP 64u
/* Bytes of the block table of a segment covering [off_lo, off_hi) with blocks of 1 << shift. */
static inline uint64_t qe_idx_bt_blocks(uint64_t off_lo, uint64_t off_hi, unsigned shift)
{
	return off_hi > off_lo ? ((off_hi - 1) >> shift) - (off_lo >> shift) + 1 : 0;
}
static inline uint64_t qe_idx_bt_len(uint64_t nblocks)
{
	return nblocks * 4 + (nblocks + QE_IDX_BT_GROUP - 1) / QE_IDX_BT_GROUP * 4;
}

#endif
