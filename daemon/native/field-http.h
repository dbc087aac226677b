/* HTTP/1.x responses: the status line at the start of a TCP payload sent by the server ("HTTP/1.1
 * 503 Service Unavailable"). A segment from the client, or one starting mid-stream, does not start
 * with "HTTP/1.", so the line identifies itself; when the tracker knows the client's side, the
 * client's segments are not read at all. */
#ifndef QE_FIELD_HTTP_H
#define QE_FIELD_HTTP_H
#include <stdint.h>

#include "field-parsers.h"

/* The status code (100..999) of the status line at p[0, len): "HTTP/1.<digit> <3 digits>"
 * followed by a space, CR or the end of the payload; -1 otherwise. */
int qe_http_status(const uint8_t *p, uint32_t len);

/* The parser of the registration table: a status line on TCP, an error when 5xx. */
enum qe_field_outcome qe_field_http(const struct qe_field_ctx *ctx);
/* Its registration's may_answer (field-parsers.h). */
int qe_field_http_may_answer(uint8_t proto, uint16_t sport, uint16_t dport);
#endif
