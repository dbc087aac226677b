/* writer.c's cut after a torn write: on any file, it must keep a prefix of whole valid records and
 * be idempotent (a cut file is cut again at its end), so it and the daemon's repair agree. */
#include "harness.h"
#include "../writer.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The file's name (its first packet) is taken from the first record, when there is one. */
	uint64_t first_ns = 0;
	struct qe_pcap_global g;
	if (size >= QE_PCAP_GLOBAL_LEN + QE_PCAP_RECORD_LEN && qe_pcap_global_decode(data, &g)) {
		struct qe_pcap_record r;
		qe_pcap_record_decode(data + QE_PCAP_GLOBAL_LEN, g.swapped, &r);
		first_ns = qe_pcap_record_ns(&r, g.nanos);
	}
	int fd = harness_memfd(data, size, 0);
	uint64_t kept = size;
	uint64_t packets = cut_to_whole_records(fd, first_ns, &kept);
	off_t now = lseek(fd, 0, SEEK_END);
	if (kept > size || (packets && (uint64_t)now != kept))
		abort();
	uint64_t again = (uint64_t)now;
	if (cut_to_whole_records(fd, first_ns, &again) != packets || lseek(fd, 0, SEEK_END) != now)
		abort();
	close(fd);
	return 0;
}
