#include "field-dns.h"

int qe_dns_response_rcode(const uint8_t *p, uint32_t len, int tcp)
{
	if (tcp) {
		if (len < 2)
			return -1;
		/* The message length: a segment starting mid-message reads as a length that cannot
		 * hold a header, or as a header that fails the checks below. */
		uint32_t msg_len = (uint32_t)p[0] << 8 | p[1];
		if (msg_len < QE_DNS_HEADER_LEN)
			return -1;
		p += 2;
		len -= 2;
	}
	if (len < QE_DNS_HEADER_LEN)
		return -1;
	uint8_t flags1 = p[2], flags2 = p[3];
	if (!(flags1 & 0x80)) /* QR: a query */
		return -1;
	unsigned opcode = (flags1 >> 3) & 0xf;
	if (opcode == 3 || opcode > 6) /* 0 QUERY, 1 IQUERY, 2 STATUS, 4 NOTIFY, 5 UPDATE, 6 DSO */
		return -1;
	return flags2 & 0xf;
}

enum qe_field_outcome qe_field_dns(const struct qe_field_ctx *ctx)
{
	if (ctx->sport != QE_DNS_PORT && ctx->dport != QE_DNS_PORT)
		return QE_FIELD_NONE;
	int rcode = qe_dns_response_rcode(ctx->payload, ctx->len, ctx->proto == QE_IPPROTO_TCP);
	return rcode < 0 ? QE_FIELD_NONE : rcode ? QE_FIELD_ERROR : QE_FIELD_OK;
}

int qe_field_dns_may_answer(uint8_t proto, uint16_t sport, uint16_t dport)
{
	(void)proto; /* DNS over UDP and over TCP */
	return sport == QE_DNS_PORT || dport == QE_DNS_PORT;
}
