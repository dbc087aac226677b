/* qe_bpf_run against libpcap's bpf_filter: the same verdict for every program qe_bpf_usable
 * accepts, on every packet. The first byte chooses the program's source:
 *   even: an expression of up to four primitives (the next four bytes pick them and their joins)
 *         compiled by pcap_compile for Ethernet, as the tracker compiles a filter; every such
 *         program but protochain's (it jumps back) must be usable, or the tracker loses its speed;
 *   odd:  the next bytes as raw instructions (up to 32), accepted or not as they come.
 * The rest is the packet, in a buffer of exactly its length (a read past it is a heap overflow the
 * sanitizer reports), its length on the wire sometimes longer (a snapped capture). */
#include "harness.h"
#include "../bpf-run.h"

#include <pcap/pcap.h>

static const char *const PRIMS[] = {
	"tcp", "udp", "icmp", "ip6", "arp", "vlan", "vlan 100", "mpls", "host 10.0.0.1", "src net 10.0.0.0/8",
	"dst port 53", "portrange 1-1024", "greater 100", "less 60", "ip proto 47", "ether host 00:11:22:33:44:55",
	"tcp[tcpflags] & tcp-syn != 0", "icmp[icmptype] == icmp-unreach", "ip[2:2] > 576", "udp[8:2] = 0x1234",
	"ip6 protochain 6", "len * 2 > 300", "ip[0] & 0xf > 5", "ether[12:2] / 3 = 0x2b", "tcp[12] >> 4 > 5",
	"ip[8] % 7 = 1", "(ip[2:2] - 20) << 1 > 100", "ip[ip[0] & 0xf] != 0", "tcp[(tcp[12] >> 4) * 4] = 0x47",
	"ip6[6] = 17", "ether broadcast", "ip multicast", "len - 14 > ip[2:2]", "udp[4:2] ^ 0xff < 40",
	"ether[0] | 1 = ether[0]", "ip[9] - 6 = 0", "vlan and vlan 7", "net 2001:db8::/32", "ip[1] + ip[2] > 9",
	"icmp6", "-(ip[8]) = 4294967232",
};
static const char *const JOINS[] = { " and ", " or ", " and not ", " or not " };
#define NPRIMS (sizeof PRIMS / sizeof PRIMS[0])

static void compare(const struct bpf_insn *insns, const uint8_t *pkt, size_t len, uint32_t extra)
{
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		abort();
	memcpy(p, pkt, len);
	uint32_t wire = (uint32_t)len + extra;
	if (qe_bpf_run(insns, p, wire, (uint32_t)len) != bpf_filter(insns, p, wire, (u_int)len))
		abort();
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pcap_t *dead;
	if (!dead && !(dead = pcap_open_dead(DLT_EN10MB, 262144)))
		abort();
	if (size < 6)
		return 0;
	uint32_t extra = data[0] & 2 ? data[5] : 0;
	if (!(data[0] & 1)) {
		char expr[1024];
		size_t n = 0;
		int protochain = 0;
		unsigned count = 1 + data[1] % 4;
		for (unsigned i = 0; i < count; i++) {
			const char *prim = PRIMS[data[2 + i] % NPRIMS];
			protochain |= strstr(prim, "protochain") != NULL;
			if (i)
				n += (size_t)snprintf(expr + n, sizeof expr - n, "%s", JOINS[(data[2 + i] / NPRIMS) % 4]);
			n += (size_t)snprintf(expr + n, sizeof expr - n, "(%s)", prim);
		}
		struct bpf_program prog;
		if (pcap_compile(dead, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) != 0)
			return 0;
		int usable = qe_bpf_usable(prog.bf_insns, prog.bf_len);
		if (!usable && !protochain) {
			fprintf(stderr, "not usable: %s\n", expr);
			abort();
		}
		if (usable)
			compare(prog.bf_insns, data + 6, size - 6, extra);
		pcap_freecode(&prog);
		return 0;
	}
	unsigned want = 1 + data[1] % 32, n = 0;
	struct bpf_insn insns[32];
	size_t at = 2;
	while (n < want && size - at >= 8) {
		memcpy(&insns[n].code, data + at, 2);
		insns[n].jt = data[at + 2];
		insns[n].jf = data[at + 3];
		memcpy(&insns[n].k, data + at + 4, 4);
		n++;
		at += 8;
	}
	if (n && qe_bpf_usable(insns, n))
		compare(insns, data + at, size - at, extra);
	return 0;
}
