/* The fields of a captured packet that the index (and the flow table, issue 18) are keyed by, read
 * straight from the frame as it was captured: Ethernet, 802.1Q/802.1ad/QinQ tags, MPLS, IPv4 (with
 * its fragment fields), IPv6 (through its extension headers), TCP/UDP/SCTP ports and, when asked,
 * the inner headers of VXLAN, GRE and GTP-U (and IP-in-IP).
 *
 * The frame is hostile (a file given to --read, any file in the store, the wire): the parser never
 * reads a byte at or past caplen, allocates nothing and holds pointers into the frame only. It stops
 * at the first header it cannot read whole and keeps what it found before it. */
#ifndef QE_PACKET_FIELDS_H
#define QE_PACKET_FIELDS_H
#include <stdint.h>
#include <string.h>

#define QE_PF_MAX_VLAN 8  /* tags kept; a deeper stack is not followed further */
#define QE_PF_MAX_IP 4    /* the outer IP header and up to three nested tunnels' */
#define QE_PF_MAX_CHAIN 8 /* IPv6: next-header values kept (the first, the extensions', the last) */

/* Link types read (pcap LINKTYPE_ values; every other gives no fields). */
#define QE_PF_LINKTYPE_ETHERNET 1
#define QE_PF_LINKTYPE_RAW 101
#define QE_PF_LINKTYPE_LINUX_SLL 113
#define QE_PF_LINKTYPE_IPV4 228
#define QE_PF_LINKTYPE_IPV6 229
#define QE_PF_LINKTYPE_LINUX_SLL2 276

enum qe_pf_frag {
	QE_PF_FRAG_NONE = 0,
	QE_PF_FRAG_FIRST = 1, /* offset 0 with more to come: carries the ports */
	QE_PF_FRAG_LATER = 2, /* offset > 0: no transport header */
};

#define QE_PF_SPORT 1
#define QE_PF_DPORT 2

enum qe_pf_tunnel {
	QE_PF_TUNNEL_NONE = 0,
	QE_PF_TUNNEL_VXLAN,
	QE_PF_TUNNEL_GRE,
	QE_PF_TUNNEL_GTPU,
	QE_PF_TUNNEL_IPIP, /* IPv4/IPv6 carried directly (protocols 4 and 41) */
};

/* One IP header and what follows it. */
struct qe_pf_ip {
	uint8_t version;   /* 4 or 6 */
	uint8_t proto;     /* IPv4 protocol; IPv6: the last next-header reached (the upper layer) */
	uint8_t frag;      /* enum qe_pf_frag */
	uint8_t has_proto; /* proto was read (a header cut short may lack it) */
	uint8_t has_ports; /* TCP, UDP or SCTP: QE_PF_SPORT | QE_PF_DPORT, the ports inside caplen */
	uint8_t has_icmp;  /* ICMP or ICMPv6 with type and code inside caplen */
	uint8_t tcp_flags; /* valid when proto is TCP and has_ports and tcp_flags_ok */
	uint8_t tcp_flags_ok;
	uint8_t tunnel;    /* enum qe_pf_tunnel: how this header was reached (NONE for the outer one) */
	uint8_t icmp_type, icmp_code;
	uint8_t nchain;    /* IPv6: next-header values in chain[] */
	uint8_t chain[QE_PF_MAX_CHAIN];
	uint16_t sport, dport;
	uint32_t frag_id;     /* IPv4: the 16-bit identification; IPv6: the fragment header's 32 bits */
	uint32_t frag_offset; /* in bytes */
	/* 4 or 16 bytes inside the frame; NULL when caplen cuts the header before it. A filter reads
	 * what is there (libpcap's `src host X` matches a header cut after its source address), so
	 * what is there is kept. */
	const uint8_t *src, *dst;
	uint32_t l3_off;  /* where the IP header starts in the frame */
	uint32_t l4_off;  /* where the upper-layer header starts (0: not reached) */
	uint32_t end;     /* where the datagram ends in the frame (caplen when cut short) */
};

struct qe_packet_fields {
	const uint8_t *dst_mac, *src_mac; /* 6 bytes inside the frame, or NULL (a frame cut short too) */
	uint16_t ethertype;               /* of the outer payload after tags (0: none reached) */
	uint8_t nvlan;
	uint8_t nip;
	uint8_t mpls;      /* the outer payload came through an MPLS label stack */
	uint8_t truncated; /* a header was cut by caplen: the fields stop before it */
	uint16_t vlan[QE_PF_MAX_VLAN]; /* 12-bit IDs, outermost first */
	/* The ARP/RARP sender and target protocol addresses (IPv4 over Ethernet): libpcap's `host`
	 * and `net` match them, so they are looked up like an IP header's. */
	const uint8_t *arp_spa, *arp_tpa;
	struct qe_pf_ip ip[QE_PF_MAX_IP]; /* [0] the outer header, then the tunnels' in order */
};

/* An address (4 or 16 bytes at p) as two words, as its zero-padded 16 bytes lie in memory
 * (little-endian: an IPv4 address is the low half of the first): what flow keys compare and hash.
 * Loaded straight from the frame: a copy into a padded buffer and a wide load back would stall
 * on store forwarding, twice a packet. */
static inline void qe_pf_addr_words(const uint8_t *p, size_t alen, uint64_t *w0, uint64_t *w1)
{
	if (alen == 4) {
		uint32_t x;
		memcpy(&x, p, 4);
		*w0 = x;
		*w1 = 0;
	} else {
		memcpy(w0, p, 8);
		memcpy(w1, p + 8, 8);
	}
}

/* Reads the fields of a frame of `linktype`, caplen bytes at `data`; with `tunnels`, the inner
 * headers of tunnels too. Returns the number of IP headers found (f->nip). */
int qe_packet_parse(uint32_t linktype, const uint8_t *data, uint32_t caplen, int tunnels, struct qe_packet_fields *f);
#endif
