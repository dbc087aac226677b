/* The element tracker on arbitrary packets. The input is a classic pcap file, walked leniently (any
 * caplen that fits what is left); each packet is copied into a buffer of exactly its length (a read
 * past caplen, by the tracker, a field parser or a filter, is a heap overflow the sanitizer
 * reports), parsed as the writer parses it and counted for a fixed set of elements. Time moves
 * with the packets (backwards too), and by a tick every few of them. The counters must hold
 * together: no more answers than attempts, no more errors than answers, no more custom matches
 * than packets; then the message is built. A second tracker counts the same packets through a flow
 * table's lookups (flow-build.h, a new table every few packets as files rotate): its counters must
 * be the first's, field for field. */
#include "harness.h"
#include "../element-track.c"

static const uint32_t linktypes[] = { QE_PF_LINKTYPE_ETHERNET, QE_PF_LINKTYPE_RAW,	  QE_PF_LINKTYPE_IPV4,
				      QE_PF_LINKTYPE_IPV6,     QE_PF_LINKTYPE_LINUX_SLL, QE_PF_LINKTYPE_LINUX_SLL2 };

/* Filters every link type compiles (one that can match nothing on a link, such as `ip6` on raw
 * IPv4, is refused by libpcap). */
static const char ELEMENTS[] = "qe-elements 1\n"
			       "element 0 tcp\n"
			       "custom 0 0 port 443 or port 80\n"
			       "element 1 udp port 53 or tcp port 53\n"
			       "element 2 \n"
			       "custom 2 0 udp\n"
			       "custom 2 1 tcp or icmp\n"
			       "element 3 tcp port 80 or tcp port 8080\n"
			       "custom 3 0 udp\n" /* element 2's text: one program, filtered once a packet */
			       "element 4 tcp or udp\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	harness_quiet();
	struct qe_pcap_global g;
	if (size < QE_PCAP_GLOBAL_LEN || !qe_pcap_global_decode(data, &g))
		return 0;
	uint32_t linktype = linktypes[g.linktype % 6];
	for (int i = 0; i < 6; i++)
		if (linktypes[i] == g.linktype)
			linktype = g.linktype;
	char err[512];
	struct qe_elements *e = qe_elements_parse(ELEMENTS, sizeof ELEMENTS - 1, "fuzz", linktype, 262144, err, sizeof err);
	struct qe_elements *e2 = e ? qe_elements_parse(ELEMENTS, sizeof ELEMENTS - 1, "fuzz", linktype, 262144, err, sizeof err) : NULL;
	if (!e || !e2) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	uint32_t every = 1 + (g.snaplen & 15), rotate = 1 + (g.snaplen >> 12 & 63);
	size_t off = QE_PCAP_GLOBAL_LEN;
	uint64_t n = 0, last = 0, file = 1;
	struct qe_flow_builder *fb = qe_flow_builder_new(linktype);
	if (!fb)
		abort();
	while (size - off >= QE_PCAP_RECORD_LEN) {
		struct qe_pcap_record r;
		qe_pcap_record_decode(data + off, g.swapped, &r);
		size_t left = size - off - QE_PCAP_RECORD_LEN;
		uint32_t caplen = r.caplen < left ? r.caplen : (uint32_t)left;
		uint8_t *pkt = malloc(caplen ? caplen : 1);
		if (!pkt)
			abort();
		memcpy(pkt, data + off + QE_PCAP_RECORD_LEN, caplen);
		struct qe_packet_fields f;
		qe_packet_parse(linktype, pkt, caplen, (int)(n & 1), &f);
		last = qe_pcap_record_ns(&r, g.nanos);
		qe_elements_add(e, last, caplen, r.origlen, pkt, &f, 0, QE_FLOW_REF_NONE);
		uint32_t ref = qe_flow_add(fb, off, last, caplen, r.origlen, &f);
		qe_elements_add(e2, last, caplen, r.origlen, pkt, &f, file, ref);
		free(pkt);
		off += QE_PCAP_RECORD_LEN + caplen;
		if (++n % every == 0) {
			qe_elements_tick(e, last + (uint64_t)(g.snaplen >> 4 & 0xff) * NS_PER_S / 16);
			qe_elements_tick(e2, last + (uint64_t)(g.snaplen >> 4 & 0xff) * NS_PER_S / 16);
		}
		if (n % rotate == 0) {
			qe_flow_builder_free(fb);
			if (!(fb = qe_flow_builder_new(linktype)))
				abort();
			file++;
		}
	}
	qe_flow_builder_free(fb);
	fold_pending(e); /* what the flows hold for their elements, as a report does first */
	fold_pending(e2);
	for (unsigned i = 0; i < e->n; i++)
		if (memcmp(&e->el[i].c, &e2->el[i].c, sizeof e->el[i].c) != 0)
			abort();
	for (unsigned i = 0; i < e->n; i++) {
		const struct counters *c = &e->el[i].c;
		uint64_t rtts = 0;
		for (unsigned b = 0; b < QE_ELEM_RTT_BUCKETS; b++)
			rtts += c->rtt[b];
		if (c->tcp_answered + c->tcp_unanswered > c->tcp_attempts || rtts > c->tcp_answered || c->packets > n)
			abort();
		for (unsigned p = 0; p < qe_field_parser_count; p++)
			if (c->errors[p] > c->answers[p] || c->answers[p] > c->packets)
				abort();
		for (unsigned x = 0; x < e->el[i].ncustom; x++)
			if (c->custom[x] > c->packets)
				abort();
	}
	qe_elements_report(e, "fuzz", 1);
	qe_elements_free(e);
	qe_elements_free(e2);
	return 0;
}
