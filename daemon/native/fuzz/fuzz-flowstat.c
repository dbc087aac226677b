/* qe-flowstat's reading of a store file's flow table, and its merge and count of what it holds.
 * The input is the table (X.pcap.qeflow) beside a small pcap file whose first record's time and
 * link type are the table header's (so the reading gets past "not this file's table" and into the
 * segments); the first byte of the input, when the table is shorter than its header, is ignored.
 * Each input is planned over a range from its own bytes, its whole records are also merged as a
 * packet-made body, and every statistic is counted: nothing may read past what was read, leak, or
 * overflow a count. */
#include <setjmp.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "harness.h"

/* die() ends the program; here it ends the input instead. */
static jmp_buf fuzz_exit;
__attribute__((noreturn)) static void qe_fuzz_exit(int code)
{
	(void)code;
	longjmp(fuzz_exit, 1);
}
#define exit(code) qe_fuzz_exit(code)
#define main qe_flowstat_main
#include "../qe-flowstat.c"
#undef main
#undef exit

static char dir[64];
static char pcap_path[128];
static char table_path[160];

static void reset(void)
{
	big_free(flows, cap_flows * sizeof *flows);
	flows = NULL;
	nflows = cap_flows = 0;
	big_free(slots, nslots * sizeof *slots);
	slots = NULL;
	nslots = 0;
	big_free(v6ends, cap_v6ends * sizeof *v6ends);
	v6ends = NULL;
	nv6ends = cap_v6ends = 0;
	free(rows);
	rows = NULL;
	nrows = cap_rows = 0;
	free(rslots);
	rslots = NULL;
	nrslots = 0;
	for (size_t i = 0; i < nplans; i++)
		free(plans[i].json);
	free(plans);
	plans = NULL;
	nplans = cap_plans = 0;
	for (size_t i = 0; i < npending; i++)
		free(pending[i].path);
	free(pending);
	pending = NULL;
	npending = cap_pending = 0;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/dev/shm/fuzz-flowstat-%d", (int)getpid());
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			abort();
		snprintf(pcap_path, sizeof pcap_path, "%s/f.pcap", dir);
		snprintf(table_path, sizeof table_path, "%s/f.pcap" QE_FLOW_EXT, dir);
	}
	/* The pcap file: a global header and one 60-byte record, dated and typed as the table says. */
	unsigned char pcap[QE_PCAP_GLOBAL_LEN + QE_PCAP_RECORD_LEN + 60] = {0};
	uint32_t magic = QE_PCAP_MAGIC_NANO, snap = 65535, lt = size >= QE_FLOW_HEADER_LEN ? get32(data + QE_FLOW_H_LINKTYPE) : 1;
	uint64_t first = size >= QE_FLOW_HEADER_LEN ? get64(data + QE_FLOW_H_PCAP_FIRST_NS) : 0;
	uint32_t rec[4] = {(uint32_t)(first / QE_PCAP_NS_PER_S), (uint32_t)(first % QE_PCAP_NS_PER_S), 60, 60};
	memcpy(pcap, &magic, 4);
	pcap[4] = 2;
	pcap[6] = 4;
	memcpy(pcap + 16, &snap, 4);
	memcpy(pcap + 20, &lt, 4);
	memcpy(pcap + QE_PCAP_GLOBAL_LEN, rec, sizeof rec);
	write_file(pcap_path, pcap, sizeof pcap);
	write_file(table_path, data, size);

	if (!setjmp(fuzz_exit)) {
		/* A range from the input: all of time, or a window around the pcap's first record. */
		uint8_t pick = size ? data[size - 1] : 0;
		from_ns = pick & 1 ? (first > 1000000 ? first - 1000000 : 0) : 0;
		to_ns = pick & 1 ? first + 1000000 * (uint64_t)(pick >> 1) : UINT64_MAX;
		flows_rehash(1024);
		if (npending == cap_pending) {
			cap_pending = 4;
			pending = xrealloc(pending, cap_pending * sizeof *pending);
		}
		pending[npending].iface = 0;
		pending[npending].partial = pick & 2;
		pending[npending].size = sizeof pcap;
		pending[npending].path = strdup(pcap_path);
		if (!pending[npending].path)
			abort();
		npending++;
		plan_pending();
		/* The input's longest run of whole records, as a body qe_flow_body_records accepts. */
		size_t whole = 0;
		while (whole < size && (data[whole] == 0 || data[whole] == 4 || data[whole] == 6) &&
		       qe_flow_record_len(data[whole]) <= size - whole)
			whole += qe_flow_record_len(data[whole]);
		merge_body(1, data, whole);
		for (int by = BY_HOST; by <= BY_IFACE; by++) {
			free(rows);
			rows = NULL;
			nrows = cap_rows = 0;
			FILE *null = fopen("/dev/null", "w");
			FILE *saved = stdout;
			stdout = null;
			finish((enum by)by, pick & 4 ? 3 : 0);
			stdout = saved;
			fclose(null);
		}
	}
	reset();
	return 0;
}
