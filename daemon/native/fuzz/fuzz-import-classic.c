/* The classic pcap import of `qe-capture --read`: the input is the file, header included. */
#include "harness.h"
#define main qe_capture_main
#include "../qe-capture.c"
#undef main

static struct capture *setup(struct capture *c, struct options *o, uint32_t snaplen)
{
	memset(c, 0, sizeof *c);
	memset(o, 0, sizeof *o);
	o->iface = "fuzz";
	o->read_path = "fuzz-input";
	o->snaplen = snaplen;
	o->wcfg.iface = o->iface;
	o->wcfg.dirs[0] = harness_dir();
	o->wcfg.ndirs = 1;
	o->wcfg.snaplen = snaplen;
	o->wcfg.file_size = 64u << 10; /* rotation and runs cut at file ends are reached often */
	o->wcfg.flush_ms = 1000;
	c->opt = o;
	return c;
}

static void teardown(struct capture *c)
{
	if (c->w) {
		writer_finish(c->w);
		writer_free(c->w);
	}
	if (c->have_prog)
		pcap_freecode(&c->prog);
	if (c->pcap)
		pcap_close(c->pcap);
	harness_check_and_empty_dir();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qe_pcap_global g;
	if (size < QE_PCAP_GLOBAL_LEN || !qe_pcap_global_decode(data, &g))
		return 0; /* run_read hands anything else to libpcap: the pcapng target */
	harness_quiet();
	static struct capture c;
	static struct options o;
	/* An odd-sized input is imported with a small snaplen, so records are cut on the way in. */
	setup(&c, &o, size & 1 ? 200 : QE_PCAP_CAPLEN_FLOOR);
	int fd = harness_memfd(data, size, QE_PCAP_GLOBAL_LEN);
	read_classic(&c, fd, data);
	close(fd);
	teardown(&c);
	return 0;
}
