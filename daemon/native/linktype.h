/* A pcap file names its link type by a LINKTYPE_ value; libpcap's filter compiler (pcap_open_dead,
 * pcap_compile) takes a DLT_ value. They are the same number except for a few old types whose DLT_
 * numbers differ between systems; raw IP (LINKTYPE_RAW, 101) is the one people capture and import.
 * libpcap maps them internally but does not export the mapping, so every place that compiles a
 * filter for a file's link type goes through this one. */
#ifndef QE_LINKTYPE_H
#define QE_LINKTYPE_H
#include <pcap/pcap.h>
#include <stdint.h>

static inline int qe_linktype_to_dlt(uint32_t linktype)
{
	switch (linktype) {
	case 100: return DLT_ATM_RFC1483;
	case 101: return DLT_RAW;
	case 102: return DLT_SLIP_BSDOS;
	case 103: return DLT_PPP_BSDOS;
	default: return (int)linktype;
	}
}
#endif
