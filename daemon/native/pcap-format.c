#include "pcap-format.h"

#include <pcap/pcap.h>

uint64_t qe_pcap_whole_end(qe_pcap_pread rd, void *ctx, uint64_t size, uint64_t lo_ns, uint64_t hi_ns,
			   uint64_t *packets)
{
	unsigned char hdr[QE_PCAP_GLOBAL_LEN];
	struct qe_pcap_global g;
	*packets = 0;
	if (rd(ctx, hdr, QE_PCAP_GLOBAL_LEN, 0) != QE_PCAP_GLOBAL_LEN || !qe_pcap_global_decode(hdr, &g))
		return 0;
	uint64_t off = QE_PCAP_GLOBAL_LEN;
	while (off + QE_PCAP_RECORD_LEN <= size) {
		struct qe_pcap_record r;
		if (rd(ctx, hdr, QE_PCAP_RECORD_LEN, off) != QE_PCAP_RECORD_LEN)
			break;
		qe_pcap_record_decode(hdr, g.swapped, &r);
		if (!qe_pcap_record_whole(&r, &g, off, size, lo_ns, hi_ns))
			break;
		off += QE_PCAP_RECORD_LEN + r.caplen;
		(*packets)++;
	}
	return off;
}

/* libpcap names the DLT_ values it knows; a few LINKTYPE_ values in files differ from their DLT_
 * and have no name, yet both libpcap and Wireshark read them. */
int qe_pcap_linktype_known(uint32_t linktype)
{
	if (linktype >= 100 && linktype <= 103) /* ATM_RFC1483, RAW, SLIP_BSDOS, PPP_BSDOS */
		return 1;
	if (linktype >= 147 && linktype <= 162) /* USER0..USER15 */
		return 1;
	return linktype <= 0xffff && pcap_datalink_val_to_name((int)linktype) != NULL;
}
