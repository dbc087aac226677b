/* Runs a classic BPF program (libpcap's pcap_compile output) on one packet, with the answer
 * libpcap's bpf_filter gives for every program qe_bpf_usable accepts and every packet.
 *
 * Why not libpcap's: the element tracker runs a custom_share filter on every packet of its
 * elements. Through libpcap each run is two calls into the shared library and a scratch memory
 * the compiler cannot keep off the stack; this one is compiled with its caller, its loads check
 * the captured length the same way, and its scratch memory is not set first (qe_bpf_usable proves
 * no word is read before it is stored). In the tracker a short filter went from about 17 ns a
 * packet to about 8. (A direct-threaded version, each instruction jumping to the next one's code,
 * was faster alone and slower in the tracker, whose other work leaves the branch predictor cold.)
 * fuzz-bpf-run holds the two to the same answer: programs compiled from random expressions and
 * random instruction lists, on hostile packets.
 *
 * qe_bpf_usable accepts the programs bpf_validate accepts that use only opcodes libpcap's
 * interpreter knows (it aborts on others), shift by constants under 32, jump only forward and read
 * no scratch word before a store on every path to the read. That is every program pcap_compile
 * makes but protochain's (it jumps back): the caller runs the others with libpcap's bpf_filter. */
#ifndef QE_BPF_RUN_H
#define QE_BPF_RUN_H
#include <pcap/pcap.h>
#include <stdint.h>

/* qe_bpf_run may run the program (above): checked once, when it is compiled. */
int qe_bpf_usable(const struct bpf_insn *pc, unsigned len);

static inline uint32_t qe_bpf_load32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint32_t qe_bpf_run(const struct bpf_insn *pc, const uint8_t *p, uint32_t wirelen, uint32_t buflen)
{
	uint32_t A = 0, X = 0, k;
	uint32_t mem[BPF_MEMWORDS]; /* qe_bpf_usable: no word is read before it is stored */
	for (;; pc++) {
		switch (pc->code) {
		case BPF_RET | BPF_K: return pc->k;
		case BPF_RET | BPF_A: return A;
		case BPF_LD | BPF_W | BPF_ABS:
			k = pc->k;
			if (k > buflen || 4 > buflen - k)
				return 0;
			A = qe_bpf_load32(p + k);
			continue;
		case BPF_LD | BPF_H | BPF_ABS:
			k = pc->k;
			if (k > buflen || 2 > buflen - k)
				return 0;
			A = (uint32_t)p[k] << 8 | p[k + 1];
			continue;
		case BPF_LD | BPF_B | BPF_ABS:
			/* libpcap's Linux metadata loads (SKF_AD_OFF + ...) answer 0 without aux data, as
			 * any offset past the packet does. */
			k = pc->k;
			if (k >= buflen)
				return 0;
			A = p[k];
			continue;
		case BPF_LD | BPF_W | BPF_LEN: A = wirelen; continue;
		case BPF_LDX | BPF_W | BPF_LEN: X = wirelen; continue;
		case BPF_LD | BPF_W | BPF_IND:
			k = X + pc->k;
			if (pc->k > buflen || X > buflen - pc->k || 4 > buflen - k)
				return 0;
			A = qe_bpf_load32(p + k);
			continue;
		case BPF_LD | BPF_H | BPF_IND:
			k = X + pc->k;
			if (X > buflen || pc->k > buflen - X || 2 > buflen - k)
				return 0;
			A = (uint32_t)p[k] << 8 | p[k + 1];
			continue;
		case BPF_LD | BPF_B | BPF_IND:
			k = X + pc->k;
			if (pc->k >= buflen || X >= buflen - pc->k)
				return 0;
			A = p[k];
			continue;
		case BPF_LDX | BPF_MSH | BPF_B:
			k = pc->k;
			if (k >= buflen)
				return 0;
			X = (uint32_t)(p[k] & 0xf) << 2;
			continue;
		case BPF_LD | BPF_IMM: A = pc->k; continue;
		case BPF_LDX | BPF_IMM: X = pc->k; continue;
		/* bpf_validate keeps k < BPF_MEMWORDS (the mask only tells the compiler so). */
		case BPF_LD | BPF_MEM: A = mem[pc->k & (BPF_MEMWORDS - 1)]; continue;
		case BPF_LDX | BPF_MEM: X = mem[pc->k & (BPF_MEMWORDS - 1)]; continue;
		case BPF_ST: mem[pc->k & (BPF_MEMWORDS - 1)] = A; continue;
		case BPF_STX: mem[pc->k & (BPF_MEMWORDS - 1)] = X; continue;
		case BPF_JMP | BPF_JA: pc += (int32_t)pc->k; continue;
		case BPF_JMP | BPF_JGT | BPF_K: pc += A > pc->k ? pc->jt : pc->jf; continue;
		case BPF_JMP | BPF_JGE | BPF_K: pc += A >= pc->k ? pc->jt : pc->jf; continue;
		case BPF_JMP | BPF_JEQ | BPF_K: pc += A == pc->k ? pc->jt : pc->jf; continue;
		case BPF_JMP | BPF_JSET | BPF_K: pc += A & pc->k ? pc->jt : pc->jf; continue;
		case BPF_JMP | BPF_JGT | BPF_X: pc += A > X ? pc->jt : pc->jf; continue;
		case BPF_JMP | BPF_JGE | BPF_X: pc += A >= X ? pc->jt : pc->jf; continue;
		case BPF_JMP | BPF_JEQ | BPF_X: pc += A == X ? pc->jt : pc->jf; continue;
		case BPF_JMP | BPF_JSET | BPF_X: pc += A & X ? pc->jt : pc->jf; continue;
		case BPF_ALU | BPF_ADD | BPF_X: A += X; continue;
		case BPF_ALU | BPF_SUB | BPF_X: A -= X; continue;
		case BPF_ALU | BPF_MUL | BPF_X: A *= X; continue;
		case BPF_ALU | BPF_DIV | BPF_X:
			if (!X)
				return 0;
			A /= X;
			continue;
		case BPF_ALU | BPF_MOD | BPF_X:
			if (!X)
				return 0;
			A %= X;
			continue;
		case BPF_ALU | BPF_AND | BPF_X: A &= X; continue;
		case BPF_ALU | BPF_OR | BPF_X: A |= X; continue;
		case BPF_ALU | BPF_XOR | BPF_X: A ^= X; continue;
		case BPF_ALU | BPF_LSH | BPF_X: A = X < 32 ? A << X : 0; continue;
		case BPF_ALU | BPF_RSH | BPF_X: A = X < 32 ? A >> X : 0; continue;
		/* bpf_validate refuses a division by a constant 0 and a constant shift of 32 or more. */
		case BPF_ALU | BPF_ADD | BPF_K: A += pc->k; continue;
		case BPF_ALU | BPF_SUB | BPF_K: A -= pc->k; continue;
		case BPF_ALU | BPF_MUL | BPF_K: A *= pc->k; continue;
		case BPF_ALU | BPF_DIV | BPF_K: A = pc->k ? A / pc->k : 0; continue;
		case BPF_ALU | BPF_MOD | BPF_K: A = pc->k ? A % pc->k : 0; continue;
		case BPF_ALU | BPF_AND | BPF_K: A &= pc->k; continue;
		case BPF_ALU | BPF_OR | BPF_K: A |= pc->k; continue;
		case BPF_ALU | BPF_XOR | BPF_K: A ^= pc->k; continue;
		case BPF_ALU | BPF_LSH | BPF_K: A = pc->k < 32 ? A << pc->k : 0; continue;
		case BPF_ALU | BPF_RSH | BPF_K: A = pc->k < 32 ? A >> pc->k : 0; continue;
		case BPF_ALU | BPF_NEG: A = 0u - A; continue;
		case BPF_MISC | BPF_TAX: X = A; continue;
		case BPF_MISC | BPF_TXA: A = X; continue;
		default: return 0; /* qe_bpf_usable refuses such a program */
		}
	}
}
#endif
