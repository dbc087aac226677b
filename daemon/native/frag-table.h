/* What a datagram's first fragment said, kept for its later fragments, which carry no transport
 * header: the index posts their ports under it (a port lookup finds every fragment of a matching
 * datagram) and the flow table counts them in the datagram's flow. A fixed table of recent
 * datagrams (a later slot overwrites an older one): a fragment whose first one it no longer holds
 * is told so, and its caller counts it under "ports unknown".
 *
 * The two values are the caller's (the index: the ports; the flow table: its key's ports, which
 * for ICMP are the mapped type and code). */
#ifndef QE_FRAG_TABLE_H
#define QE_FRAG_TABLE_H
#include <stdint.h>

#include "packet-fields.h"

#define QE_FRAG_SLOTS 1024 /* datagrams being reassembled at once, as far as their first fragment goes */

struct qe_frag {
	uint8_t used, version, proto, pad;
	uint32_t id;
	uint8_t src[16], dst[16];
	uint16_t a, b;
};

struct qe_frag_table {
	struct qe_frag slot[QE_FRAG_SLOTS];
};

/* The first fragment (ip->frag == QE_PF_FRAG_FIRST, src and dst present) of a datagram says `a`, `b`. */
void qe_frag_remember(struct qe_frag_table *t, const struct qe_pf_ip *ip, uint16_t a, uint16_t b);
/* A later fragment (src and dst present): 1 with what its first fragment said, 0 when unknown. */
int qe_frag_lookup(const struct qe_frag_table *t, const struct qe_pf_ip *ip, uint16_t *a, uint16_t *b);
#endif
