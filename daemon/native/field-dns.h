/* DNS answers: the QR bit and the RCODE of a DNS message at the start of a payload to or from port
 * 53 (UDP, or TCP with its two-byte length when the message starts the segment). */
#ifndef QE_FIELD_DNS_H
#define QE_FIELD_DNS_H
#include <stdint.h>

#include "field-parsers.h"

#define QE_DNS_PORT 53
#define QE_DNS_HEADER_LEN 12

/* The RCODE (0..15) of the DNS response at p[0, len) (`tcp`: after a two-byte length that must
 * cover at least the header); -1 when it is not a response (QR clear, a query) or not a DNS
 * header at all (too short, an opcode DNS does not define). */
int qe_dns_response_rcode(const uint8_t *p, uint32_t len, int tcp);

/* The parser of the registration table: a response from or to port 53, an error when RCODE != 0. */
enum qe_field_outcome qe_field_dns(const struct qe_field_ctx *ctx);
/* Its registration's may_answer (field-parsers.h). */
int qe_field_dns_may_answer(uint8_t proto, uint16_t sport, uint16_t dport);
#endif
