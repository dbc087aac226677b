/* Field parsers: small readers of the first bytes of a packet's payload that say whether it is an
 * answer of some protocol and whether that answer is an error (a DNS RCODE, an HTTP 5xx). The
 * element tracker runs each registered parser on every packet of an element that has a payload and
 * counts, per element and per parser, the answers and the errors (the message `elements`, whose
 * field names the table gives). Adding one is a parser file and a line in field-parsers.c
 * (docs/INDICATORS.md).
 *
 * The payload is hostile: a parser reads only payload[0, len), len already cut at the captured
 * length and at the datagram's end. */
#ifndef QE_FIELD_PARSERS_H
#define QE_FIELD_PARSERS_H
#include <stdint.h>

#define QE_IPPROTO_TCP 6
#define QE_IPPROTO_UDP 17

/* Which end sent the packet, when the tracker knows (it saw the SYN that opened the flow). */
enum qe_field_side { QE_FIELD_SIDE_UNKNOWN = 0, QE_FIELD_SIDE_CLIENT = 1, QE_FIELD_SIDE_SERVER = 2 };

struct qe_field_ctx {
	const uint8_t *payload; /* the transport payload (after the TCP or UDP header) */
	uint32_t len;
	uint8_t proto;          /* QE_IPPROTO_TCP or QE_IPPROTO_UDP */
	uint8_t side;           /* enum qe_field_side */
	uint16_t sport, dport;
};

enum qe_field_outcome {
	QE_FIELD_NONE = 0,  /* not this parser's answer */
	QE_FIELD_OK = 1,    /* an answer that is not an error */
	QE_FIELD_ERROR = 2, /* an answer that is an error */
};

struct qe_field_parser {
	const char *answers_key; /* the counter of answers in the `elements` message */
	const char *errors_key;  /* the counter of those that are errors */
	enum qe_field_outcome (*parse)(const struct qe_field_ctx *ctx);
	/* Whether a packet of a flow of this protocol and these ports (either order) can be one of
	 * parse's answers; NULL: any flow's. The tracker asks once per flow and skips the parser on
	 * every packet of a flow none may answer, so it must hold for every payload and side: when
	 * it says 0, parse says QE_FIELD_NONE (the parser's fuzz target checks it). */
	int (*may_answer)(uint8_t proto, uint16_t sport, uint16_t dport);
};

extern const struct qe_field_parser qe_field_parsers[];
extern const unsigned qe_field_parser_count;
/* The most parsers the tracker keeps counters for (a build-time bound the table is checked against). */
#define QE_FIELD_PARSERS_MAX 8
#endif
