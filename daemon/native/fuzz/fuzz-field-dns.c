/* The DNS field parser on arbitrary payloads. The first byte chooses UDP or TCP (its low bit) and
 * which end is port 53; the rest is copied into a buffer of exactly its length, so a read past it
 * is a heap overflow the sanitizer reports. The answer must be a valid RCODE or "not a response",
 * and agree with the registration table's parser and with its may_answer (bit 4: neither end on
 * port 53, never an answer). */
#include "harness.h"
#include "../field-dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int tcp = data[0] & 1;
	size_t len = size - 1;
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		abort();
	memcpy(p, data + 1, len);
	int rcode = qe_dns_response_rcode(p, (uint32_t)len, tcp);
	if (rcode < -1 || rcode > 15)
		abort();
	int off_port = data[0] & 16; /* neither end on port 53 */
	struct qe_field_ctx ctx = { .payload = p, .len = (uint32_t)len, .proto = tcp ? QE_IPPROTO_TCP : QE_IPPROTO_UDP,
				    .side = (uint8_t)(data[0] >> 1 & 3), .sport = data[0] & 2 ? 53 : 40000,
				    .dport = data[0] & 2 ? 40000 : 53 };
	if (off_port)
		ctx.sport = 40053, ctx.dport = 5353;
	enum qe_field_outcome o = qe_field_dns(&ctx);
	if (o != (rcode < 0 || off_port ? QE_FIELD_NONE : rcode ? QE_FIELD_ERROR : QE_FIELD_OK))
		abort();
	/* The tracker skips the parser on flows may_answer refuses: no answer may be lost there. */
	if (qe_field_dns_may_answer(ctx.proto, ctx.sport, ctx.dport) != !off_port)
		abort();
	free(p);
	return 0;
}
