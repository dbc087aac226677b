/* `qe-extract --plan` (index-plan.h): which bytes of each file a filtered extraction reads, from
 * the file's index. The same decisions as daemon/src/extract/read-plan.ts made before (and that
 * module still owns the defaults and the words): candidate blocks from the index, gaps of up to
 * --merge-gap blocks read through, a file whose candidates cover more than --dense of it read
 * whole, the part past what the index covers (an open file's newest packets, a torn segment)
 * read whole.
 *
 * From a cold cache each file's plan is a chain of disk trips (the index's first 16 KiB, the pcap
 * file's first record when the catalog did not give it, the directory run the fence points to,
 * posting lists, the block table), one after another: files are planned on several threads, so the chains of different files overlap.
 * Measured on 45 indexed files, cold: 35-60 ms on one thread, 17 ms on 16; asking for every
 * file's first pages up front (posix_fadvise WILLNEED) on top of the threads changed nothing
 * measurable (17.3 against 17.4 ms), and costs two opens a file when the cache is warm. */
#include "read-plan.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index-plan.h"
#include "index-read.h"
#include "pcap-format.h"

/* Threads planning files at once: enough outstanding reads to keep an SSD's queue busy from a
 * cold cache; warm, the work is a few microseconds a file and two cores are plenty. */
#define PLAN_THREADS 16

struct file {
	uint64_t size, packets;
	int partial;
	int have_facts; /* the catalog's first record time and link type: no read of the pcap file */
	uint64_t first_ns;
	uint32_t linktype;
	char *path;
	char *out; /* its JSON line */
};

static struct {
	uint64_t merge_gap;
	double dense;
	uint32_t needed;
	struct qe_plan plans[64];
	uint8_t have[64];
	struct file *files;
	size_t nfiles;
	atomic_size_t next;
} g = { .merge_gap = 2, .dense = 0.5 };

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "qe-extract --plan: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(2);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* A file that is read whole: why, and what the index said. */
static void scan(FILE *f, const char *why, const char *note, int fields, uint32_t field_bits, size_t blocks,
		 uint64_t index_bytes)
{
	fprintf(f, "{\"why\":\"%s\"", why);
	if (note) {
		fputs(",\"note\":", f);
		json_string(f, note);
	}
	if (fields)
		fprintf(f, ",\"fields\":%" PRIu32, field_bits);
	fprintf(f, ",\"blocks\":%zu,\"index_bytes\":%" PRIu64 "}", blocks, index_bytes);
}

struct range {
	uint64_t a, b; /* b == UINT64_MAX: to the end */
};

static void plan_file(struct file *file, FILE *f)
{
	char note[QE_IR_NOTE_MAX];
	size_t plen = strlen(file->path);
	char *ipath = malloc(plen + sizeof QE_IDX_EXT);
	if (!ipath)
		abort();
	memcpy(ipath, file->path, plen);
	memcpy(ipath + plen, QE_IDX_EXT, sizeof QE_IDX_EXT);
	struct qe_ir ix;
	/* The catalog's facts when it has them: reading each pcap file's first record to check its
	 * index against was a disk trip per file, a third of a file's cold plan when the key is absent. */
	struct qe_ir_pcap facts = { .linktype = file->linktype, .size = file->size, .first_ns = file->first_ns };
	int st = qe_ir_open(&ix, ipath, file->path, file->have_facts ? &facts : NULL, note, sizeof note);
	if (st != QE_IR_OK) {
		scan(f, st == QE_IR_MISSING ? QE_PLAN_WHY_NO_INDEX : QE_PLAN_WHY_UNUSABLE, st == QE_IR_MISSING ? NULL : note, 0,
		     0, 0, 0);
		free(ipath);
		return;
	}
	uint32_t mask = ix.fields & g.needed;
	const struct qe_plan *plan = g.have[mask] ? &g.plans[mask] : NULL;
	if (!plan || plan->nodes[0].kind == QE_PLAN_ALL) {
		scan(f, g.needed ? QE_PLAN_WHY_FIELDS : QE_PLAN_WHY_NOT_NARROWED, NULL, 1, ix.fields, 0, 0);
		goto done;
	}
	uint64_t *starts;
	size_t nstarts;
	if (qe_ir_lookup(&ix, plan, &starts, &nstarts) != QE_IR_OK) {
		scan(f, QE_PLAN_WHY_UNUSABLE, note, 0, 0, 0, ix.bytes_read);
		goto done;
	}
	uint64_t covered = qe_ir_covered_end(&ix), bs = ix.block_size;
	/* merge_gap is bounded at parse time (below 2^32 blocks of at most 2^24 bytes). */
	uint64_t gap = g.merge_gap * bs;
	struct range *r = malloc((nstarts + 1) * sizeof *r);
	if (!r)
		abort();
	size_t n = 0;
	for (size_t i = 0; i < nstarts; i++) {
		uint64_t stop = ((starts[i] >> ix.shift) + 1) * bs;
		if (stop > covered)
			stop = covered;
		/* Reading the records of a short gap costs less than a seek, and changes nothing: every
		 * record read meets the exact filter. */
		if (n && (starts[i] < r[n - 1].b || starts[i] - r[n - 1].b <= gap))
			r[n - 1].b = stop;
		else
			r[n++] = (struct range){ starts[i], stop };
	}
	free(starts);
	/* Past what the index covers (an open file's newest packets, a torn segment), everything is read. */
	if (file->size > covered || file->partial) {
		if (n && (covered < r[n - 1].b || covered - r[n - 1].b <= gap))
			r[n - 1].b = UINT64_MAX;
		else
			r[n++] = (struct range){ covered > QE_PCAP_GLOBAL_LEN ? covered : QE_PCAP_GLOBAL_LEN, UINT64_MAX };
	}
	uint64_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += r[i].b == UINT64_MAX ? (file->size > r[i].a ? file->size - r[i].a : 0) : r[i].b - r[i].a;
	/* Candidates nearly everywhere: a plain sequential read (readahead, no seeks) is faster. */
	if ((double)bytes > (double)file->size * g.dense) {
		scan(f, QE_PLAN_WHY_DENSE, NULL, 1, ix.fields, nstarts, ix.bytes_read);
		free(r);
		goto done;
	}
	uint64_t recs = qe_ir_records(&ix);
	double per = covered > QE_PCAP_GLOBAL_LEN && recs > 0 ? (double)(covered - QE_PCAP_GLOBAL_LEN) / (double)recs : 0;
	double records = per > 0 ? ceil((double)bytes / per) : (double)file->packets;
	if (file->packets && records > (double)file->packets)
		records = (double)file->packets;
	fprintf(f,
		"{\"why\":\"" QE_PLAN_WHY_INDEX "\",\"fields\":%" PRIu32 ",\"blocks\":%zu,\"index_bytes\":%" PRIu64
		",\"bytes\":%" PRIu64 ",\"records\":%.0f,\"ranges\":[",
		ix.fields, nstarts, ix.bytes_read, bytes, records);
	for (size_t i = 0; i < n; i++) {
		if (r[i].b == UINT64_MAX)
			fprintf(f, "%s%" PRIu64 ",-1", i ? "," : "", r[i].a);
		else
			fprintf(f, "%s%" PRIu64 ",%" PRIu64, i ? "," : "", r[i].a, r[i].b);
	}
	fputs("]}", f);
	free(r);
done:
	qe_ir_close(&ix);
	free(ipath);
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		size_t i = atomic_fetch_add(&g.next, 1);
		if (i >= g.nfiles)
			return NULL;
		size_t len = 0;
		FILE *f = open_memstream(&g.files[i].out, &len);
		if (!f)
			abort();
		plan_file(&g.files[i], f);
		if (fclose(f) != 0)
			abort();
	}
}

static uint64_t parse_u64(const char *s, const char *what, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		die(what, s);
	return v;
}

/* Splits off the next space-separated word of *p (NULL at the end of the line). */
static char *word(char **p)
{
	if (!**p)
		return NULL;
	char *w = *p, *sp = strchr(w, ' ');
	if (sp) {
		*sp = 0;
		*p = sp + 1;
	} else {
		*p = w + strlen(w);
	}
	return w;
}

static void add_lookup(char *rest, const char *line)
{
	char *m = word(&rest);
	if (!m || !*rest)
		die("a lookup line must be `" QE_PLAN_ITEM_LOOKUP " MASK PLAN`, got \"%.200s\"", line);
	uint32_t mask = (uint32_t)parse_u64(m, "lookup mask %s: expected field bits", QE_IDX_FIELDS_KNOWN);
	char err[256];
	if (g.have[mask])
		die("two lookups for mask %s", m);
	if (qe_plan_parse(rest, &g.plans[mask], err, sizeof err) < 0)
		die("lookup: %s", err);
	g.have[mask] = 1;
}

static void add_file(char *rest, const char *line, size_t *cap)
{
	char *w[5];
	for (int k = 0; k < 5; k++)
		if (!(w[k] = word(&rest)))
			break;
	if (!w[4] || !*rest)
		die("a file line must be `" QE_PLAN_ITEM_FILE " SIZE PACKETS PARTIAL FIRST_NS LINKTYPE PATH`, got \"%.200s\"", line);
	if (g.nfiles == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		g.files = realloc(g.files, *cap * sizeof *g.files);
		if (!g.files)
			abort();
	}
	struct file *f = &g.files[g.nfiles];
	f->size = parse_u64(w[0], "bad size \"%s\" in the request", UINT64_MAX / 2);
	f->packets = parse_u64(w[1], "bad packet count \"%s\" in the request", UINT64_MAX / 2);
	f->partial = (int)parse_u64(w[2], "bad PARTIAL \"%s\" in the request (0 or 1)", 1);
	f->have_facts = strcmp(w[3], "-") != 0;
	if (f->have_facts != (strcmp(w[4], "-") != 0))
		die("FIRST_NS and LINKTYPE are both numbers or both -, got \"%.200s\"", line);
	if (f->have_facts) {
		f->first_ns = parse_u64(w[3], "bad FIRST_NS \"%s\" in the request", UINT64_MAX);
		f->linktype = (uint32_t)parse_u64(w[4], "bad LINKTYPE \"%s\" in the request", UINT32_MAX);
	}
	f->path = strdup(rest);
	f->out = NULL;
	if (!f->path)
		abort();
	g.nfiles++;
}

static void read_request(void)
{
	char *line = NULL, *copy = NULL;
	size_t cap = 0, fcap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = 0;
		free(copy);
		copy = strdup(line); /* for the messages: word() cuts the line */
		if (!copy)
			abort();
		char *rest = line, *kind = word(&rest);
		if (kind && strcmp(kind, QE_PLAN_ITEM_LOOKUP) == 0)
			add_lookup(rest, copy);
		else if (kind && strcmp(kind, QE_PLAN_ITEM_FILE) == 0)
			add_file(rest, copy, &fcap);
		else
			die("a request line starts with `" QE_PLAN_ITEM_LOOKUP "` or `" QE_PLAN_ITEM_FILE "`, got \"%.200s\"", copy);
	}
	free(line);
	free(copy);
}

int qe_read_plan_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "plan", no_argument, 0, 'P' },	   { "merge-gap", required_argument, 0, 'm' },
		{ "dense", required_argument, 0, 'd' },	   { "needed", required_argument, 0, 'n' },
		{ "lookup", required_argument, 0, 'l' }, { 0, 0, 0, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'P':
			break;
		case 'm':
			g.merge_gap = parse_u64(optarg, "--merge-gap %s: expected a whole number of blocks", UINT32_MAX);
			break;
		case 'd': {
			char *end;
			g.dense = strtod(optarg, &end);
			if (end == optarg || *end || !(g.dense >= 0))
				die("--dense %s: expected a share of the file (>= 1: never)", optarg);
			break;
		}
		case 'n':
			g.needed = (uint32_t)parse_u64(optarg, "--needed %s: expected field bits", QE_IDX_FIELDS_KNOWN);
			break;
		default:
			die("usage: qe-extract --plan [--merge-gap N] [--dense X] [--needed BITS] < REQUEST%s",
			    "");
		}
	}
	if (optind < argc)
		die("unexpected argument %s", argv[optind]);
	read_request();
	size_t nthreads = g.nfiles < PLAN_THREADS ? g.nfiles : PLAN_THREADS;
	pthread_t t[PLAN_THREADS];
	for (size_t i = 0; i < nthreads; i++)
		if (pthread_create(&t[i], NULL, worker, NULL) != 0)
			abort();
	for (size_t i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	for (size_t i = 0; i < g.nfiles; i++) {
		fputs(g.files[i].out, stdout);
		fputc('\n', stdout);
		free(g.files[i].out);
		free(g.files[i].path);
	}
	free(g.files);
	for (int m = 0; m < 64; m++)
		if (g.have[m])
			qe_plan_free(&g.plans[m]);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "qe-extract --plan: cannot write the plan: %s\n", strerror(errno));
		return 2;
	}
	return 0;
}
