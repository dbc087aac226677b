/* What every libFuzzer target here shares. Each target #includes the C file whose static
 * functions it drives, so it runs the very code the tool runs, on a buffer instead of a file. */
#ifndef QE_FUZZ_HARNESS_H
#define QE_FUZZ_HARNESS_H
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../pcap-format.h"

/* The input as a file descriptor (the readers read with read/pread); `skip` bytes left unread. */
static int harness_memfd(const uint8_t *data, size_t size, size_t skip)
{
	int fd = memfd_create("fuzz-input", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	if (lseek(fd, (off_t)skip, SEEK_SET) < 0)
		abort();
	return fd;
}

/* The helpers' JSON lines go to stdout: away from the fuzzer's report. */
static void harness_quiet(void)
{
	static int done;
	if (done++)
		return;
	int null = open("/dev/null", O_WRONLY);
	if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
		abort();
	close(null);
}

static char harness_dir_path[64];

static void harness_remove_dir(void)
{
	rmdir(harness_dir_path); /* empty unless an input failed: then its files stay for a look */
}

/* A private store directory (on tmpfs when there is one), emptied after each input. */
static const char *harness_dir(void)
{
	if (!harness_dir_path[0]) {
		snprintf(harness_dir_path, sizeof harness_dir_path, "%s/qe-fuzz-XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (!mkdtemp(harness_dir_path))
			abort();
		atexit(harness_remove_dir);
	}
	return harness_dir_path;
}

static size_t harness_pread(void *ctx, unsigned char *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(*(int *)ctx, buf, len, (off_t)off);
	return n < 0 ? 0 : (size_t)n;
}

/* Every file the writer left must be whole and valid to its last byte (pcap-format.h): the
 * import may normalise or refuse a record, never write a damaged one. Then the file goes. */
static void harness_check_and_empty_dir(void)
{
	const char *dir = harness_dir();
	DIR *d = opendir(dir);
	if (!d)
		abort();
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[256];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			abort();
		off_t size = lseek(fd, 0, SEEK_END);
		uint64_t packets;
		uint64_t end = qe_pcap_whole_end(harness_pread, &fd, (uint64_t)size, 0, QE_PCAP_MAX_TS_NS, &packets);
		close(fd);
		if (end != (uint64_t)size || packets == 0) {
			fprintf(stderr, "fuzz: %s: whole valid records end at %llu of %lld bytes (%llu packets)\n", path,
				(unsigned long long)end, (long long)size, (unsigned long long)packets);
			abort();
		}
		unlink(path);
	}
	closedir(d);
}
#endif
