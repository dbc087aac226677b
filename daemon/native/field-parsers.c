/* The registration table of field parsers (field-parsers.h): one line per parser, in the order
 * their counters appear in each element of the `elements` message. */
#include "field-parsers.h"

#include "field-dns.h"
#include "field-http.h"

const struct qe_field_parser qe_field_parsers[] = {
	{ "dns_answers", "dns_errors", qe_field_dns, qe_field_dns_may_answer },
	{ "http_responses", "http_errors", qe_field_http, qe_field_http_may_answer },
};

const unsigned qe_field_parser_count = sizeof qe_field_parsers / sizeof qe_field_parsers[0];

_Static_assert(sizeof qe_field_parsers / sizeof qe_field_parsers[0] <= QE_FIELD_PARSERS_MAX,
	       "raise QE_FIELD_PARSERS_MAX: the tracker keeps counters for at most that many parsers");
