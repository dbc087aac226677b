/* qe-extract's reader and merge: the input is a pcap file, read as two files of one stream (the
 * first marked sorted, so reading stops early past --to) merged with a third copy in another. */
#include <setjmp.h>
#include <stdlib.h>

#include "harness.h"

/* die() ends the program; here it ends the input instead. */
static jmp_buf fuzz_exit;
__attribute__((noreturn)) static void qe_fuzz_exit(int code)
{
	(void)code;
	longjmp(fuzz_exit, 1);
}
#define exit(code) qe_fuzz_exit(code)
#define main qe_extract_main
#include "../qe-extract.c"
#undef main
#undef exit

static void reset(void)
{
	for (size_t i = 0; i < nstreams; i++) {
		struct stream *s = &streams[i];
		if (s->fd >= 0)
			close(s->fd);
		if (s->adv_fd >= 0)
			close(s->adv_fd);
		free(s->buf);
		for (size_t k = 0; k < s->nfiles; k++)
			free(s->files[k].path);
		free(s->files);
	}
	free(streams);
	streams = NULL;
	nstreams = 0;
	free(heap);
	heap = NULL;
	heap_len = 0;
	free(out_buf);
	out_buf = NULL;
	out_len = 0;
	if (out_fd >= 0)
		close(out_fd);
	out_fd = -1;
	count = (struct counters){ 0 };
	linktype = -1;
	linktype_source = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *null;
	if (!null && !(null = fopen("/dev/null", "w")))
		abort();
	status_file = null;
	int fd = harness_memfd(data, size, 0);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	opt.out_path = "/dev/null";
	opt.from_ns = 0;
	/* --to from the input's first record, so a sorted file stops part way */
	opt.to_ns = QE_PCAP_MAX_TS_NS;
	if (size >= 48) {
		uint64_t t;
		memcpy(&t, data + 24, 8);
		opt.to_ns = t % (QE_PCAP_MAX_TS_NS + 1);
	}
	opt.linktype = -1;
	opt.snaplen = -1;
	add_file(0, path, true);
	add_file(0, path, false);
	add_file(1, path, false);
	/* The first file is read through ranges taken from the input, as a hostile index would give
	 * them (any offsets, not record starts), and every record meets a filter, so the outer-tag
	 * view and the fragment table run on hostile frames too. */
	static uint64_t fuzz_ranges[8];
	size_t nr = 0;
	uint64_t at = QE_PCAP_GLOBAL_LEN;
	for (size_t k = 0; k < 4 && size >= 64 + 4 * (k + 1); k++) {
		uint16_t skip, len;
		memcpy(&skip, data + size - 4 * (k + 1), 2);
		memcpy(&len, data + size - 4 * (k + 1) + 2, 2);
		fuzz_ranges[2 * nr] = at + skip % 512;
		fuzz_ranges[2 * nr + 1] = k == 3 ? UINT64_MAX : fuzz_ranges[2 * nr] + 1 + len % 4096;
		at = fuzz_ranges[2 * nr + 1];
		nr++;
	}
	static uint32_t fuzz_advised[4];
	memset(fuzz_advised, 0, sizeof fuzz_advised);
	ranges = fuzz_ranges;
	nranges = nr;
	advised = fuzz_advised;
	streams[0].files[0].ranged = nr > 0;
	streams[0].files[0].first_range = 0;
	streams[0].files[0].nranges = nr;
	static int compiled;
	if (!compiled) {
		pcap_t *dead = pcap_open_dead(DLT_EN10MB, 262144);
		if (!dead || pcap_compile(dead, &filter_prog, "port 53 or host 10.0.0.1 or ip6", 1, PCAP_NETMASK_UNKNOWN) != 0)
			abort();
		pcap_close(dead);
		compiled = 1;
	}
	have_filter = true;
	strip_outer_tag = size & 1;
	memset(&frags, 0, sizeof frags);
	if (setjmp(fuzz_exit) == 0) {
		for (size_t i = 0; i < nstreams; i++) {
			streams[i].cap = READ_CHUNK;
			streams[i].buf = malloc(streams[i].cap);
			if (!streams[i].buf)
				abort();
			open_next_file(&streams[i]);
		}
		cover_every_snaplen();
		out_buf = malloc(WRITE_CHUNK);
		out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (!out_buf || out_fd < 0)
			abort();
		merge();
		out_flush();
	}
	reset();
	close(fd);
	return 0;
}
