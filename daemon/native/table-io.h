/* What the index and the flow table writers share: little-endian fields, zlib's CRC-32 over any
 * length, a growable output buffer and the complete table's write through a temporary name. */
#ifndef QE_TABLE_IO_H
#define QE_TABLE_IO_H
#include <stddef.h>
#include <stdint.h>

struct qe_out {
	unsigned char *p;
	size_t len, cap;
};

static inline void qe_put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void qe_put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void qe_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

uint32_t qe_crc32(const unsigned char *p, size_t n);
/* Room for `more` bytes past len: 0, or -1 out of memory (the buffer as it was). */
int qe_out_reserve(struct qe_out *o, size_t more);
void qe_out_free(struct qe_out *o);
/* Writes `len` bytes to `path` through `path` + `tmp_ext` and a rename: 0, or -1 with errno set and
 * no file left behind. `durable`: fdatasync before the rename. */
int qe_write_replace(const char *path, const char *tmp_ext, const unsigned char *p, size_t len, int durable);
#endif
