/* The on-disk format of a capture file's flow table (docs/INDEX.md, "Flow table"), version 1. Its
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
 *   segment*            each: segment header, then nrecords records of QE_FLOW_RECORD_LEN bytes
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
#define QE_FLOW_VERSION 1 /* readers refuse other versions and count the file's packets instead */
#define QE_FLOW_HEADER_LEN 64
#define QE_FLOW_SEGMENT_MAGIC 0x574c4651u /* "QFLW" */
#define QE_FLOW_SEGMENT_HEADER_LEN 64
#define QE_FLOW_RECORD_LEN 112
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
 *   8  u64 body_len      nrecords * QE_FLOW_RECORD_LEN
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

/* Record, QE_FLOW_RECORD_LEN bytes. "fwd" is src to dst, "rev" dst to src.
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
 *  16  u8  src[16]       IPv4 in the first 4 bytes (the rest 0), IPv6 all 16
 *  32  u8  dst[16]
 *  48  u64 first_ns      first packet's timestamp
 *  56  u64 last_ns       last packet's timestamp
 *  64  u64 bytes         bytes on the wire (the pcap records' original length) from src
 *  72  u64 bytes_rev     from dst
 *  80  u32 packets       from src
 *  84  u32 packets_rev   from dst
 *  88  u32 syn           TCP segments with SYN and not ACK (either direction)
 *  92  u32 synack        TCP segments with SYN and ACK
 *  96  u32 fin           TCP segments with FIN
 * 100  u32 rst           TCP segments with RST
 * 104  u32 rtt_us        TCP handshake round trip (first SYN to first SYN-ACK from the other end,
 *                        as seen at the capture point), when QE_FLOW_R_RTT
 * 108  u32 reserved      0
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
#define QE_FLOW_R_DST 32
#define QE_FLOW_R_FIRST_NS 48
#define QE_FLOW_R_LAST_NS 56
#define QE_FLOW_R_BYTES 64
#define QE_FLOW_R_BYTES_REV 72
#define QE_FLOW_R_PACKETS 80
#define QE_FLOW_R_PACKETS_REV 84
#define QE_FLOW_R_SYN 88
#define QE_FLOW_R_SYNACK 92
#define QE_FLOW_R_FIN 96
#define QE_FLOW_R_RST 100
#define QE_FLOW_R_RTT_US 104

/* Record flags. */
#define QE_FLOW_RF_RTT 1u       /* rtt_us is set */
#define QE_FLOW_RF_ICMP 2u      /* sport/dport hold ICMP type/code */
#define QE_FLOW_RF_FRAGMENTS 4u /* some of its packets were IP fragments */

#endif
