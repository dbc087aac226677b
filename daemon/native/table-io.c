#include "table-io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

/* zlib's crc32() costs about 80 ns a call before its first byte, and the tables check many small
 * pieces (a 40-byte directory entry, twice, per key and segment): under SMALL bytes a
 * slicing-by-8 loop with tables built once is four times faster. Same polynomial, same values
 * (the fuzz targets and the TS readers check them). */
#define SMALL 512
static uint32_t tab[8][256];

__attribute__((constructor)) static void tab_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		tab[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int j = 1; j < 8; j++)
			tab[j][i] = (tab[j - 1][i] >> 8) ^ tab[0][tab[j - 1][i] & 0xff];
}

static uint32_t crc_small(uint32_t c, const unsigned char *p, size_t n)
{
	c = ~c;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
			     (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
		w ^= c;
		c = tab[7][w & 0xff] ^ tab[6][(w >> 8) & 0xff] ^ tab[5][(w >> 16) & 0xff] ^ tab[4][(w >> 24) & 0xff] ^
		    tab[3][(w >> 32) & 0xff] ^ tab[2][(w >> 40) & 0xff] ^ tab[1][(w >> 48) & 0xff] ^ tab[0][w >> 56];
	}
	while (n--)
		c = tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

uint32_t qe_crc32_more(uint32_t crc, const unsigned char *p, size_t n)
{
	if (n < SMALL)
		return crc_small(crc, p, n);
	uLong c = crc;
	while (n) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		c = crc32(c, p, chunk);
		p += chunk;
		n -= chunk;
	}
	return (uint32_t)c;
}

uint32_t qe_crc32(const unsigned char *p, size_t n)
{
	return qe_crc32_more(0, p, n);
}

int qe_out_reserve(struct qe_out *o, size_t more)
{
	if (o->len + more <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 4096;
	while (cap < o->len + more)
		cap *= 2;
	unsigned char *p = realloc(o->p, cap);
	if (!p)
		return -1;
	o->p = p;
	o->cap = cap;
	return 0;
}

void qe_out_free(struct qe_out *o)
{
	free(o->p);
	o->p = NULL;
	o->len = o->cap = 0;
}

int qe_write_replace(const char *path, const char *tmp_ext, const unsigned char *p, size_t len, int durable)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s%s", path, tmp_ext) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			goto fail;
		}
		done += (size_t)n;
	}
	if (durable && fdatasync(fd) != 0)
		goto fail;
	int rc = close(fd);
	fd = -1;
	if (rc != 0 || rename(tmp, path) != 0)
		goto fail;
	return 0;
fail: {
	int err = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = err;
	return -1;
}
}
