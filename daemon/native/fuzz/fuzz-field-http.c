/* The HTTP status line parser on arbitrary payloads, copied into a buffer of exactly their length
 * (a read past it is a heap overflow the sanitizer reports). A status found must be three digits
 * that the payload spells after "HTTP/1.x ", and the table's parser must agree with it and with its
 * may_answer (TCP only). */
#include "harness.h"
#include "../field-http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		abort();
	memcpy(p, data, size);
	int status = qe_http_status(p, (uint32_t)size);
	if (status != -1 && (status < 100 || status > 999 || size < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
			     (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0') != status))
		abort();
	for (uint8_t side = 0; side < 3; side++) {
		struct qe_field_ctx ctx = { .payload = p, .len = (uint32_t)size, .proto = QE_IPPROTO_TCP, .side = side, .sport = 80, .dport = 40000 };
		enum qe_field_outcome o = qe_field_http(&ctx);
		enum qe_field_outcome want = side == QE_FIELD_SIDE_CLIENT || status < 0 ? QE_FIELD_NONE
					     : status >= 500 && status < 600 ? QE_FIELD_ERROR
									 : QE_FIELD_OK;
		if (o != want || !qe_field_http_may_answer(ctx.proto, ctx.sport, ctx.dport))
			abort();
	}
	/* may_answer refuses every flow but TCP's: the tracker skips the parser there. */
	static const uint8_t others[] = { QE_IPPROTO_UDP, 1, 132, 0 };
	for (unsigned i = 0; i < sizeof others; i++) {
		struct qe_field_ctx ctx = { .payload = p, .len = (uint32_t)size, .proto = others[i], .sport = 80, .dport = 40000 };
		if (qe_field_http(&ctx) != QE_FIELD_NONE || qe_field_http_may_answer(ctx.proto, 80, 40000))
			abort();
	}
	free(p);
	return 0;
}
