#include "table-io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

uint32_t qe_crc32(const unsigned char *p, size_t n)
{
	uLong c = crc32(0L, Z_NULL, 0);
	while (n) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		c = crc32(c, p, chunk);
		p += chunk;
		n -= chunk;
	}
	return (uint32_t)c;
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
