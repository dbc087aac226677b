#include "bpf-run.h"

#include <stdlib.h>

/* The kernel's bound on a classic program (linux/filter.h), which libpcap's compiler keeps to. */
#define QE_BPF_MAXINSNS 4096

/* Every opcode libpcap's interpreter knows (it aborts on others), each a case of qe_bpf_run: a
 * case missing there answers 0 where libpcap answers, which fuzz-bpf-run's random programs find. */
#define QE_BPF_OPS(X)                                                                                            \
	X(RET_K, BPF_RET | BPF_K)                                                                                \
	X(RET_A, BPF_RET | BPF_A)                                                                                \
	X(LD_W_ABS, BPF_LD | BPF_W | BPF_ABS)                                                                    \
	X(LD_H_ABS, BPF_LD | BPF_H | BPF_ABS)                                                                    \
	X(LD_B_ABS, BPF_LD | BPF_B | BPF_ABS)                                                                    \
	X(LD_LEN, BPF_LD | BPF_W | BPF_LEN)                                                                      \
	X(LDX_LEN, BPF_LDX | BPF_W | BPF_LEN)                                                                    \
	X(LD_W_IND, BPF_LD | BPF_W | BPF_IND)                                                                    \
	X(LD_H_IND, BPF_LD | BPF_H | BPF_IND)                                                                    \
	X(LD_B_IND, BPF_LD | BPF_B | BPF_IND)                                                                    \
	X(LDX_MSH, BPF_LDX | BPF_MSH | BPF_B)                                                                    \
	X(LD_IMM, BPF_LD | BPF_IMM)                                                                              \
	X(LDX_IMM, BPF_LDX | BPF_IMM)                                                                            \
	X(LD_MEM, BPF_LD | BPF_MEM)                                                                              \
	X(LDX_MEM, BPF_LDX | BPF_MEM)                                                                            \
	X(ST, BPF_ST)                                                                                            \
	X(STX, BPF_STX)                                                                                          \
	X(JA, BPF_JMP | BPF_JA)                                                                                  \
	X(JGT_K, BPF_JMP | BPF_JGT | BPF_K)                                                                      \
	X(JGE_K, BPF_JMP | BPF_JGE | BPF_K)                                                                      \
	X(JEQ_K, BPF_JMP | BPF_JEQ | BPF_K)                                                                      \
	X(JSET_K, BPF_JMP | BPF_JSET | BPF_K)                                                                    \
	X(JGT_X, BPF_JMP | BPF_JGT | BPF_X)                                                                      \
	X(JGE_X, BPF_JMP | BPF_JGE | BPF_X)                                                                      \
	X(JEQ_X, BPF_JMP | BPF_JEQ | BPF_X)                                                                      \
	X(JSET_X, BPF_JMP | BPF_JSET | BPF_X)                                                                    \
	X(ADD_X, BPF_ALU | BPF_ADD | BPF_X)                                                                      \
	X(SUB_X, BPF_ALU | BPF_SUB | BPF_X)                                                                      \
	X(MUL_X, BPF_ALU | BPF_MUL | BPF_X)                                                                      \
	X(DIV_X, BPF_ALU | BPF_DIV | BPF_X)                                                                      \
	X(MOD_X, BPF_ALU | BPF_MOD | BPF_X)                                                                      \
	X(AND_X, BPF_ALU | BPF_AND | BPF_X)                                                                      \
	X(OR_X, BPF_ALU | BPF_OR | BPF_X)                                                                        \
	X(XOR_X, BPF_ALU | BPF_XOR | BPF_X)                                                                      \
	X(LSH_X, BPF_ALU | BPF_LSH | BPF_X)                                                                      \
	X(RSH_X, BPF_ALU | BPF_RSH | BPF_X)                                                                      \
	X(ADD_K, BPF_ALU | BPF_ADD | BPF_K)                                                                      \
	X(SUB_K, BPF_ALU | BPF_SUB | BPF_K)                                                                      \
	X(MUL_K, BPF_ALU | BPF_MUL | BPF_K)                                                                      \
	X(DIV_K, BPF_ALU | BPF_DIV | BPF_K)                                                                      \
	X(MOD_K, BPF_ALU | BPF_MOD | BPF_K)                                                                      \
	X(AND_K, BPF_ALU | BPF_AND | BPF_K)                                                                      \
	X(OR_K, BPF_ALU | BPF_OR | BPF_K)                                                                        \
	X(XOR_K, BPF_ALU | BPF_XOR | BPF_K)                                                                      \
	X(LSH_K, BPF_ALU | BPF_LSH | BPF_K)                                                                      \
	X(RSH_K, BPF_ALU | BPF_RSH | BPF_K)                                                                      \
	X(NEG, BPF_ALU | BPF_NEG)                                                                                \
	X(TAX, BPF_MISC | BPF_TAX)                                                                               \
	X(TXA, BPF_MISC | BPF_TXA)

#define AS_ENUM(name, code) OP_##name,
enum { QE_BPF_OPS(AS_ENUM) OP_COUNT };
#define AS_CODE(name, code) code,
static const uint16_t op_code[OP_COUNT] = { QE_BPF_OPS(AS_CODE) };

/* The opcode's place in the list, -1 for one libpcap does not know. */
static int op_of(uint16_t code)
{
	for (int i = 0; i < OP_COUNT; i++)
		if (op_code[i] == code)
			return i;
	return -1;
}

/* Whether qe_bpf_run may run the program (bpf-run.h): the checks beyond bpf_validate. Which
 * scratch words are stored on every path to each instruction is followed in one pass in order,
 * which sees every path into an instruction before it because jumps go forward only. */
static int runnable(const struct bpf_insn *pc, unsigned len)
{
	uint16_t *stored = malloc(len * sizeof *stored);
	uint8_t *reached = calloc(len, 1);
	int ok = stored && reached;
	if (ok)
		reached[0] = 1, stored[0] = 0;
	for (unsigned i = 0; ok && i < len; i++) {
		const struct bpf_insn *in = &pc[i];
		int op = op_of(in->code);
		/* libpcap shifts by a constant of 32 or more as the machine does; no compiled filter does */
		if (op < 0 || ((op == OP_LSH_K || op == OP_RSH_K) && in->k >= 32)) {
			ok = 0;
			break;
		}
		if (!reached[i])
			continue;
		uint16_t m = stored[i];
		if (op == OP_LD_MEM || op == OP_LDX_MEM) {
			if (!(m >> in->k & 1)) {
				ok = 0;
				break;
			}
		} else if (op == OP_ST || op == OP_STX) {
			m |= (uint16_t)(1u << in->k);
		}
		uint64_t next[2];
		unsigned n = 0;
		if (op == OP_RET_K || op == OP_RET_A) {
			/* no next instruction */
		} else if (op == OP_JA) {
			if (in->k >= 0x80000000u) { /* back */
				ok = 0;
				break;
			}
			next[n++] = (uint64_t)i + 1 + in->k;
		} else if (BPF_CLASS(in->code) == BPF_JMP) {
			next[n++] = (uint64_t)i + 1 + in->jt;
			next[n++] = (uint64_t)i + 1 + in->jf;
		} else {
			next[n++] = (uint64_t)i + 1;
		}
		for (unsigned j = 0; j < n; j++) {
			if (next[j] >= len) {
				ok = 0;
				break;
			}
			stored[next[j]] = reached[next[j]] ? (uint16_t)(stored[next[j]] & m) : m;
			reached[next[j]] = 1;
		}
	}
	free(stored);
	free(reached);
	return ok;
}

int qe_bpf_usable(const struct bpf_insn *insns, unsigned len)
{
	return insns && len && len <= QE_BPF_MAXINSNS && bpf_validate(insns, (int)len) && runnable(insns, len);
}
