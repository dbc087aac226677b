/* The on-disk format of a capture file's flow table (docs/INDEX.md, "Flow table"), version 2. Its
 * one other copy is daemon/src/flows/format.ts, which test/flow-format.test.ts holds to this header.
 *
 * A flow table answers "what talked to what in this pcap file, how much and how it went" without
 * reading the packets: one record per flow and file. A flow is the packets of one interface (the
 * file's), VLAN stack, IP version, protocol and unordered pair of (address, port) ends; ICMP flows
 * are keyed by type and code instead of ports (the Community ID, computed by readers from the
 * record, maps them to ports its own way). Frames
 * that are not IP are counted per EtherType and VLAN stack in records of their own (ip_version 0).
 * A fragment belongs to its datagram's flow (the ports of its first fragment); a later fragment
 * whose first one was not seen in the file is counted in the flow of its addresses with port 0.
 *
 * Layout (all integers little-endian), the same framing as the index (index-format.h):
 *   file header (QE_FLOW_HEADER_LEN bytes)
 *   segment*            each: segment header, then nrecords records (88 or 112 bytes each, below)
 * A closed pcap file's table (`X.pcap.qeflow`, written as `.tmp` and renamed) has one segment
 * covering the whole file, one record per flow, and its header says complete. The table of an
 * open file (`X.pcap.part.qeflow`) grows by one segment per flush, holding for each flow that had
 * packets in [off_lo, off_hi) what those packets added (counts, flags, first/last time); a reader
 * merges a flow's records (sum the counts, OR the flags, min first, max last, the first non-zero
 * rtt). Within one file every record of a flow has the same orientation: `src` is the end that
 * sent the flow's first packet in the file. A torn last segment (crash) fails its checksum and is
 * ignored: its packets are counted by reading them (the reader knows off_hi of what it trusts). */
#ifndef QE_FLOW_FORMAT_H
#define QE_FLOW_FORMAT_H
#include <stdint.h>

#define QE_FLOW_EXT ".qeflow"
#define QE_FLOW_TMP_EXT ".tmp"

#define QE_FLOW_MAGIC "QEFLOW\r\n" /* 8 bytes, no terminator counted */
#define QE_FLOW_MAGIC_LEN 8
#define QE_FLOW_VERSION 2 /* readers refuse other versions and count the file's packets instead */
#define QE_FLOW_HEADER_LEN 64
#define QE_FLOW_SEGMENT_MAGIC 0x574c4651u /* "QFLW" */
#define QE_FLOW_SEGMENT_HEADER_LEN 64
#define QE_FLOW_MAX_VLAN 3 /* tags kept in a record, outermost first; deeper ones are not keyed */

#define QE_FLOW_FLAG_COMPLETE 1u /* one segment covering the pcap file to its end: the file is closed */

/* File header, QE_FLOW_HEADER_LEN bytes:
 *   0  magic[8]          QE_FLOW_MAGIC
 *   8  u16 version       QE_FLOW_VERSION
 *  10  u16 header_len    QE_FLOW_HEADER_LEN
 *  12  u32 flags         QE_FLOW_FLAG_*
 *  16  u32 linktype      of the pcap file
 *  20  u32 builder       the flow builder revision: a reader may rebuild older ones
 *  24  u64 pcap_first_ns the pcap file's first record's timestamp (0 when empty): ties the table
 *                        to its file
 *  32  u64 reserved[3]   0
 *  56  u32 reserved      0
 *  60  u32 crc           CRC-32 (zlib's) of bytes 0..59
 */
#define QE_FLOW_H_VERSION 8
#define QE_FLOW_H_HEADER_LEN 10
#define QE_FLOW_H_FLAGS 12
#define QE_FLOW_H_LINKTYPE 16
#define QE_FLOW_H_BUILDER 20
#define QE_FLOW_H_PCAP_FIRST_NS 24
#define QE_FLOW_H_CRC 60

/* Segment header, QE_FLOW_SEGMENT_HEADER_LEN bytes, then nrecords records:
 *   0  u32 magic         QE_FLOW_SEGMENT_MAGIC
 *   4  u32 nrecords
 *   8  u64 body_len      the records' lengths summed
 *  16  u64 off_lo        pcap offset of the first record (packet) this segment covers
 *  24  u64 off_hi        pcap offset just past the last one
 *  32  u64 packets       packets in [off_lo, off_hi) (the sum of the records' packets)
 *  40  u64 first_ns      timestamp of the first of them
 *  48  u64 last_ns       timestamp of the last of them
 *  56  u32 body_crc      CRC-32 of the body_len bytes after this header
 *  60  u32 crc           CRC-32 of bytes 0..59
 */
#define QE_FLOW_S_MAGIC 0
#define QE_FLOW_S_NRECORDS 4
#define QE_FLOW_S_BODY_LEN 8
#define QE_FLOW_S_OFF_LO 16
#define QE_FLOW_S_OFF_HI 24
#define QE_FLOW_S_PACKETS 32
#define QE_FLOW_S_FIRST_NS 40
#define QE_FLOW_S_LAST_NS 48
#define QE_FLOW_S_BODY_CRC 56
#define QE_FLOW_S_CRC 60

/* Record: QE_FLOW_RECORD_LEN_V4 bytes for IPv4 and non-IP records, QE_FLOW_RECORD_LEN_V6 for
 * IPv6 ones (version 2; version 1 gave every record 16-byte addresses and 112 bytes). A record's
 * length follows from its first byte, so a segment's records are read in turn; within a segment
 * the builder may write them in any order. "fwd" is src to dst, "rev" dst to src. A is the
 * address length (qe_flow_addr_len: 16 for IPv6, else 4) and T = 16 + 2A the tail's offset.
 *   0  u8  ip_version    4, 6, or 0 for a non-IP record (then only ethertype, vlan, times,
 *                        packets and bytes are set; the rest is 0)
 *   1  u8  proto         IP protocol (IPv6: the upper-layer header after extensions)
 *   2  u8  nvlan         tags in vlan[] (0..QE_FLOW_MAX_VLAN)
 *   3  u8  flags         QE_FLOW_RF_*
 *   4  u8  tcp_flags_fwd TCP flags seen from src (OR of every segment's flags byte)
 *   5  u8  tcp_flags_rev TCP flags seen from dst
 *   6  u16 sport         TCP/UDP/SCTP source port; ICMP/ICMPv6: the type; non-IP: the EtherType
 *   8  u16 dport         TCP/UDP/SCTP destination port; ICMP/ICMPv6: the code; else 0
 *  10  u16 vlan[3]       12-bit IDs, outermost first, unused ones 0
 *  16  u8  src[A]        0 for a non-IP record
 *  16+A u8 dst[A]
 * then the tail, at T (8-aligned: both lengths are multiples of 8):
 * T+0  u64 first_ns      first packet's timestamp
 * T+8  u64 last_ns       last packet's timestamp
 * T+16 u64 bytes         bytes on the wire (the pcap records' original length) from src
 * T+24 u64 bytes_rev     from dst
 * T+32 u32 packets       from src
 * T+36 u32 packets_rev   from dst
 * T+40 u32 syn           TCP segments with SYN and not ACK (either direction)
 * T+44 u32 synack        TCP segments with SYN and ACK
 * T+48 u32 fin           TCP segments with FIN
 * T+52 u32 rst           TCP segments with RST
 * T+56 u32 rtt_us        TCP handshake round trip (first SYN to first SYN-ACK from the other end,
 *                        as seen at the capture point), when QE_FLOW_RF_RTT
 * T+60 u32 reserved      0
 */
#define QE_FLOW_R_IP_VERSION 0
#define QE_FLOW_R_PROTO 1
#define QE_FLOW_R_NVLAN 2
#define QE_FLOW_R_FLAGS 3
#define QE_FLOW_R_TCP_FLAGS_FWD 4
#define QE_FLOW_R_TCP_FLAGS_REV 5
#define QE_FLOW_R_SPORT 6
#define QE_FLOW_R_DPORT 8
#define QE_FLOW_R_VLAN 10
#define QE_FLOW_R_SRC 16
/* Offsets in the tail. */
#define QE_FLOW_T_FIRST_NS 0
#define QE_FLOW_T_LAST_NS 8
#define QE_FLOW_T_BYTES 16
#define QE_FLOW_T_BYTES_REV 24
#define QE_FLOW_T_PACKETS 32
#define QE_FLOW_T_PACKETS_REV 36
#define QE_FLOW_T_SYN 40
#define QE_FLOW_T_SYNACK 44
#define QE_FLOW_T_FIN 48
#define QE_FLOW_T_RST 52
#define QE_FLOW_T_RTT_US 56
#define QE_FLOW_T_RESERVED 60
#define QE_FLOW_TAIL_LEN 64
#define QE_FLOW_RECORD_LEN_V4 88  /* 16 + 2 * 4 + QE_FLOW_TAIL_LEN */
#define QE_FLOW_RECORD_LEN_V6 112 /* 16 + 2 * 16 + QE_FLOW_TAIL_LEN */
#define QE_FLOW_RECORD_MAX 112 /* the longer, QE_FLOW_RECORD_LEN_V6 */

/* A record's address length, tail offset and length, from its ip_version byte (any byte value:
 * readers check the version is 0, 4 or 6 before trusting the rest). */
static inline unsigned qe_flow_addr_len(uint8_t ip_version) { return ip_version == 6 ? 16u : 4u; }
static inline unsigned qe_flow_tail_off(uint8_t ip_version) { return 16u + 2u * qe_flow_addr_len(ip_version); }
static inline unsigned qe_flow_record_len(uint8_t ip_version) { return qe_flow_tail_off(ip_version) + QE_FLOW_TAIL_LEN; }
/* The records in a body of len bytes, or -1 when one has an ip_version other than 0, 4 or 6 or the
 * last does not end at len: what a reader checks before it walks a body record by record. */
static inline int64_t qe_flow_body_records(const unsigned char *b, uint64_t len)
{
	int64_t n = 0;
	uint64_t o = 0;
	while (o < len) {
		uint8_t v = b[o + QE_FLOW_R_IP_VERSION];
		if (v != 0 && v != 4 && v != 6)
			return -1;
		o += qe_flow_record_len(v);
		n++;
	}
	return o == len ? n : -1;
}

/* Record flags. */
#define QE_FLOW_RF_RTT 1u       /* rtt_us is set */
#define QE_FLOW_RF_ICMP 2u      /* sport/dport hold ICMP type/code */
#define QE_FLOW_RF_FRAGMENTS 4u /* some of its packets were IP fragments */

#endif
