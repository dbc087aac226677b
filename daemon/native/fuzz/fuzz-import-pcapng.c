/* The libpcap import of `qe-capture --read` (pcapng and whatever else libpcap opens): the path our
 * code takes after libpcap parsed the file, on a file in memory. */
#include "harness.h"
#define main qe_capture_main
#include "../qe-capture.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	harness_quiet();
	static struct capture c;
	static struct options o;
	memset(&c, 0, sizeof c);
	memset(&o, 0, sizeof o);
	o.iface = "fuzz";
	o.read_path = "fuzz-input";
	o.snaplen = QE_PCAP_CAPLEN_FLOOR;
	o.wcfg.iface = o.iface;
	o.wcfg.dirs[0] = harness_dir();
	o.wcfg.ndirs = 1;
	o.wcfg.snaplen = o.snaplen;
	o.wcfg.file_size = 64u << 10;
	o.wcfg.flush_ms = 1000;
	c.opt = &o;

	FILE *f = fmemopen((void *)data, size, "rb");
	if (!f)
		abort();
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *in = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!in) {
		fclose(f);
		return 0;
	}
	import_pcap(&c, in);
	pcap_close(in);
	if (c.w) {
		writer_finish(c.w);
		writer_free(c.w);
	}
	if (c.have_prog)
		pcap_freecode(&c.prog);
	if (c.pcap)
		pcap_close(c.pcap);
	harness_check_and_empty_dir();
	return 0;
}
