/* Per-element counters, counted as packets are captured (element-format.h describes the elements
 * file and the numbers; daemon/src/capture/protocol.ts, message `elements`, defines each counter).
 *
 * The tracker keeps a flow table of its own, independent of the capture files and of the flow
 * tables written beside them (elements count with flows.enabled false and across rotation). A flow
 * is an IP version, a protocol and an unordered pair of (address, port) ends of the outer IP
 * header; ICMP and other portless protocols are keyed by addresses alone, and an IP fragment after
 * the first falls in the flow of its addresses with port 0. Each element's BPF filter runs once per
 * flow, on the frame of its first packet, and its verdict (a bit per element) holds for every packet
 * of the flow in both directions. Per packet then: one lookup (or the flow table's, below), and
 * for a flow of some element its counts (packets, bytes, the matches of its elements' custom
 * filters, one program per distinct text), kept in the flow and folded into the elements'
 * counters at each report and sweep, and the field parsers (field-parsers.h) once, whose rare
 * answers and the TCP events go to the elements' counters directly. A flow no parser may answer
 * (may_answer, asked on its first packet) and whose packet moves no handshake (not TCP, or no SYN,
 * FIN or RST) is only counted: the lookup, its line, its custom filters. Filters run through
 * bpf-run.h (libpcap's for the programs it does not take).
 *
 * Frames that are not IP (ARP, LLDP, STP...) belong to no element: elements qualify IP services,
 * and a filter matching only such frames is a filter on link noise.
 *
 * Memory is bounded: at most QE_ELEM_TRACK_FLOWS flows, a flow idle for QE_ELEM_TRACK_IDLE_S seconds
 * is forgotten (its next packet starts a new flow: the filters are run again, TCP states start
 * over). With the table full, a new flow's packets are matched packet by packet (counted right, at
 * more cost) and its TCP handshake is not followed. Time is the packets' time (a file read is
 * counted as it was captured); qe_elements_tick moves it on when no packet comes.
 *
 * When the writer builds flow tables it has found the packet's flow already: the tracker keeps, for
 * the open file's flow table, which of its own flows each of that table's flows is, so a known flow
 * costs one array read instead of a second lookup (see qe_elements_add). */
#ifndef QE_ELEMENT_TRACK_H
#define QE_ELEMENT_TRACK_H
#include <stddef.h>
#include <stdint.h>

#include "packet-fields.h"

#define QE_ELEM_TRACK_FLOWS (1u << 17)
#define QE_ELEM_TRACK_IDLE_S 120

struct qe_elements;

/* Reads and compiles an elements file for frames of `linktype`; NULL with the reason in err (the
 * file, the line and what is wrong) when anything in it is refused. A file of no element is valid
 * (counting stops). */
struct qe_elements *qe_elements_load(const char *path, uint32_t linktype, uint32_t snaplen, char *err, size_t errlen);
/* The same from text in memory (`name` in messages). */
struct qe_elements *qe_elements_parse(const char *text, size_t len, const char *name, uint32_t linktype, uint32_t snaplen,
				      char *err, size_t errlen);
void qe_elements_free(struct qe_elements *e);
unsigned qe_elements_count(const struct qe_elements *e);

/* One captured packet (caplen bytes at data, origlen on the wire) and its parsed fields. When the
 * open file has a flow table, `flow_ref` is what qe_flow_add returned for the packet and
 * `flow_file` a number naming that table (a new one for each table: the refs of one table mean
 * nothing in the next); the tracker then looks a known flow up by the ref instead of by its key.
 * Without one: QE_FLOW_REF_NONE (flow_file is then ignored). The counts are the same either way. */
void qe_elements_add(struct qe_elements *e, uint64_t ts_ns, uint32_t caplen, uint32_t origlen, const uint8_t *data,
		     const struct qe_packet_fields *f, uint64_t flow_file, uint32_t flow_ref);
/* The clock moved to now_ns (live capture, once a second): SYNs unanswered for the timeout are
 * counted, idle flows forgotten. A time behind the packets' is ignored. */
void qe_elements_tick(struct qe_elements *e, uint64_t now_ns);

/* The `elements` message (protocol.ts) on stdout. */
/* Counts a flow's packets gathered in the flow since the last report into its elements first. */
void qe_elements_report(struct qe_elements *e, const char *iface, uint64_t generation);
#endif
