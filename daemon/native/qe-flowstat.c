/* qe-flowstat: the statistics of `qe-packets stats` (daemon/src/flows/native-stats.ts drives it).
 *
 *   qe-flowstat --from-ns N --to-ns N --by host|src|dst|conversation|port|proto|vlan|iface [--top N]
 *
 * A store's range holds millions of flow records; merging them into flows and counting the flows
 * by host took about 2 us a record in JavaScript (seconds for a 20 GB store), here it is tens of
 * nanoseconds. The daemon still decides what is read as packets and how (read-packets.ts); this
 * tool reads the flow tables, merges every record (the tables' and those made from packets) with
 * the rules of merge.ts, and counts the merged flows with the rules of stats.ts. It prints keys
 * as numbers and bytes; the daemon renders them (addressText, protoLabel) and orders ties, so the
 * text of a key is made in one place.
 *
 * stdin, one command a line (flow-stats-protocol.h names the words, held to the TypeScript by
 * test/flow-stats.test.ts):
 *   table <iface> <partial 0|1> <catalog size> <pcap path>
 *       a store file: its table (<pcap path>.qeflow) is read and each of its segments whose
 *       records all lie in the range is merged (collect.ts planFile's rules)
 *   plan
 *       answers, for each `table` since the last `plan`, one JSON line: what its table gave and
 *       what must be read as packets: {"fromTable":N,"why":W,"note":T,"read":"all"|[[lo,hi],...],
 *       "bytes":B} (hi -1: to the end), then {"planned":count}
 *   body <iface> <length>   then <length> bytes: whole records (flow-format.h),
 *       made from packets by `qe-index --flows-stdout`, merged as they are
 *   end
 *       prints {"packets":P,"bytes":B,"flows":F,"rows":K} and K lines [key,packets,bytes,flows]:
 *       the top N rows by bytes then packets, and every row tied with the Nth (all rows without
 *       --top), and exits 0
 * Keys: host/src/dst the address as hex ("" for a record of another IP version); conversation
 * "<lo hex>-<hi hex>"; port the number; proto the IP protocol, or 65536 + the EtherType of a
 * frame that is not IP; vlan the IDs joined by "." ("" untagged); iface the <iface> number.
 * Exit 2 on a usage or protocol error, 1 out of memory, with a message on stderr. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flow-format.h"
#include "flow-stats-protocol.h"
#include "pcap-format.h"
#include "table-io.h"

#define EXIT_NOMEM 1
#define EXIT_USAGE 2

__attribute__((noreturn, format(printf, 2, 3))) static void die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("qe-flowstat: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(code);
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die(EXIT_NOMEM, "out of memory (%zu bytes)", n);
	return q;
}

static inline uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static inline uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* The flow and row tables: millions of lookups land anywhere in tens of megabytes, and with 4 KiB
 * pages nearly each one also misses the TLB. Huge pages (where the kernel gives them: `madvise`
 * mode) make the table's pages few. Anonymous mappings start zeroed. */
static void *big_alloc(size_t n)
{
	void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die(EXIT_NOMEM, "out of memory (%zu bytes)", n);
	(void)madvise(p, n ? n : 1, MADV_HUGEPAGE);
	return p;
}

static void *big_realloc(void *p, size_t old, size_t n)
{
	if (!p)
		return big_alloc(n);
	void *q = mremap(p, old, n, MREMAP_MAYMOVE);
	if (q == MAP_FAILED)
		die(EXIT_NOMEM, "out of memory (%zu bytes)", n);
	(void)madvise(q, n, MADV_HUGEPAGE);
	return q;
}

static void big_free(void *p, size_t n)
{
	if (p)
		munmap(p, n ? n : 1);
}

/* ---- merged flows (merge.ts): one per interface, VLAN stack, IP version, protocol and
 * unordered pair of ends; `src` is the end that sent the earliest record's first packet. ---- */

/* A record's key, as it is looked up. */
struct fkey {
	uint16_t iface;
	uint8_t ipv, proto, nvlan, pad0;
	uint16_t vlan[QE_FLOW_MAX_VLAN];
	uint16_t port_lo, port_hi; /* non-IP: port_lo is the EtherType */
	uint8_t lo[16], hi[16];    /* the smaller end first (address bytes, then port) */
};

/* The first 16 bytes of a key: everything but the ends' addresses. */
#define FKEY_HEAD offsetof(struct fkey, lo)

/* A key as a flow keeps it: the head, then an IPv4 flow's two addresses, or an IPv6 flow's number
 * in v6ends. A store's range holds millions of flows, nearly all IPv4: 24 bytes a key rather than
 * 48 makes the table 56 bytes a flow rather than 80, and this VM spends as much time on the table's
 * fresh memory (zeroed, and backed by the host, as it is first touched) as on merging into it. */
struct skey {
	unsigned char head[FKEY_HEAD];
	uint8_t lo[4], hi[4]; /* IPv6: lo is the u32 number of the flow's ends in v6ends */
};

struct v6end {
	uint8_t lo[16], hi[16];
};

/* A merged flow: 48 bytes. Whether its lo end is src sits in the key head's pad byte (masked out
 * when keys are compared), and its hash is worked out again when the table grows (once or never a
 * query, as plan_pending sizes the table): at 56 bytes the table of a 20 GB store's 2.3 million
 * flows was 18 MB more fresh memory, zeroed by the kernel on first touch. */
struct flow {
	struct skey k;
	uint64_t first_ns, packets, bytes;
};
_Static_assert(sizeof(struct flow) == 48, "a flow is 48 bytes");

#define SRC_LO_AT offsetof(struct fkey, pad0)

static inline int flow_src_lo(const struct flow *f)
{
	return f->k.head[SRC_LO_AT];
}

static struct flow *flows;
static size_t nflows, cap_flows;
static struct v6end *v6ends;
static size_t nv6ends, cap_v6ends;

static const struct v6end *flow_v6(const struct flow *f)
{
	uint32_t n;
	memcpy(&n, f->k.lo, 4);
	return &v6ends[n];
}

/* The ends of flow `f` (`alen` bytes each: 4, 16 or 0). */
static const uint8_t *flow_lo(const struct flow *f)
{
	return f->k.head[offsetof(struct fkey, ipv)] == 6 ? flow_v6(f)->lo : f->k.lo;
}

static const uint8_t *flow_hi(const struct flow *f)
{
	return f->k.head[offsetof(struct fkey, ipv)] == 6 ? flow_v6(f)->hi : f->k.hi;
}

static int same_flow(const struct flow *f, const struct fkey *k)
{
	unsigned char head[FKEY_HEAD];
	memcpy(head, f->k.head, FKEY_HEAD);
	head[SRC_LO_AT] = 0; /* a record's key has 0 there */
	if (memcmp(head, k, FKEY_HEAD) != 0)
		return 0;
	if (k->ipv == 6) {
		const struct v6end *e = flow_v6(f);
		return memcmp(e->lo, k->lo, 16) == 0 && memcmp(e->hi, k->hi, 16) == 0;
	}
	return memcmp(f->k.lo, k->lo, 4) == 0 && memcmp(f->k.hi, k->hi, 4) == 0;
}

static void flow_set_key(struct flow *f, const struct fkey *k)
{
	memcpy(f->k.head, k, FKEY_HEAD);
	if (k->ipv != 6) {
		memcpy(f->k.lo, k->lo, 4);
		memcpy(f->k.hi, k->hi, 4);
		return;
	}
	if (nv6ends == cap_v6ends) {
		size_t n = cap_v6ends ? 2 * cap_v6ends : 1 << 12;
		v6ends = big_realloc(v6ends, cap_v6ends * sizeof *v6ends, n * sizeof *v6ends);
		cap_v6ends = n;
	}
	memcpy(v6ends[nv6ends].lo, k->lo, 16);
	memcpy(v6ends[nv6ends].hi, k->hi, 16);
	uint32_t n = (uint32_t)nv6ends++;
	memcpy(f->k.lo, &n, 4);
	memset(f->k.hi, 0, 4);
}

static uint32_t *slots; /* flow number + 1, 0 empty; a power of two, at most half full */
static size_t nslots;

static uint64_t hash_bytes(const void *p, size_t n)
{
	/* FNV-1a over 8-byte words, then a final mix: keys are short and fixed-size. */
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (size_t i = n & ~(size_t)7; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* A flow key's hash: its 16 bytes of identity, then the ends' address bytes in use only (an IPv4
 * or non-IP key's 24 others are zeros): half the words of hashing all 48, on millions of records. */
static uint64_t fkey_hash(const struct fkey *k)
{
	if (k->ipv == 6)
		return hash_bytes(k, sizeof *k);
	unsigned char b[24];
	memcpy(b, k, 16);
	memcpy(b + 16, k->lo, 4);
	memcpy(b + 20, k->hi, 4);
	return hash_bytes(b, sizeof b);
}

/* The hash its records were looked up with (fkey_hash of the key record_key made). */
static uint64_t flow_hash(const struct flow *f)
{
	struct fkey k;
	memset(&k, 0, sizeof k);
	memcpy(&k, f->k.head, FKEY_HEAD);
	k.pad0 = 0;
	size_t alen = k.ipv == 4 ? 4 : k.ipv == 6 ? 16 : 0;
	memcpy(k.lo, flow_lo(f), alen);
	memcpy(k.hi, flow_hi(f), alen);
	return fkey_hash(&k);
}

static void flows_rehash(size_t n)
{
	uint32_t *s = big_alloc(n * sizeof *s);
	for (size_t j = 0; j < nflows; j++) {
		size_t i = flow_hash(&flows[j]) & (n - 1);
		while (s[i])
			i = (i + 1) & (n - 1);
		s[i] = (uint32_t)(j + 1);
	}
	big_free(slots, nslots * sizeof *slots);
	slots = s;
	nslots = n;
}

static void flows_reserve(size_t n)
{
	if (n <= cap_flows)
		return;
	flows = big_realloc(flows, cap_flows * sizeof *flows, n * sizeof *flows);
	cap_flows = n;
}

/* memcmp's order of two addresses (4 or 16 bytes), as numbers: a call to memcmp per record was a
 * tenth of a store's merge. */
static inline int addr_cmp(const unsigned char *a, const unsigned char *b, size_t alen)
{
	if (alen == 4) {
		uint32_t x, y;
		memcpy(&x, a, 4);
		memcpy(&y, b, 4);
		x = __builtin_bswap32(x), y = __builtin_bswap32(y);
		return (x > y) - (x < y);
	}
	for (size_t at = 0; at < 16; at += 8) {
		uint64_t x, y;
		memcpy(&x, a + at, 8);
		memcpy(&y, b + at, 8);
		if (x != y) {
			x = __builtin_bswap64(x), y = __builtin_bswap64(y);
			return x < y ? -1 : 1;
		}
	}
	return 0;
}

/* A record's identity (the key, lo end first) and whether its src is the lo end. */
static int record_key(uint16_t iface, const unsigned char *r, struct fkey *k)
{
	memset(k, 0, sizeof *k);
	k->iface = iface;
	k->ipv = r[QE_FLOW_R_IP_VERSION];
	k->proto = r[QE_FLOW_R_PROTO];
	k->nvlan = r[QE_FLOW_R_NVLAN] < QE_FLOW_MAX_VLAN ? r[QE_FLOW_R_NVLAN] : QE_FLOW_MAX_VLAN;
	for (unsigned i = 0; i < k->nvlan; i++)
		k->vlan[i] = get16(r + QE_FLOW_R_VLAN + 2 * i);
	uint16_t sport = get16(r + QE_FLOW_R_SPORT), dport = get16(r + QE_FLOW_R_DPORT);
	size_t alen = k->ipv == 4 ? 4 : k->ipv == 6 ? 16 : 0;
	const unsigned char *src = r + QE_FLOW_R_SRC, *dst = src + alen;
	if (alen == 0) {
		k->port_lo = sport; /* EtherType and VLAN stack only: no ends */
		return 1;
	}
	int c = addr_cmp(src, dst, alen);
	int src_lo = c < 0 || (c == 0 && sport <= dport);
	memcpy(k->lo, src_lo ? src : dst, alen);
	memcpy(k->hi, src_lo ? dst : src, alen);
	k->port_lo = src_lo ? sport : dport;
	k->port_hi = src_lo ? dport : sport;
	return src_lo;
}

static void merge_record(const struct fkey *k, uint64_t h, int src_lo, const unsigned char *r)
{
	const unsigned char *t = r + qe_flow_tail_off(r[QE_FLOW_R_IP_VERSION]);
	uint64_t first = get64(t + QE_FLOW_T_FIRST_NS);
	uint64_t packets = (uint64_t)get32(t + QE_FLOW_T_PACKETS) + get32(t + QE_FLOW_T_PACKETS_REV);
	uint64_t bytes = get64(t + QE_FLOW_T_BYTES) + get64(t + QE_FLOW_T_BYTES_REV);

	size_t i = h & (nslots - 1);
	for (;; i = (i + 1) & (nslots - 1)) {
		uint32_t s = slots[i];
		if (!s)
			break;
		struct flow *f = &flows[s - 1];
		if (same_flow(f, k)) {
			/* A record that saw the flow's first packet from the other end decides its src. */
			if (first < f->first_ns) {
				f->k.head[SRC_LO_AT] = (uint8_t)src_lo;
				f->first_ns = first;
			}
			f->packets += packets;
			f->bytes += bytes;
			return;
		}
	}
	if (nflows == cap_flows)
		flows_reserve(cap_flows ? 2 * cap_flows : 1 << 16);
	struct flow *f = &flows[nflows++];
	flow_set_key(f, k);
	f->k.head[SRC_LO_AT] = (uint8_t)src_lo;
	f->first_ns = first;
	f->packets = packets;
	f->bytes = bytes;
	slots[i] = (uint32_t)nflows;
	if (2 * nflows > nslots)
		flows_rehash(2 * nslots);
}

/* Records in groups: each group's slots, then the flows they name, are fetched before any of its
 * records is merged, so a store's millions of lookups wait for memory side by side rather than one
 * after another (the table is far larger than the caches). */
#define BATCH 16

/* b holds whole records (qe_flow_body_records said so). */
static void merge_body(uint16_t iface, const unsigned char *b, size_t len)
{
	struct fkey k[BATCH];
	uint64_t h[BATCH];
	int lo[BATCH];
	const unsigned char *rec[BATCH];
	for (size_t o = 0; o < len;) {
		size_t m = 0;
		for (; m < BATCH && o < len; m++, o += qe_flow_record_len(b[o + QE_FLOW_R_IP_VERSION]))
			rec[m] = b + o;
		for (size_t j = 0; j < m; j++) {
			lo[j] = record_key(iface, rec[j], &k[j]);
			h[j] = fkey_hash(&k[j]);
			__builtin_prefetch(&slots[h[j] & (nslots - 1)]);
		}
		for (size_t j = 0; j < m; j++) {
			uint32_t s = slots[h[j] & (nslots - 1)];
			if (s)
				__builtin_prefetch(&flows[s - 1]);
		}
		for (size_t j = 0; j < m; j++)
			merge_record(&k[j], h[j], lo[j], rec[j]);
	}
}

/* ---- a store file's table (format.ts decodeFlowTable, collect.ts planFile) ---- */

struct plan {
	char *json; /* the answer line */
};

static struct plan *plans;
static size_t nplans, cap_plans;
static uint64_t from_ns, to_ns;

struct sbuf {
	char *p;
	size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(s->p ? s->p + s->len : NULL, s->p ? s->cap - s->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			die(EXIT_USAGE, "formatting failed");
		if (s->p && s->len + (size_t)n < s->cap) {
			s->len += (size_t)n;
			return;
		}
		s->cap = s->cap + (size_t)n + 256;
		s->p = xrealloc(s->p, s->cap);
	}
}

/* A JSON string. */
static void sb_str(struct sbuf *s, const char *t)
{
	sb_printf(s, "\"");
	for (const unsigned char *c = (const unsigned char *)t; *c; c++) {
		if (*c == '"' || *c == '\\')
			sb_printf(s, "\\%c", *c);
		else if (*c < 0x20)
			sb_printf(s, "\\u%04x", *c);
		else
			sb_printf(s, "%c", *c);
	}
	sb_printf(s, "\"");
}

static void add_plan(struct sbuf *s)
{
	if (nplans == cap_plans) {
		cap_plans = cap_plans ? 2 * cap_plans : 64;
		plans = xrealloc(plans, cap_plans * sizeof *plans);
	}
	plans[nplans++].json = s->p;
}

/* The whole file is read as packets: why, and a note for the user (NULL: none). */
static void plan_all(const char *why, const char *note, uint64_t size, unsigned from_table)
{
	struct sbuf s = {0};
	sb_printf(&s, "{\"fromTable\":%u,\"why\":\"%s\",\"read\":\"all\",\"bytes\":%" PRIu64, from_table, why, size);
	if (note) {
		sb_printf(&s, ",\"note\":");
		sb_str(&s, note);
	}
	sb_printf(&s, "}");
	add_plan(&s);
}

static char note_buf[8192];

__attribute__((format(printf, 1, 2))) static const char *note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(note_buf, sizeof note_buf, fmt, ap);
	va_end(ap);
	return note_buf;
}

#define FALLBACK "its pcap file's packets are counted by reading them (qe-packets index --rebuild rebuilds it)"

static int read_all(int fd, unsigned char *p, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pread(fd, p + done, len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return (int)done; /* shorter than it was: read what is there */
		done += (size_t)n;
	}
	return 0;
}

/* Ranges of the pcap file read as packets ([lo, hi), hi UINT64_MAX: to the end). */
struct ranges {
	uint64_t (*r)[2];
	size_t n, cap;
};

static void ranges_add(struct ranges *rs, uint64_t lo, uint64_t hi)
{
	if (rs->n && rs->r[rs->n - 1][1] == lo) {
		rs->r[rs->n - 1][1] = hi;
		return;
	}
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? 2 * rs->cap : 8;
		rs->r = xrealloc(rs->r, rs->cap * sizeof *rs->r);
	}
	rs->r[rs->n][0] = lo;
	rs->r[rs->n][1] = hi;
	rs->n++;
}

static void plan_table(uint16_t iface, int partial, uint64_t catalog_size, const char *pcap_path)
{
	/* The pcap file's facts (index/reader.ts pcapFacts): its link type, size and first record. */
	int pfd = open(pcap_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (pfd < 0) {
		/* A .part renamed on close since the catalog was read: read whole under its new name. */
		if (errno == ENOENT)
			plan_all("no-table", NULL, catalog_size, 0);
		else
			plan_all("table-unusable", note("%s: %s", pcap_path, strerror(errno)), catalog_size, 0);
		return;
	}
	struct stat pst;
	unsigned char ph[QE_PCAP_GLOBAL_LEN + QE_PCAP_RECORD_LEN];
	ssize_t pn = fstat(pfd, &pst) == 0 ? pread(pfd, ph, sizeof ph, 0) : -1;
	int perr = errno;
	close(pfd);
	if (pn < 0) {
		plan_all("table-unusable", note("%s: %s", pcap_path, strerror(perr)), catalog_size, 0);
		return;
	}
	struct qe_pcap_global g;
	if (pn < QE_PCAP_GLOBAL_LEN) {
		plan_all("table-unusable", note("%s: pcap global header needs %d bytes, got %zd", pcap_path, QE_PCAP_GLOBAL_LEN, pn), catalog_size, 0);
		return;
	}
	if (!qe_pcap_global_decode(ph, &g)) {
		plan_all("table-unusable", note("%s: not a pcap file (magic 0x%08" PRIx32 ")", pcap_path, get32(ph)), catalog_size, 0);
		return;
	}
	uint64_t pcap_first = 0;
	if (pn == (ssize_t)sizeof ph) {
		struct qe_pcap_record r;
		qe_pcap_record_decode(ph + QE_PCAP_GLOBAL_LEN, g.swapped, &r);
		pcap_first = qe_pcap_record_ns(&r, g.nanos);
	}
	uint64_t pcap_size = (uint64_t)pst.st_size;

	/* The table, read whole: a query uses every record of it. */
	size_t plen = strlen(pcap_path);
	char *path = xrealloc(NULL, plen + sizeof QE_FLOW_EXT);
	memcpy(path, pcap_path, plen);
	memcpy(path + plen, QE_FLOW_EXT, sizeof QE_FLOW_EXT);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			plan_all("no-table", NULL, catalog_size, 0);
		else
			plan_all("table-unusable", note("%s: %s: its pcap file's packets are counted by reading them", path, strerror(e)), catalog_size, 0);
		free(path);
		return;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		int e = errno;
		close(fd);
		plan_all("table-unusable", note("%s: %s: its pcap file's packets are counted by reading them", path, S_ISREG(st.st_mode) ? strerror(e) : "not a regular file"), catalog_size, 0);
		free(path);
		return;
	}
	size_t len = (size_t)st.st_size;
	unsigned char *buf = xrealloc(NULL, len);
	int got = read_all(fd, buf, len);
	int e = errno;
	close(fd);
	if (got < 0) {
		plan_all("table-unusable", note("%s: %s: its pcap file's packets are counted by reading them", path, strerror(e)), catalog_size, 0);
		goto out;
	}
	if (got > 0)
		len = (size_t)got;

	const char *bad = NULL;
#define DAMAGED(...) do { snprintf(note_buf, sizeof note_buf, __VA_ARGS__); bad = note_buf; goto refused; } while (0)
	if (len < QE_FLOW_HEADER_LEN)
		DAMAGED("%s: %zu bytes, shorter than the %d-byte header: " FALLBACK, path, len, QE_FLOW_HEADER_LEN);
	if (memcmp(buf, QE_FLOW_MAGIC, QE_FLOW_MAGIC_LEN) != 0) {
		char hex[17];
		for (int i = 0; i < 8; i++)
			snprintf(hex + 2 * i, 3, "%02x", buf[i]);
		DAMAGED("%s: bad magic %s: " FALLBACK, path, hex);
	}
	uint16_t version = get16(buf + QE_FLOW_H_VERSION);
	if (version != QE_FLOW_VERSION)
		DAMAGED("%s: flow table format version %u, this qe-packets reads version %d: " FALLBACK, path, version, QE_FLOW_VERSION);
	if (qe_crc32(buf, QE_FLOW_H_CRC) != get32(buf + QE_FLOW_H_CRC))
		DAMAGED("%s: file header fails its checksum: " FALLBACK, path);
	uint16_t header_len = get16(buf + QE_FLOW_H_HEADER_LEN);
	if (header_len < QE_FLOW_HEADER_LEN)
		DAMAGED("%s: header_len %u < %d: " FALLBACK, path, header_len, QE_FLOW_HEADER_LEN);
	int complete = (get32(buf + QE_FLOW_H_FLAGS) & QE_FLOW_FLAG_COMPLETE) != 0;
	uint32_t linktype = get32(buf + QE_FLOW_H_LINKTYPE);
	if (linktype != g.linktype)
		DAMAGED("%s: flow table of link type %" PRIu32 ", its pcap file has %" PRIu32 ": not this file's table, " FALLBACK, path, linktype, g.linktype);
	uint64_t table_first = get64(buf + QE_FLOW_H_PCAP_FIRST_NS);
	if (table_first != pcap_first)
		DAMAGED("%s: flow table of a pcap file whose first record is at %" PRIu64 " ns, the file starts at %" PRIu64 " ns: not this file's table, " FALLBACK, path, table_first, pcap_first);

	/* First every segment is checked (a damaged table merges nothing), then the good ones used. */
	struct seg {
		size_t at, n, len;
		uint64_t off_lo, off_hi;
	} *segs = NULL;
	size_t nsegs = 0, at = header_len;
	int dropped = 0;
	uint64_t expect_lo = QE_PCAP_GLOBAL_LEN;
	while (at < len) {
		if (at + QE_FLOW_SEGMENT_HEADER_LEN > len) {
			dropped = 1; /* a torn header */
			break;
		}
		const unsigned char *s = buf + at;
		int ok = get32(s + QE_FLOW_S_MAGIC) == QE_FLOW_SEGMENT_MAGIC && qe_crc32(s, QE_FLOW_S_CRC) == get32(s + QE_FLOW_S_CRC);
		uint32_t nrec = get32(s + QE_FLOW_S_NRECORDS);
		uint64_t body_len = get64(s + QE_FLOW_S_BODY_LEN);
		uint64_t off_lo = get64(s + QE_FLOW_S_OFF_LO), off_hi = get64(s + QE_FLOW_S_OFF_HI);
		int fits = body_len <= len - at - QE_FLOW_SEGMENT_HEADER_LEN;
		size_t end = fits ? at + QE_FLOW_SEGMENT_HEADER_LEN + (size_t)body_len : len + 1;
		/* A header or body that fails, or a body cut short, is a torn write: only ever the last. */
		if (!ok || !fits || qe_crc32(s + QE_FLOW_SEGMENT_HEADER_LEN, (size_t)body_len) != get32(s + QE_FLOW_S_BODY_CRC)) {
			if (ok && fits && end < len) {
				free(segs);
				DAMAGED("%s: segment at %zu fails its body checksum and is not the last: " FALLBACK, path, at);
			}
			dropped = 1;
			break;
		}
		if (qe_flow_body_records(s + QE_FLOW_SEGMENT_HEADER_LEN, body_len) != (int64_t)nrec) {
			free(segs);
			DAMAGED("%s: segment at %zu: body of %" PRIu64 " bytes is not its %" PRIu32 " records: " FALLBACK, path, at, body_len, nrec);
		}
		if (off_lo != expect_lo || off_hi < off_lo) {
			free(segs);
			DAMAGED("%s: segment at %zu covers [%" PRIu64 ", %" PRIu64 "), expected to start at %" PRIu64 ": " FALLBACK, path, at, off_lo, off_hi, expect_lo);
		}
		/* A table may reach the disk before the packets it covers (an open file). */
		if (off_hi > pcap_size) {
			if (complete) {
				free(segs);
				DAMAGED("%s: covers up to offset %" PRIu64 ", past the end of its pcap file (%" PRIu64 " bytes): not this file's table, " FALLBACK, path, off_hi, pcap_size);
			}
			dropped = 1;
			break;
		}
		uint64_t packets = 0;
		for (const unsigned char *r = s + QE_FLOW_SEGMENT_HEADER_LEN, *body_end = r + body_len; r < body_end; r += qe_flow_record_len(r[QE_FLOW_R_IP_VERSION])) {
			const unsigned char *t = r + qe_flow_tail_off(r[QE_FLOW_R_IP_VERSION]);
			packets += (uint64_t)get32(t + QE_FLOW_T_PACKETS) + get32(t + QE_FLOW_T_PACKETS_REV);
		}
		if (packets != get64(s + QE_FLOW_S_PACKETS)) {
			free(segs);
			DAMAGED("%s: segment at %zu: its records hold %" PRIu64 " packets, its header says %" PRIu64 ": " FALLBACK, path, at, packets, get64(s + QE_FLOW_S_PACKETS));
		}
		segs = xrealloc(segs, (nsegs + 1) * sizeof *segs);
		segs[nsegs++] = (struct seg){at + QE_FLOW_SEGMENT_HEADER_LEN, nrec, (size_t)body_len, off_lo, off_hi};
		expect_lo = off_hi;
		at = end;
	}
	if (complete && (nsegs != 1 || dropped)) {
		free(segs);
		DAMAGED("%s: marked complete but holds %zu whole segment(s)%s: " FALLBACK, path, nsegs, dropped ? " and a torn one" : "");
	}
	if (complete && segs[0].off_hi != pcap_size) {
		uint64_t hi = segs[0].off_hi;
		free(segs);
		DAMAGED("%s: complete table of %" PRIu64 " pcap bytes, its file has %" PRIu64 ": not this file's table, " FALLBACK, path, hi, pcap_size);
	}
#undef DAMAGED
	{
		uint64_t covered = nsegs ? segs[nsegs - 1].off_hi : QE_PCAP_GLOBAL_LEN;
		struct ranges rs = {0};
		unsigned from_table = 0;
		int edge = 0;
		for (size_t i = 0; i < nsegs; i++) {
			const unsigned char *b = buf + segs[i].at;
			if (!segs[i].n)
				continue;
			/* The records' own times, not the segment's: packets of a flush need not be in order. */
			uint64_t lo = UINT64_MAX, hi = 0;
			for (const unsigned char *r = b, *body_end = b + segs[i].len; r < body_end; r += qe_flow_record_len(r[QE_FLOW_R_IP_VERSION])) {
				const unsigned char *t = r + qe_flow_tail_off(r[QE_FLOW_R_IP_VERSION]);
				uint64_t f = get64(t + QE_FLOW_T_FIRST_NS), l = get64(t + QE_FLOW_T_LAST_NS);
				if (f < lo)
					lo = f;
				if (l > hi)
					hi = l;
			}
			if (hi < from_ns || lo > to_ns)
				continue;
			if (lo >= from_ns && hi <= to_ns) {
				merge_body(iface, b, segs[i].len);
				from_table++;
			} else {
				edge = 1;
				ranges_add(&rs, segs[i].off_lo, segs[i].off_hi);
			}
		}
		free(segs);
		/* Past the table: an open file's packets since its last flush, and a torn segment's. */
		if (partial || pcap_size > covered)
			ranges_add(&rs, covered, UINT64_MAX);
		uint64_t bytes = 0;
		for (size_t i = 0; i < rs.n; i++)
			bytes += rs.r[i][1] == UINT64_MAX ? (pcap_size > rs.r[i][0] ? pcap_size - rs.r[i][0] : 0) : rs.r[i][1] - rs.r[i][0];
		struct sbuf s = {0};
		if (!rs.n) {
			sb_printf(&s, "{\"fromTable\":%u,\"bytes\":0}", from_table);
			add_plan(&s);
		} else if (rs.n == 1 && rs.r[0][0] <= QE_PCAP_GLOBAL_LEN && rs.r[0][1] == UINT64_MAX) {
			plan_all(edge ? "edge" : "tail", NULL, catalog_size, from_table);
		} else {
			sb_printf(&s, "{\"fromTable\":%u,\"why\":\"%s\",\"read\":[", from_table, edge ? "edge" : "tail");
			for (size_t i = 0; i < rs.n; i++) {
				if (rs.r[i][1] == UINT64_MAX)
					sb_printf(&s, "%s[%" PRIu64 ",-1]", i ? "," : "", rs.r[i][0]);
				else
					sb_printf(&s, "%s[%" PRIu64 ",%" PRIu64 "]", i ? "," : "", rs.r[i][0], rs.r[i][1]);
			}
			sb_printf(&s, "],\"bytes\":%" PRIu64 "}", bytes);
			add_plan(&s);
		}
		free(rs.r);
	}
	goto out;
refused:
	plan_all("table-unusable", bad, catalog_size, 0);
out:
	free(buf);
	free(path);
}

/* ---- the tables of a `plan` ---- */

struct pending {
	uint16_t iface;
	int partial;
	uint64_t size;
	char *path;
};

static struct pending *pending;
static size_t npending, cap_pending;

/* Tables asked for ahead of the one being read: from a cold cache their reads overlap the merge
 * and each other (a disk serves many at once). Up to this many bytes of tables ahead. */
#define READ_AHEAD_BYTES (512u << 20)

static uint64_t read_ahead(const char *pcap_path, uint64_t size)
{
	char path[4096];
	if (!size || snprintf(path, sizeof path, "%s%s", pcap_path, QE_FLOW_EXT) >= (int)sizeof path)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0; /* planning it says why */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	close(fd);
	/* The pcap file's first page too: its header and first record are read to match the table,
	 * a disk trip per file on this one thread otherwise (over the 220 files of the 20 GB bench
	 * store, cold: 0.72-0.79 s without, 0.61-0.68 s with). */
	fd = open(pcap_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		(void)posix_fadvise(fd, 0, 4096, POSIX_FADV_WILLNEED);
		close(fd);
	}
	return size;
}

static void plan_pending(void)
{
	/* The records to come bound the flows: room for them all at once, not grown step by step. */
	uint64_t records = 0;
	uint64_t *sizes = xrealloc(NULL, (npending ? npending : 1) * sizeof *sizes);
	for (size_t i = 0; i < npending; i++) {
		char path[4096];
		struct stat st;
		sizes[i] = 0;
		if (snprintf(path, sizeof path, "%s%s", pending[i].path, QE_FLOW_EXT) < (int)sizeof path && stat(path, &st) == 0 && S_ISREG(st.st_mode))
			sizes[i] = (uint64_t)st.st_size;
		records += sizes[i] / QE_FLOW_RECORD_LEN_V4; /* the shorter record: an upper bound */
	}
	size_t want = nslots;
	while (want < 2 * (nflows + records) && want < (size_t)1 << 28)
		want *= 2;
	if (want > nslots)
		flows_rehash(want);
	if (nflows + records < (size_t)1 << 27)
		flows_reserve(nflows + records);
	size_t ahead = 0;
	uint64_t ahead_bytes = 0;
	for (size_t i = 0; i < npending; i++) {
		while (ahead < npending && (ahead <= i || ahead_bytes < READ_AHEAD_BYTES))
			ahead_bytes += read_ahead(pending[ahead].path, sizes[ahead]), ahead++;
		plan_table(pending[i].iface, pending[i].partial, pending[i].size, pending[i].path);
		ahead_bytes -= ahead_bytes < sizes[i] ? ahead_bytes : sizes[i];
		free(pending[i].path);
	}
	free(sizes);
	npending = 0;
}

/* ---- counting (stats.ts) ---- */

enum by { BY_HOST, BY_SRC, BY_DST, BY_CONVERSATION, BY_PORT, BY_PROTO, BY_VLAN, BY_IFACE };
static const char *const BY_NAMES[] = {"host", "src", "dst", "conversation", "port", "proto", "vlan", "iface"};

struct rkey {
	uint8_t len, pad[3];
	uint8_t b[36];
};

struct row {
	struct rkey k;
	uint64_t packets, bytes, flows;
};

/* A row key's bytes in use: its length and pad, then b[0, len) (key_set zeroes the rest). */
static size_t rkey_used(const struct rkey *k)
{
	return offsetof(struct rkey, b) + k->len;
}

/* Equal keys: every byte, as key_set leaves the unused ones zero; five words, not a call to memcmp
 * per merged flow and row. */
static inline int rkey_eq(const struct rkey *a, const struct rkey *b)
{
	_Static_assert(sizeof(struct rkey) == 40, "a row key is five words");
	uint64_t x[5], y[5];
	memcpy(x, a, sizeof x);
	memcpy(y, b, sizeof y);
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

static uint64_t rkey_hash(const struct rkey *k)
{
	return hash_bytes(k, rkey_used(k));
}

static struct row *rows;
static size_t nrows, cap_rows;
static uint32_t *rslots;
static size_t nrslots;

static void rows_rehash(size_t n)
{
	uint32_t *s = calloc(n, sizeof *s);
	if (!s)
		die(EXIT_NOMEM, "out of memory (%zu row slots)", n);
	for (size_t j = 0; j < nrows; j++) {
		size_t i = rkey_hash(&rows[j].k) & (n - 1);
		while (s[i])
			i = (i + 1) & (n - 1);
		s[i] = (uint32_t)(j + 1);
	}
	free(rslots);
	rslots = s;
	nrslots = n;
}

static void count(const struct rkey *k, uint64_t h, uint64_t packets, uint64_t bytes, int flow)
{
	size_t i = h & (nrslots - 1);
	for (;; i = (i + 1) & (nrslots - 1)) {
		uint32_t s = rslots[i];
		if (!s)
			break;
		struct row *r = &rows[s - 1];
		if (rkey_eq(&r->k, k)) {
			r->packets += packets;
			r->bytes += bytes;
			r->flows += (uint64_t)flow;
			return;
		}
	}
	if (nrows == cap_rows) {
		cap_rows = cap_rows ? 2 * cap_rows : 1024;
		rows = xrealloc(rows, cap_rows * sizeof *rows);
	}
	struct row *r = &rows[nrows++];
	r->k = *k;
	r->packets = packets;
	r->bytes = bytes;
	r->flows = (uint64_t)flow;
	rslots[i] = (uint32_t)nrows;
	if (2 * nrows > nrslots)
		rows_rehash(2 * nrslots);
}

static void key_set(struct rkey *k, const void *p, size_t n)
{
	memset(k, 0, sizeof *k);
	k->len = (uint8_t)n;
	memcpy(k->b, p, n);
}

/* The row keys flow `f` counts under for `by` (0, 1 or 2), and whether each counts the flow. */
static int flow_keys(enum by by, const struct flow *f, struct rkey *keys, int *flow)
{
	struct fkey head; /* the key's head: flow_lo/flow_hi give its ends */
	memcpy(&head, f->k.head, FKEY_HEAD);
	const struct fkey *k = &head;
	size_t alen = k->ipv == 4 ? 4 : k->ipv == 6 ? 16 : 0;
	const uint8_t *lo = flow_lo(f), *hi = flow_hi(f);
	const uint8_t *src = flow_src_lo(f) ? lo : hi, *dst = flow_src_lo(f) ? hi : lo;
	flow[0] = flow[1] = 1;
	switch (by) {
	case BY_HOST:
		if (k->ipv == 0)
			return 0;
		/* As tshark's endpoints: a host talking to itself counts the packets twice, the flow once. */
		key_set(&keys[0], src, alen);
		key_set(&keys[1], dst, alen);
		flow[1] = memcmp(src, dst, alen) != 0;
		return 2;
	case BY_SRC:
	case BY_DST:
		if (k->ipv == 0)
			return 0;
		key_set(&keys[0], by == BY_SRC ? src : dst, alen);
		return 1;
	case BY_CONVERSATION:
		if (k->ipv == 0)
			return 0;
		/* lo and hi are ordered by address first: the conversation's ends as stats.ts orders them. */
		key_set(&keys[0], lo, alen);
		memcpy(keys[0].b + alen, hi, alen);
		keys[0].len = (uint8_t)(2 * alen);
		return 1;
	case BY_PORT:
		if (k->ipv != 0 && (k->proto == 6 || k->proto == 17 || k->proto == 132)) {
			uint16_t dport = flow_src_lo(f) ? k->port_hi : k->port_lo;
			key_set(&keys[0], &dport, 2);
			return 1;
		}
		return 0;
	case BY_PROTO: {
		uint32_t v = k->ipv == 0 ? 65536u + k->port_lo : k->proto;
		key_set(&keys[0], &v, 4);
		return 1;
	}
	case BY_VLAN:
		key_set(&keys[0], k->vlan, 2u * k->nvlan);
		return 1;
	case BY_IFACE:
		key_set(&keys[0], &k->iface, 2);
		return 1;
	}
	return 0;
}

static void count_flows(enum by by)
{
	rows_rehash(1024);
	struct rkey keys[BATCH][2];
	uint64_t h[BATCH][2];
	int fl[BATCH][2], nk[BATCH];
	for (size_t at = 0; at < nflows; at += BATCH) {
		size_t m = nflows - at < BATCH ? nflows - at : BATCH;
		for (size_t j = 0; j < m; j++) {
			nk[j] = flow_keys(by, &flows[at + j], keys[j], fl[j]);
			for (int i = 0; i < nk[j]; i++) {
				h[j][i] = rkey_hash(&keys[j][i]);
				__builtin_prefetch(&rslots[h[j][i] & (nrslots - 1)]);
			}
		}
		for (size_t j = 0; j < m; j++)
			for (int i = 0; i < nk[j]; i++)
				count(&keys[j][i], h[j][i], flows[at + j].packets, flows[at + j].bytes, fl[j][i]);
	}
}

static int row_order(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	if (x->packets != y->packets)
		return x->packets > y->packets ? -1 : 1;
	return 0;
}

static void print_key(FILE *o, enum by by, const struct rkey *k)
{
	switch (by) {
	case BY_HOST:
	case BY_SRC:
	case BY_DST:
	case BY_CONVERSATION:
		fputc('"', o);
		for (unsigned i = 0; i < k->len; i++) {
			if (by == BY_CONVERSATION && i == k->len / 2u)
				fputc('-', o);
			fprintf(o, "%02x", k->b[i]);
		}
		fputc('"', o);
		break;
	case BY_PORT: {
		uint16_t v;
		memcpy(&v, k->b, 2);
		fprintf(o, "%u", v);
		break;
	}
	case BY_PROTO: {
		uint32_t v;
		memcpy(&v, k->b, 4);
		fprintf(o, "%" PRIu32, v);
		break;
	}
	case BY_VLAN:
		fputc('"', o);
		for (unsigned i = 0; i < k->len / 2u; i++) {
			uint16_t v;
			memcpy(&v, k->b + 2 * i, 2);
			fprintf(o, "%s%u", i ? "." : "", v);
		}
		fputc('"', o);
		break;
	case BY_IFACE: {
		uint16_t v;
		memcpy(&v, k->b, 2);
		fprintf(o, "%u", v);
		break;
	}
	}
}

static void finish(enum by by, uint64_t top)
{
	uint64_t packets = 0, bytes = 0;
	for (size_t j = 0; j < nflows; j++) {
		packets += flows[j].packets;
		bytes += flows[j].bytes;
	}
	count_flows(by);
	if (nrows) /* qsort wants a table even for no rows */
		qsort(rows, nrows, sizeof *rows, row_order);
	size_t n = nrows;
	if (top && top < nrows) {
		n = (size_t)top;
		while (n < nrows && row_order(&rows[n], &rows[top - 1]) == 0)
			n++;
	}
	printf("{\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"flows\":%zu,\"rows\":%zu}\n", packets, bytes, nflows, n);
	for (size_t i = 0; i < n; i++) {
		fputc('[', stdout);
		print_key(stdout, by, &rows[i].k);
		printf(",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]\n", rows[i].packets, rows[i].bytes, rows[i].flows);
	}
	if (fflush(stdout) != 0)
		die(EXIT_USAGE, "writing the answer: %s", strerror(errno));
}

/* ---- the command loop ---- */

static uint64_t parse_u64(const char *what, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		die(EXIT_USAGE, "%s: expected a whole number, got \"%s\"", what, s);
	return v;
}

static uint16_t parse_iface(const char *s)
{
	uint64_t v = parse_u64("<iface>", s);
	if (v > UINT16_MAX)
		die(EXIT_USAGE, "<iface> %s: at most %u interfaces", s, UINT16_MAX);
	return (uint16_t)v;
}

int main(int argc, char **argv)
{
	int by = -1;
	uint64_t top = 0;
	int have_from = 0, have_to = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			die(EXIT_USAGE, "%s needs a value (usage: qe-flowstat --from-ns N --to-ns N --by KIND [--top N])", a);
		const char *v = argv[++i];
		if (!strcmp(a, "--from-ns")) {
			from_ns = parse_u64(a, v);
			have_from = 1;
		} else if (!strcmp(a, "--to-ns")) {
			to_ns = parse_u64(a, v);
			have_to = 1;
		} else if (!strcmp(a, "--top")) {
			top = parse_u64(a, v);
		} else if (!strcmp(a, "--by")) {
			for (int k = 0; k < (int)(sizeof BY_NAMES / sizeof *BY_NAMES); k++)
				if (!strcmp(v, BY_NAMES[k]))
					by = k;
			if (by < 0)
				die(EXIT_USAGE, "--by %s: not a statistic (host, src, dst, conversation, port, proto, vlan or iface)", v);
		} else {
			die(EXIT_USAGE, "unknown option %s (usage: qe-flowstat --from-ns N --to-ns N --by KIND [--top N])", a);
		}
	}
	if (!have_from || !have_to || by < 0)
		die(EXIT_USAGE, "usage: qe-flowstat --from-ns N --to-ns N --by KIND [--top N]");
	flows_rehash(1 << 17);

	char *line = NULL;
	size_t cap = 0;
	unsigned char *body = NULL;
	size_t body_cap = 0;
	for (;;) {
		ssize_t n = getline(&line, &cap, stdin);
		if (n <= 0)
			die(EXIT_USAGE, "stdin ended before \"" QE_FS_END "\"");
		if (line[n - 1] == '\n')
			line[--n] = 0;
		char *rest;
		if (!strncmp(line, QE_FS_TABLE " ", sizeof QE_FS_TABLE)) {
			/* Kept until `plan`: the tables' sizes then size the flow table once. */
			/* table <iface> <partial> <size> <path>: the path is the rest of the line. */
			char *f[4];
			char *p = line + sizeof QE_FS_TABLE;
			for (int k = 0; k < 3; k++) {
				f[k] = p;
				p = strchr(p, ' ');
				if (!p)
					die(EXIT_USAGE, "\"%s\": expected " QE_FS_TABLE " <iface> <partial> <size> <path>", line);
				*p++ = 0;
			}
			f[3] = p;
			if (npending == cap_pending) {
				cap_pending = cap_pending ? 2 * cap_pending : 64;
				pending = xrealloc(pending, cap_pending * sizeof *pending);
			}
			struct pending *t = &pending[npending++];
			t->iface = parse_iface(f[0]);
			t->partial = parse_u64("<partial>", f[1]) != 0;
			t->size = parse_u64("<size>", f[2]);
			t->path = strdup(f[3]);
			if (!t->path)
				die(EXIT_NOMEM, "out of memory");
		} else if (!strcmp(line, QE_FS_PLAN)) {
			plan_pending();
			for (size_t i = 0; i < nplans; i++) {
				fputs(plans[i].json, stdout);
				fputc('\n', stdout);
				free(plans[i].json);
			}
			printf("{\"planned\":%zu}\n", nplans);
			nplans = 0;
			if (fflush(stdout) != 0)
				die(EXIT_USAGE, "writing the plan: %s", strerror(errno));
		} else if (!strncmp(line, QE_FS_BODY " ", sizeof QE_FS_BODY)) {
			char *p = line + sizeof QE_FS_BODY;
			rest = strchr(p, ' ');
			if (!rest)
				die(EXIT_USAGE, "\"%s\": expected " QE_FS_BODY " <iface> <length>", line);
			*rest++ = 0;
			uint16_t iface = parse_iface(p);
			uint64_t len = parse_u64("<length>", rest);
			if (len > body_cap) {
				body_cap = (size_t)len;
				body = xrealloc(body, body_cap);
			}
			if (len && fread(body, 1, (size_t)len, stdin) != len)
				die(EXIT_USAGE, "stdin ended inside a " QE_FS_BODY " of %" PRIu64 " bytes", len);
			if (qe_flow_body_records(body, len) < 0)
				die(EXIT_USAGE, QE_FS_BODY " of %" PRIu64 " bytes: not whole flow records (ip_version 0, 4 or 6; 88 or 112 bytes)", len);
			merge_body(iface, body, (size_t)len);
		} else if (!strcmp(line, QE_FS_END)) {
			finish((enum by)by, top);
			free(body);
			free(line);
			return 0;
		} else {
			die(EXIT_USAGE, "unknown command \"%.80s\" (expected " QE_FS_TABLE ", " QE_FS_PLAN ", " QE_FS_BODY " or " QE_FS_END ")", line);
		}
	}
}
