#include "packet-fields.h"

#include <stddef.h>
#include <string.h>

#define ET_IPV4 0x0800
#define ET_ARP 0x0806
#define ET_RARP 0x8035
#define ET_IPV6 0x86dd
#define ET_VLAN 0x8100
#define ET_QINQ 0x88a8
#define ET_QINQ_OLD1 0x9100 /* pre-802.1ad service tags, still seen on some switches */
#define ET_QINQ_OLD2 0x9200
#define ET_MPLS 0x8847
#define ET_MPLS_MC 0x8848
#define ET_PPPOE 0x8864
#define ET_TEB 0x6558 /* transparent Ethernet bridging: Ethernet over GRE */

#define PORT_VXLAN 4789
#define PORT_GTPU 2152
#define MPLS_MAX_LABELS 16
#define IPV6_MAX_EXT 16

/* Every read is bounded by `end` (at most caplen), checked before the read. */
struct pctx {
	const uint8_t *d;
	int tunnels;
	struct qe_packet_fields *f;
};

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* `n` bytes at `off` lie before `end`, written so that no sum can wrap. */
static inline int fits(uint32_t off, uint32_t n, uint32_t end)
{
	return off <= end && n <= end - off;
}

static void parse_ip(struct pctx *c, uint32_t off, uint32_t end, uint8_t tunnel);
static void parse_ethertype(struct pctx *c, uint16_t et, uint32_t off, uint32_t end, int outer, uint8_t tunnel);

static void truncated(struct pctx *c)
{
	c->f->truncated = 1;
}

static void parse_ether(struct pctx *c, uint32_t off, uint32_t end, int outer, uint8_t tunnel)
{
	if (outer) {
		if (fits(off, 6, end))
			c->f->dst_mac = c->d + off;
		if (fits(off, 12, end))
			c->f->src_mac = c->d + off + 6;
	}
	if (!fits(off, 14, end))
		return truncated(c);
	/* Below 0x0600 the field is an 802.3 length (LLC follows): nothing indexed beyond the MACs. */
	uint16_t et = rd16(c->d + off + 12);
	if (et >= 0x0600)
		parse_ethertype(c, et, off + 14, end, outer, tunnel);
}

/* ARP and RARP for IPv4 over any hardware: the sender's and the target's protocol addresses. */
static void parse_arp(struct pctx *c, uint32_t off, uint32_t end)
{
	if (!fits(off, 8, end))
		return truncated(c);
	const uint8_t *p = c->d + off;
	if (rd16(p + 2) != ET_IPV4 || p[5] != 4)
		return;
	uint32_t hlen = p[4];
	uint32_t spa = off + 8 + hlen, tpa = spa + 4 + hlen;
	if (!fits(spa, 4, end))
		return truncated(c);
	c->f->arp_spa = c->d + spa;
	if (!fits(tpa, 4, end))
		return truncated(c);
	c->f->arp_tpa = c->d + tpa;
}

static void parse_gre(struct pctx *c, uint32_t off, uint32_t end)
{
	if (!fits(off, 4, end))
		return truncated(c);
	uint16_t flags = rd16(c->d + off), proto = rd16(c->d + off + 2);
	/* Version 1 is PPTP's enhanced GRE (PPP inside); source routing (R) is obsolete (RFC 2784). */
	if ((flags & 7) != 0 || (flags & 0x4000))
		return;
	uint32_t p = off + 4 + ((flags & 0x8000) ? 4 : 0) + ((flags & 0x2000) ? 4 : 0) + ((flags & 0x1000) ? 4 : 0);
	if (p > end)
		return truncated(c);
	if (proto == ET_TEB)
		parse_ether(c, p, end, 0, QE_PF_TUNNEL_GRE);
	else
		parse_ethertype(c, proto, p, end, 0, QE_PF_TUNNEL_GRE);
}

/* GTP-U (3GPP TS 29.281): version 1, protocol type GTP, a G-PDU, then optional fields and
 * extension headers (each `length` 4-byte words, its last byte the next type). */
static void parse_gtpu(struct pctx *c, uint32_t off, uint32_t end)
{
	if (!fits(off, 8, end))
		return truncated(c);
	const uint8_t *p = c->d + off;
	if ((p[0] >> 5) != 1 || !(p[0] & 0x10) || p[1] != 0xff)
		return;
	uint32_t q = off + 8;
	if (p[0] & 0x07) {
		if (!fits(q, 4, end))
			return truncated(c);
		uint8_t next = c->d[q + 3];
		q += 4;
		for (int i = 0; next && i < 8; i++) {
			if (!fits(q, 1, end))
				return truncated(c);
			uint32_t len = (uint32_t)c->d[q] * 4;
			if (len == 0)
				return;
			if (!fits(q, len, end))
				return truncated(c);
			next = c->d[q + len - 1];
			q += len;
		}
		if (next)
			return;
	}
	parse_ip(c, q, end, QE_PF_TUNNEL_GTPU);
}

/* The transport header of an unfragmented datagram or a first fragment, and what it carries. */
static void parse_l4(struct pctx *c, struct qe_pf_ip *ip, uint32_t off, uint32_t end)
{
	ip->l4_off = off;
	const uint8_t *p = c->d + off;
	switch (ip->proto) {
	case 6:   /* TCP */
	case 17:  /* UDP */
	case 132: /* SCTP */
		if (!fits(off, 4, end)) {
			if (fits(off, 2, end)) {
				ip->sport = rd16(p);
				ip->has_ports = QE_PF_SPORT;
			}
			return truncated(c);
		}
		ip->sport = rd16(p);
		ip->dport = rd16(p + 2);
		ip->has_ports = QE_PF_SPORT | QE_PF_DPORT;
		if (ip->proto == 6 && fits(off, 14, end)) {
			ip->tcp_flags = p[13];
			ip->tcp_flags_ok = 1;
		}
		if (ip->proto == 17 && c->tunnels && fits(off, 8, end)) {
			if (ip->dport == PORT_VXLAN) {
				if (!fits(off + 8, 8, end))
					return truncated(c);
				if (p[8] & 0x08) /* the VNI is valid: an Ethernet frame follows */
					parse_ether(c, off + 16, end, 0, QE_PF_TUNNEL_VXLAN);
			} else if (ip->dport == PORT_GTPU) {
				parse_gtpu(c, off + 8, end);
			}
		}
		return;
	case 1:  /* ICMP */
	case 58: /* ICMPv6 */
		if (!fits(off, 2, end))
			return truncated(c);
		ip->icmp_type = p[0];
		ip->icmp_code = p[1];
		ip->has_icmp = 1;
		return;
	case 47:
		if (c->tunnels)
			parse_gre(c, off, end);
		return;
	case 4:  /* IPv4 in IP */
	case 41: /* IPv6 in IP */
		if (c->tunnels)
			parse_ip(c, off, end, QE_PF_TUNNEL_IPIP);
		return;
	default:
		return;
	}
}

static void chain_add(struct qe_pf_ip *ip, uint8_t nh)
{
	if (ip->nchain < QE_PF_MAX_CHAIN)
		ip->chain[ip->nchain++] = nh;
}

static void parse_ipv6(struct pctx *c, struct qe_pf_ip *ip, uint32_t off, uint32_t end)
{
	const uint8_t *h = c->d + off;
	uint32_t plen = rd16(h + 4);
	/* A payload length of 0 is a jumbogram (or a TSO frame): the datagram runs to the capture's end. */
	if (plen && fits(off + 40, plen, end))
		end = off + 40 + plen;
	ip->end = end;
	ip->src = h + 8;
	ip->dst = h + 24;
	ip->has_proto = 1;
	uint8_t nh = h[6];
	chain_add(ip, nh);
	uint32_t p = off + 40;
	for (int i = 0; i < IPV6_MAX_EXT; i++) {
		uint32_t len;
		switch (nh) {
		case 0:   /* hop-by-hop options */
		case 43:  /* routing */
		case 60:  /* destination options */
		case 135: /* mobility */
		case 139: /* HIP */
		case 140: /* shim6 */
			if (!fits(p, 8, end)) {
				ip->proto = nh;
				return truncated(c);
			}
			len = ((uint32_t)c->d[p + 1] + 1) * 8;
			break;
		case 51: /* AH: its length is in 4-byte words, less two */
			if (!fits(p, 8, end)) {
				ip->proto = nh;
				return truncated(c);
			}
			len = ((uint32_t)c->d[p + 1] + 2) * 4;
			break;
		case 44: { /* fragment */
			if (!fits(p, 8, end)) {
				ip->proto = nh;
				return truncated(c);
			}
			uint16_t fo = rd16(c->d + p + 2);
			ip->frag_id = rd32(c->d + p + 4);
			ip->frag_offset = fo & 0xfff8u;
			nh = c->d[p];
			chain_add(ip, nh);
			if (ip->frag_offset) {
				ip->frag = QE_PF_FRAG_LATER;
				ip->proto = nh;
				return;
			}
			if (fo & 1)
				ip->frag = QE_PF_FRAG_FIRST;
			p += 8;
			continue;
		}
		default:
			ip->proto = nh;
			parse_l4(c, ip, p, end);
			return;
		}
		nh = c->d[p];
		chain_add(ip, nh);
		if (!fits(p, len, end)) {
			ip->proto = nh;
			return truncated(c);
		}
		p += len;
	}
	ip->proto = nh; /* a chain longer than any real one: the upper layer is not looked for */
}

static void parse_ip(struct pctx *c, uint32_t off, uint32_t end, uint8_t tunnel)
{
	struct qe_packet_fields *f = c->f;
	if (f->nip >= QE_PF_MAX_IP)
		return;
	if (!fits(off, 1, end))
		return truncated(c);
	uint8_t v = c->d[off] >> 4;
	uint32_t need = v == 4 ? 20 : v == 6 ? 40 : 0;
	if (!need)
		return;
	struct qe_pf_ip *ip = &f->ip[f->nip++];
	memset(ip, 0, sizeof *ip);
	ip->version = v;
	ip->tunnel = tunnel;
	ip->l3_off = off;
	ip->end = end;
	if (!fits(off, need, end)) {
		/* What a cut header still holds: protocol, source, destination (in header order). */
		const uint8_t *h = c->d + off;
		uint32_t at_proto = v == 4 ? 9 : 6, at_src = v == 4 ? 12 : 8, alen = v == 4 ? 4 : 16;
		if (fits(off, at_proto + 1, end)) {
			ip->proto = h[at_proto];
			ip->has_proto = 1;
			if (v == 6)
				chain_add(ip, ip->proto);
		}
		if (fits(off, at_src + alen, end))
			ip->src = h + at_src;
		return truncated(c);
	}
	if (v == 6)
		return parse_ipv6(c, ip, off, end);

	const uint8_t *h = c->d + off;
	uint32_t ihl = (uint32_t)(h[0] & 0x0f) * 4, tot = rd16(h + 2);
	ip->src = h + 12;
	ip->dst = h + 16;
	ip->proto = h[9];
	ip->has_proto = 1;
	ip->frag_id = rd16(h + 4);
	uint16_t fo = rd16(h + 6);
	ip->frag_offset = (uint32_t)(fo & 0x1fff) * 8;
	/* Ethernet pads short frames: the datagram ends where its total length says, if inside. */
	if (tot >= ihl && fits(off, tot, end))
		end = off + tot;
	ip->end = end;
	if (ip->frag_offset) {
		ip->frag = QE_PF_FRAG_LATER;
		return;
	}
	if (fo & 0x2000)
		ip->frag = QE_PF_FRAG_FIRST;
	if (ihl < 20)
		return;
	if (!fits(off, ihl, end))
		return truncated(c);
	parse_l4(c, ip, off + ihl, end);
}

/* The payload of EtherType `et` at `off`: tags (recorded for the outer frame only), MPLS, PPPoE,
 * ARP, IP. */
static void parse_ethertype(struct pctx *c, uint16_t et, uint32_t off, uint32_t end, int outer, uint8_t tunnel)
{
	struct qe_packet_fields *f = c->f;
	for (;;) {
		if (outer)
			f->ethertype = et;
		switch (et) {
		case ET_VLAN:
		case ET_QINQ:
		case ET_QINQ_OLD1:
		case ET_QINQ_OLD2:
			if (outer) {
				if (f->nvlan == QE_PF_MAX_VLAN)
					return;
				if (fits(off, 2, end))
					f->vlan[f->nvlan++] = rd16(c->d + off) & 0x0fff;
			}
			if (!fits(off, 4, end))
				return truncated(c);
			et = rd16(c->d + off + 2);
			off += 4;
			continue;
		case ET_MPLS:
		case ET_MPLS_MC:
			for (int i = 0;; i++) {
				if (i == MPLS_MAX_LABELS)
					return;
				if (!fits(off, 4, end))
					return truncated(c);
				int bottom = c->d[off + 2] & 1;
				off += 4;
				if (bottom)
					break;
			}
			if (outer)
				f->mpls = 1;
			/* No type field follows the stack: the first nibble tells IPv4 from IPv6 (a
			 * pseudowire's control word starts with 0 and is not followed). */
			return parse_ip(c, off, end, tunnel);
		case ET_PPPOE:
			if (!fits(off, 8, end))
				return truncated(c);
			{
				uint16_t ppp = rd16(c->d + off + 6);
				if (ppp == 0x0021 || ppp == 0x0057)
					parse_ip(c, off + 8, end, tunnel);
			}
			return;
		case ET_IPV4:
		case ET_IPV6:
			return parse_ip(c, off, end, tunnel);
		case ET_ARP:
		case ET_RARP:
			if (outer)
				parse_arp(c, off, end);
			return;
		default:
			return;
		}
	}
}

int qe_packet_parse(uint32_t linktype, const uint8_t *data, uint32_t caplen, int tunnels, struct qe_packet_fields *f)
{
	struct pctx c = { .d = data, .tunnels = tunnels, .f = f };
	f->dst_mac = f->src_mac = NULL;
	f->arp_spa = f->arp_tpa = NULL;
	f->ethertype = 0;
	f->nvlan = f->nip = f->mpls = f->truncated = 0;
	switch (linktype) {
	case QE_PF_LINKTYPE_ETHERNET:
		parse_ether(&c, 0, caplen, 1, QE_PF_TUNNEL_NONE);
		break;
	case QE_PF_LINKTYPE_RAW:
	case QE_PF_LINKTYPE_IPV4:
	case QE_PF_LINKTYPE_IPV6:
		parse_ip(&c, 0, caplen, QE_PF_TUNNEL_NONE);
		break;
	case QE_PF_LINKTYPE_LINUX_SLL:
		/* packet type, ARPHRD type, address length, address (8), protocol */
		if (caplen < 16) {
			f->truncated = 1;
			break;
		}
		if (rd16(data + 2) == 1 && rd16(data + 4) == 6)
			f->src_mac = data + 6;
		parse_ethertype(&c, rd16(data + 14), 16, caplen, 1, QE_PF_TUNNEL_NONE);
		break;
	case QE_PF_LINKTYPE_LINUX_SLL2:
		/* protocol, reserved, ifindex, ARPHRD type, packet type, address length, address (8) */
		if (caplen < 20) {
			f->truncated = 1;
			break;
		}
		if (rd16(data + 8) == 1 && data[11] == 6)
			f->src_mac = data + 12;
		parse_ethertype(&c, rd16(data), 20, caplen, 1, QE_PF_TUNNEL_NONE);
		break;
	default:
		break;
	}
	return f->nip;
}
