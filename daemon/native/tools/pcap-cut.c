/* Test tool, not shipped: cuts a file exactly as writer.c does after a torn write, so the tests
 * can hold it against the daemon's repair. Usage: pcap-cut FILE FIRST_NS (the time in its name);
 * prints "<bytes kept> <packets kept>". */
#include "../writer.c"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: pcap-cut FILE FIRST_NS\n");
		return 1;
	}
	int fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	struct stat st;
	fstat(fd, &st);
	uint64_t size = (uint64_t)st.st_size;
	uint64_t packets = cut_to_whole_records(fd, strtoull(argv[2], NULL, 10), &size);
	printf("%llu %llu\n", (unsigned long long)size, (unsigned long long)packets);
	close(fd);
	return 0;
}
