#include "field-http.h"

#include <string.h>

#define HTTP_PREFIX "HTTP/1."
#define HTTP_PREFIX_LEN 7

static int digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

int qe_http_status(const uint8_t *p, uint32_t len)
{
	/* "HTTP/1.x NNN" is 12 bytes; what follows, if captured, must end the code. */
	if (len < 12 || memcmp(p, HTTP_PREFIX, HTTP_PREFIX_LEN) != 0 || !digit(p[7]) || p[8] != ' ')
		return -1;
	if (!digit(p[9]) || !digit(p[10]) || !digit(p[11]) || p[9] == '0')
		return -1;
	if (len > 12 && p[12] != ' ' && p[12] != '\r' && p[12] != '\n')
		return -1;
	return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

enum qe_field_outcome qe_field_http(const struct qe_field_ctx *ctx)
{
	if (ctx->proto != QE_IPPROTO_TCP || ctx->side == QE_FIELD_SIDE_CLIENT)
		return QE_FIELD_NONE;
	int status = qe_http_status(ctx->payload, ctx->len);
	return status < 0 ? QE_FIELD_NONE : status >= 500 && status <= 599 ? QE_FIELD_ERROR : QE_FIELD_OK;
}

int qe_field_http_may_answer(uint8_t proto, uint16_t sport, uint16_t dport)
{
	(void)sport; /* HTTP on any port: servers listen on many */
	(void)dport;
	return proto == QE_IPPROTO_TCP;
}
