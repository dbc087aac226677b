/* qe-capture: the capture helper. One process per interface (or per file read), spawned and
 * supervised by the daemon. It alone holds capture privileges. Packets travel from the kernel's
 * TPACKET_V3 ring (through libpcap) into the writer's buffer and on to pcap files without ever
 * leaving C; the daemon hears about files and counters, never about packets.
 *
 * Exit codes: 0 done, 1 usage, 2 bad filter or setting, 3 interface failed or went away
 * (--check-filter: 2 libpcap refuses it, 6 longer than a control line can carry),
 * (the daemon retries), 4 no permission, 5 input file unreadable or corrupt. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "element-track.h"
#include "index-build.h"
#include "pcap-format.h"
#include "proto.h"
#include "writer.h"
#include "linktype.h"

/* Packets per pcap_dispatch. Unbounded, one call empties a full ring (256 MiB: a quarter second of
 * disk writes) without ever reading the daemon's commands, and a new byte quota asked for meanwhile
 * arrives too late: the packets past the old one were dropped as store_full. */
#define DISPATCH_MAX 16384
/* libpcap's TPACKET_V3 blocks are 256 KiB and poll() wakes the helper as each one is retired: at
 * 1500-byte frames and 150 kpps that is 900 wake-ups a second, and the context switches cost about
 * a tenth of the helper's CPU. After draining the ring the helper lets up to PACE_MAX_NS of
 * traffic gather, but never more than a PACE_RING_SHARE of the ring at the rate just seen. */
#define PACE_MAX_NS 10000000u
#define PACE_RING_SHARE 8

struct options {
	const char *iface; /* label in file names and messages */
	const char *read_path;
	const char *filter;
	const char *check_filter;
	uint32_t snaplen;
	uint64_t buffer_bytes;
	int promisc;
	int linktype; /* for --check-filter */
	uint64_t quota; /* linear retention: bytes this helper may write until the daemon grants more */
	int have_quota;
	const char *elements_path; /* --elements: counted from the start */
	struct writer_config wcfg;
};

struct capture {
	struct options *opt;
	struct writer *w;
	pcap_t *pcap;
	struct bpf_program prog; /* offline filter for --read */
	int have_prog;
	uint64_t received;
	uint64_t filtered;
	uint64_t kernel_drops;
	uint64_t if_drops_base;
	uint64_t if_drops;
	uint32_t ts_scale; /* nanoseconds per unit of a live packet's tv_usec: 1, or 1000 without nanosecond support */
	int watch_stdin;
	char cmd[QE_COMMAND_LINE_MAX];
	size_t cmd_len;
	int cmd_discard; /* inside a line that was too long: everything up to its newline goes */
	int import_gave_up; /* an import waited in vain for room or for a refused write (linear store full) */
	uint64_t next_flush; /* an import flushes at the flush interval too, however slow its source */
	struct qe_elements *elems; /* NULL: no element set, no packet parsed for them */
	uint64_t elems_generation;  /* bumped by each set loaded */
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: qe-capture --iface NAME --dir DIR [--dir DIR...] [options]\n"
		"       qe-capture --read FILE --iface LABEL --dir DIR [options]\n"
		"       qe-capture --check-filter EXPR [--linktype N] [--snaplen N]\n"
		"options: --snaplen N --buffer BYTES --filter EXPR --file-size BYTES --file-duration-ms N\n"
		"         --flush-ms N --no-promisc --no-fsync --direct-io --quota BYTES\n"
		"         --index-fields LIST (mac,vlan,ip,port,proto,tunnel; empty: no index) --index-block-size N\n"
		"         --flows (a flow table beside each file)\n"
		"         --elements PATH (per-element counters, element-format.h; `set elements PATH` re-reads)\n");
}

static uint64_t parse_u64(const char *name, const char *val)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(val, &end, 10);
	if (errno || *end || end == val) {
		fprintf(stderr, "qe-capture: %s needs a whole number, got '%s'\n", name, val);
		exit(1);
	}
	return v;
}

/* ---- counters ---- */

static uint64_t read_sys_counter(const char *iface, const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "/sys/class/net/%s/statistics/%s", iface, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	unsigned long long v = 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/* Drops the NIC or driver made before the packet reached the capture ring. rx_dropped is left
 * out: the stack also counts there frames it discards after capture (unknown protocols on a
 * mirror port), which would report loss that did not happen. */
static uint64_t interface_drops(const char *iface)
{
	return read_sys_counter(iface, "rx_missed_errors") + read_sys_counter(iface, "rx_fifo_errors") +
	       read_sys_counter(iface, "rx_over_errors");
}

static uint64_t cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
	       (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

static void send_stats(struct capture *c)
{
	if (c->pcap && !c->opt->read_path) {
		struct pcap_stat ps;
		if (pcap_stats(c->pcap, &ps) == 0)
			c->kernel_drops = ps.ps_drop;
		c->if_drops = interface_drops(c->opt->iface) - c->if_drops_base;
	}
	struct msg m;
	msg_begin(&m, "stats", c->opt->iface);
	msg_u64(&m, "received", c->received);
	struct writer_stats ws = { 0 };
	if (c->w)
		writer_stats(c->w, &ws);
	msg_u64(&m, "written", ws.written);
	msg_u64(&m, "written_bytes", ws.written_bytes);
	msg_u64(&m, "filtered", c->filtered);
	msg_u64(&m, "kernel_drops", c->kernel_drops);
	msg_u64(&m, "if_drops", c->if_drops);
	msg_u64(&m, "writer_drops", ws.lost);
	msg_u64(&m, "write_errors", ws.write_errors);
	msg_u64(&m, "store_full_drops", ws.store_full_drops);
	msg_u64(&m, "appended_bytes", ws.appended_bytes);
	msg_u64(&m, "open_file_bytes", ws.open_file_bytes);
	msg_u64(&m, "buffered_bytes", ws.buffered_bytes);
	msg_u64(&m, "index_bytes", ws.index_bytes);
	msg_u64(&m, "flow_bytes", ws.flow_bytes);
	msg_bool(&m, "store_full", ws.store_full);
	msg_u64(&m, "cpu_us", cpu_us());
	msg_send(&m);
}

/* ---- element counters ---- */

/* Loads an elements file and counts by it from the next packet. A file that cannot be used leaves
 * the set counting as it was and says why: counting never stops for a typo. */
static void load_elements(struct capture *c, const char *path)
{
	char err[1024];
	struct qe_elements *e = qe_elements_load(path, c->opt->wcfg.linktype, c->opt->snaplen, err, sizeof err);
	if (!e) {
		send_error(c->opt->iface, "bad_elements", 0, "elements not changed: %s", err);
		return;
	}
	if (!qe_elements_count(e)) {
		qe_elements_free(e);
		e = NULL;
	}
	writer_set_elements(c->w, e);
	qe_elements_free(c->elems);
	c->elems = e;
	c->elems_generation++;
}

/* The `elements` message, after moving the counters' clock to now_ns (0: the packets' time only). */
static void send_elements(struct capture *c, uint64_t now_ns)
{
	if (!c->elems)
		return;
	if (now_ns)
		qe_elements_tick(c->elems, now_ns);
	qe_elements_report(c->elems, c->opt->iface, c->elems_generation);
}

/* Live packets reach the helper up to a block timeout (50 ms) after their time: the clock the SYN
 * timeout is read by lags the wall clock by more, so a SYN-ACK still in the ring is not outrun. */
#define ELEMENTS_CLOCK_LAG_NS 250000000u

/* ---- control commands from the daemon on stdin ---- */

static int compile_filter(pcap_t *p, const char *expr, struct bpf_program *prog)
{
	return pcap_compile(p, prog, expr, 1, PCAP_NETMASK_UNKNOWN);
}

static void apply_command(struct capture *c, char *line)
{
	char *arg;
	if (strcmp(line, "stop") == 0) {
		stop_requested = 1;
	} else if (strncmp(line, "set file_size ", 14) == 0) {
		writer_set_file_size(c->w, strtoull(line + 14, NULL, 10));
	} else if (strncmp(line, "set file_duration_ms ", 21) == 0) {
		writer_set_file_duration_ns(c->w, strtoull(line + 21, NULL, 10) * 1000000u);
	} else if (strcmp(line, "set quota none") == 0) {
		writer_set_quota(c->w, UINT64_MAX);
	} else if (strncmp(line, "set quota ", 10) == 0) {
		writer_set_quota(c->w, strtoull(line + 10, NULL, 10));
	} else if (strncmp(line, "set flush_ms ", 13) == 0) {
		writer_set_flush_ms(c->w, strtoull(line + 13, NULL, 10));
	} else if (strncmp(line, "set elements ", 13) == 0) {
		load_elements(c, line + 13);
	} else if (strncmp(line, "set filter ", 11) == 0 || strcmp(line, "set filter") == 0) {
		arg = line[10] ? line + 11 : line + 10;
		struct bpf_program prog;
		if (!c->pcap) {
			return;
		}
		/* A bad new filter leaves the running one in place: capture never stops for a typo. */
		if (compile_filter(c->pcap, arg, &prog) != 0) {
			send_error(c->opt->iface, "bad_filter", 0, "%s", pcap_geterr(c->pcap));
			return;
		}
		if (c->opt->read_path) {
			if (c->have_prog)
				pcap_freecode(&c->prog);
			c->prog = prog;
			c->have_prog = arg[0] != '\0';
		} else {
			if (pcap_setfilter(c->pcap, &prog) != 0)
				send_error(c->opt->iface, "bad_filter", 0, "%s", pcap_geterr(c->pcap));
			pcap_freecode(&prog);
		}
	} else {
		send_error(c->opt->iface, "bad_command", 0, "unknown command '%s'", line);
	}
}

static void read_commands(struct capture *c)
{
	ssize_t n = read(STDIN_FILENO, c->cmd + c->cmd_len, sizeof c->cmd - c->cmd_len);
	if (n == 0) {
		/* The daemon is gone: close the files cleanly rather than capture unsupervised. */
		c->watch_stdin = 0;
		stop_requested = 1;
		return;
	}
	if (n < 0)
		return;
	c->cmd_len += (size_t)n;
	char *start = c->cmd;
	char *nl;
	while ((nl = memchr(start, '\n', c->cmd_len - (size_t)(start - c->cmd)))) {
		*nl = '\0';
		if (c->cmd_discard)
			c->cmd_discard = 0; /* the end of a line already refused */
		else
			apply_command(c, start);
		start = nl + 1;
	}
	c->cmd_len -= (size_t)(start - c->cmd);
	memmove(c->cmd, start, c->cmd_len);
	/* A full buffer without a newline: the line is longer than any command may be. Running what
	 * follows as commands of their own would run a piece of a filter (`set quota none`, say). */
	if (c->cmd_len == sizeof c->cmd) {
		if (!c->cmd_discard)
			send_error(c->opt->iface, "bad_command", 0,
				   "a command line longer than %d bytes (newline included) was refused whole: %.40s…",
				   QE_COMMAND_LINE_MAX, c->cmd);
		c->cmd_discard = 1;
		c->cmd_len = 0;
	}
}

/* ---- live capture ---- */

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
	struct capture *c = (struct capture *)user;
	c->received++;
	/* With nanosecond precision libpcap carries nanoseconds in tv_usec; without, microseconds. */
	uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec * c->ts_scale;
	writer_add(c->w, ts, h->caplen, h->len, data);
}

/* libpcap takes the ring size as an int. */
static uint64_t ring_bytes(const struct options *o)
{
	return o->buffer_bytes > INT32_MAX ? INT32_MAX : o->buffer_bytes;
}

static int open_live(struct capture *c)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct options *o = c->opt;
	pcap_t *p = pcap_create(o->iface, errbuf);
	if (!p) {
		send_error(o->iface, "open_failed", 1, "%s", errbuf);
		return 3;
	}
	pcap_set_snaplen(p, (int)o->snaplen);
	pcap_set_promisc(p, o->promisc);
	/* TPACKET_V3 hands over a block when it fills or after this many ms: batching with bounded delay. */
	pcap_set_timeout(p, 50);
	pcap_set_buffer_size(p, (int)ring_bytes(o));
	pcap_set_immediate_mode(p, 0);
	if (pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO) != 0)
		send_error(o->iface, "no_nanoseconds", 0, "nanosecond timestamps not available; using microseconds");
	int rc = pcap_activate(p);
	if (rc < 0) {
		const char *code = rc == PCAP_ERROR_NO_SUCH_DEVICE ? "no_such_device"
				   : rc == PCAP_ERROR_PERM_DENIED ? "permission_denied"
				   : rc == PCAP_ERROR_IFACE_NOT_UP ? "interface_down"
								   : "activate_failed";
		send_error(o->iface, code, 1, "%s: %s", o->iface, pcap_geterr(p));
		pcap_close(p);
		return rc == PCAP_ERROR_PERM_DENIED ? 4 : 3;
	}
	if (rc > 0)
		send_error(o->iface, "activate_warning", 0, "%s: %s", o->iface, pcap_geterr(p));
	if (o->filter && o->filter[0]) {
		struct bpf_program prog;
		if (compile_filter(p, o->filter, &prog) != 0 || pcap_setfilter(p, &prog) != 0) {
			send_error(o->iface, "bad_filter", 1, "%s", pcap_geterr(p));
			pcap_close(p);
			return 2;
		}
		pcap_freecode(&prog);
	}
	if (pcap_setnonblock(p, 1, errbuf) != 0) {
		send_error(o->iface, "activate_failed", 1, "%s", errbuf);
		pcap_close(p);
		return 3;
	}
	c->pcap = p;
	/* What the handle delivers, whatever was asked for. */
	c->ts_scale = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO ? 1 : 1000;
	o->wcfg.linktype = (uint32_t)pcap_datalink(p);
	return 0;
}

static void send_started(struct capture *c, const char *source)
{
	struct msg m;
	msg_begin(&m, "started", c->opt->iface);
	msg_u64(&m, "linktype", c->opt->wcfg.linktype);
	msg_u64(&m, "snaplen", c->opt->wcfg.snaplen);
	msg_str(&m, "source", source);
	msg_u64(&m, "pid", (uint64_t)getpid());
	msg_send(&m);
}

/* The writer, its first quota and the "started" message: the same for every source. */
static int start_writer(struct capture *c, const char *source)
{
	if (!(c->w = writer_new(&c->opt->wcfg))) {
		send_error(c->opt->iface, "no_memory", 1, "cannot allocate the write buffer");
		return 3;
	}
	if (c->opt->have_quota)
		writer_set_quota(c->w, c->opt->quota);
	send_started(c, source);
	if (c->opt->elements_path)
		load_elements(c, c->opt->elements_path);
	return 0;
}

/* How long to wait before the next poll, given the bytes read now that gathered since the ring was
 * last drained at `since` (the writer's appended bytes: record headers make the estimate a little
 * high, which only shortens the pause). The time is counted from the drain, not from the end of the
 * last pause: the bytes gathered during the pause too, and counting from its end took a pause's
 * worth of traffic for a burst far faster than the link, so the next pause came out a fraction as
 * long, and the wake-ups per block doubled. */
static uint64_t pace_ns(const struct capture *c, uint64_t bytes, uint64_t since, uint64_t now)
{
	if (bytes == 0 || now <= since)
		return 0;
	/* the time to fill ring / share at bytes / elapsed */
	double ns = (double)ring_bytes(c->opt) / PACE_RING_SHARE * (double)(now - since) / (double)bytes;
	return ns >= PACE_MAX_NS ? PACE_MAX_NS : (uint64_t)ns;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested)
		;
}

static int run_live(struct capture *c)
{
	int rc = open_live(c);
	if (rc)
		return rc;
	c->if_drops_base = interface_drops(c->opt->iface);
	if ((rc = start_writer(c, "live")))
		return rc;

	int pfd = pcap_get_selectable_fd(c->pcap);
	uint64_t now = now_monotonic_ns();
	uint64_t next_flush = now + writer_flush_ms(c->w) * 1000000u;
	uint64_t next_stats = now + 1000000000u;
	uint64_t drained = now;
	int exit_code = 0;

	while (!stop_requested) {
		struct pollfd fds[2] = { { .fd = pfd, .events = POLLIN }, { .fd = STDIN_FILENO, .events = POLLIN } };
		poll(fds, c->watch_stdin ? 2 : 1, 100);
		if (c->watch_stdin && (fds[1].revents & (POLLIN | POLLHUP)))
			read_commands(c);
		uint64_t bytes_before = writer_appended_bytes(c->w);
		int n = pcap_dispatch(c->pcap, DISPATCH_MAX, on_packet, (u_char *)c);
		if (n == PCAP_ERROR) {
			send_error(c->opt->iface, "interface_lost", 1, "%s: %s", c->opt->iface, pcap_geterr(c->pcap));
			exit_code = 3;
			break;
		}
		if (writer_wants_quota(c->w))
			send_stats(c);
		now = now_monotonic_ns();
		if (writer_retry_due(c->w, now))
			writer_flush(c->w);
		if (now >= next_flush) {
			writer_flush(c->w);
			writer_tick(c->w, now_realtime_ns());
			next_flush = now + writer_flush_ms(c->w) * 1000000u;
		}
		if (now >= next_stats) {
			send_stats(c);
			send_elements(c, now_realtime_ns() - ELEMENTS_CLOCK_LAG_NS);
			next_stats += 1000000000u;
			if (next_stats < now)
				next_stats = now + 1000000000u;
		}
		/* n < DISPATCH_MAX: the ring is drained. */
		uint64_t pause = n > 0 && n < DISPATCH_MAX ? pace_ns(c, writer_appended_bytes(c->w) - bytes_before, drained, now) : 0;
		drained = now;
		if (pause)
			sleep_ns(pause);
	}
	if (exit_code == 0) {
		/* Packets in a block the kernel has not retired yet arrive within the block timeout. */
		uint64_t until = now_monotonic_ns() + 150000000u;
		while (now_monotonic_ns() < until) {
			struct pollfd fd = { .fd = pfd, .events = POLLIN };
			poll(&fd, 1, 20);
			if (pcap_dispatch(c->pcap, -1, on_packet, (u_char *)c) < 0)
				break;
		}
	}
	writer_finish(c->w);
	send_stats(c);
	send_elements(c, now_realtime_ns() - ELEMENTS_CLOCK_LAG_NS);
	writer_free(c->w);
	c->w = NULL;
	qe_elements_free(c->elems);
	c->elems = NULL;
	pcap_close(c->pcap);
	c->pcap = NULL;
	return exit_code;
}

/* ---- reading a file through the same write path ---- */

#define IMPORT_WAIT_NS (10ull * 1000000000u)

/* A file, unlike a live link, can wait. When its grant runs short the import reports at once and
 * waits for the daemon to grant more (circular retention deletes the oldest files first); when the
 * disk refuses a write (a full filesystem) it waits for the daemon to make room (circular) or to stop
 * it ("set quota 0" in linear mode: writer_add then counts store_full), retrying the kept buffer.
 * If the daemon does nothing for a while, the import stops waiting and counts, like live capture. */
static void import_wait(struct capture *c, uint32_t caplen)
{
	struct writer *w = c->w;
	if (writer_wants_quota(w)) {
		send_stats(c);
		struct pollfd fd = { .fd = STDIN_FILENO, .events = POLLIN };
		if (c->watch_stdin && poll(&fd, 1, 0) > 0)
			read_commands(c);
	}
	uint64_t now = now_monotonic_ns(), deadline = now + IMPORT_WAIT_NS, next_report = now;
	while (!c->import_gave_up && !stop_requested && c->watch_stdin) {
		int short_of_quota = writer_short_of_quota(w, caplen);
		int refused = writer_write_refused(w);
		if (!short_of_quota && !refused)
			return;
		if (now >= deadline) {
			c->import_gave_up = 1;
			return;
		}
		if (now >= next_report) {
			send_stats(c);
			next_report = now + 500000000u;
		}
		struct pollfd fd = { .fd = STDIN_FILENO, .events = POLLIN };
		if (poll(&fd, 1, 100) > 0)
			read_commands(c);
		if (refused)
			writer_drain(w);
		now = now_monotonic_ns();
	}
}

/* One record through the offline filter and into the writer. */
static inline void offer(struct capture *c, uint64_t ts, uint32_t caplen, uint32_t origlen, const u_char *data)
{
	c->received++;
	if (c->have_prog) {
		struct pcap_pkthdr h = { .caplen = caplen, .len = origlen };
		if (!pcap_offline_filter(&c->prog, &h, data)) {
			c->filtered++;
			return;
		}
	}
	if (writer_has_quota(c->w) || writer_write_refused(c->w))
		import_wait(c, caplen);
	writer_add(c->w, ts, caplen, origlen, data);
}

static void periodic(struct capture *c, uint64_t *next_stats)
{
	uint64_t now = now_monotonic_ns();
	if (now >= c->next_flush) {
		writer_flush(c->w);
		c->next_flush = now + writer_flush_ms(c->w) * 1000000u;
	}
	if (now >= *next_stats) {
		if (c->watch_stdin) {
			struct pollfd fd = { .fd = STDIN_FILENO, .events = POLLIN };
			if (poll(&fd, 1, 0) > 0)
				read_commands(c);
		}
		send_stats(c);
		send_elements(c, 0);
		*next_stats = now + 1000000000u;
	}
}

/* An offline source: the filter compiled for its link type, then the writer. */
static int start_offline(struct capture *c, uint32_t linktype)
{
	c->opt->wcfg.linktype = linktype;
	c->pcap = pcap_open_dead_with_tstamp_precision(qe_linktype_to_dlt(linktype), (int)c->opt->snaplen, PCAP_TSTAMP_PRECISION_NANO);
	if (c->opt->filter && c->opt->filter[0]) {
		if (compile_filter(c->pcap, c->opt->filter, &c->prog) != 0) {
			send_error(c->opt->iface, "bad_filter", 1, "%s", pcap_geterr(c->pcap));
			return 2;
		}
		c->have_prog = 1;
	}
	int rc = start_writer(c, "file");
	if (rc == 0)
		c->next_flush = now_monotonic_ns() + writer_flush_ms(c->w) * 1000000u;
	return rc;
}

/* read() of the input that keeps the import's duties while a slow source (a FIFO, a pipe from
 * tcpdump -w -) has nothing to give: buffered packets reach the file within the flush interval and
 * the daemon hears from the import every second, as with live capture. */
static ssize_t read_input(struct capture *c, int fd, void *buf, size_t len, uint64_t *next_stats)
{
	for (;;) {
		periodic(c, next_stats);
		uint64_t now = now_monotonic_ns(), until = c->next_flush < *next_stats ? c->next_flush : *next_stats;
		struct pollfd in = { .fd = fd, .events = POLLIN };
		int n = poll(&in, 1, until > now ? (int)((until - now + 999999) / 1000000) : 0);
		if (n > 0)
			return read(fd, buf, len);
		if (n < 0 && (errno != EINTR || stop_requested))
			return -1;
	}
}

#define STREAM_READ (1u << 20)

/* One input being imported. Records the write path cannot take as they are (pcap-format.h's
 * rules) are normalised or refused, never written damaged, and counted for one report at the end. */
struct import {
	const char *path;
	/* classic pcap only: byte order and resolution, and whether its records are already in the
	 * output format, so that runs of them can be written as they are */
	int swapped;
	int nanos;
	int verbatim;
	uint32_t caplen_limit;
	uint64_t offset; /* file offset of the window being walked, for error messages */
	uint64_t normalised, refused;
	uint64_t first_normalised_at, first_refused_at;
	const char *first_normalised, *first_refused;
};

static void note(uint64_t *count, uint64_t *first_at, const char **first, uint64_t at, const char *what)
{
	if ((*count)++ == 0) {
		*first_at = at;
		*first = what;
	}
}

/* A record with what the file claims, made valid or refused; `at` is its byte offset. The instant
 * is `ns` (a fraction of a second or more already carried into the seconds, and counted). */
static void offer_checked(struct capture *c, struct import *in, uint64_t at, uint64_t ns, uint32_t caplen,
			  uint32_t origlen, const u_char *data, int carried)
{
	const char *fix = carried ? (in->nanos ? "a nanosecond fraction of a second or more"
					       : "a microsecond fraction of a second or more")
				  : NULL;
	if (ns > QE_PCAP_MAX_TS_NS) {
		c->received++;
		note(&in->refused, &in->first_refused_at, &in->first_refused, at,
		     "a time after 2106-02-07T06:28:15Z, which pcap cannot hold");
		return;
	}
	if (origlen < caplen) {
		fix = origlen ? "a captured length greater than the original length" : "an original length of 0";
		origlen = caplen;
	}
	if (origlen == 0) {
		c->received++;
		note(&in->refused, &in->first_refused_at, &in->first_refused, at, "no bytes and an original length of 0");
		return;
	}
	if (origlen > QE_PCAP_CAPLEN_CEILING) {
		/* what the writer keeps of the packet is at most the snaplen, itself at most the ceiling */
		fix = "an original length beyond the largest plausible packet";
		origlen = QE_PCAP_CAPLEN_CEILING;
	}
	if (fix)
		note(&in->normalised, &in->first_normalised_at, &in->first_normalised, at, fix);
	offer(c, ns, caplen, origlen, data);
}

static void report_fixes(struct capture *c, const struct import *in)
{
	if (in->normalised)
		send_error(c->opt->iface, "records_normalised", 0,
			   "%s: %" PRIu64 " records were made valid before they were written (the first at byte %" PRIu64
			   " had %s)",
			   in->path, in->normalised, in->first_normalised_at, in->first_normalised);
	if (in->refused)
		send_error(c->opt->iface, "records_refused", 0,
			   "%s: %" PRIu64 " records were not imported (the first at byte %" PRIu64 " had %s)", in->path,
			   in->refused, in->first_refused_at, in->first_refused);
}

/* A run of verbatim records goes to the file in one write; if the disk refuses it, its records
 * take the ordinary path one by one, so every packet is still written or counted. */
static void emit_run(struct capture *c, const unsigned char *p, size_t len, uint64_t packets, const struct writer_span *span)
{
	if (!len)
		return;
	if (writer_add_run(c->w, p, len, packets, span) == 0) {
		c->received += packets;
		if (writer_has_quota(c->w))
			import_wait(c, 0);
		return;
	}
	for (size_t off = 0; off < len;) {
		struct qe_pcap_record r;
		qe_pcap_record_decode(p + off, 0, &r);
		offer(c, qe_pcap_record_ns(&r, 1), r.caplen, r.origlen, p + off + PCAP_RECORD_LEN);
		off += PCAP_RECORD_LEN + r.caplen;
	}
}

/* Offers the whole records in p[0, have) and returns the bytes they take; -1 after a damaged
 * record (reported). Records already in the output format are gathered into runs written
 * straight from p: an import then costs a read and a write, like dd, with no copy per packet. */
static ssize_t import_records(struct capture *c, struct import *in, const unsigned char *p, size_t have)
{
	size_t off = 0, run_start = 0, run_len = 0;
	uint64_t run_packets = 0;
	struct writer_span run = { 0 };
	while (off + PCAP_RECORD_LEN <= have) {
		struct qe_pcap_record r;
		qe_pcap_record_decode(p + off, in->swapped, &r);
		if (r.caplen > in->caplen_limit) {
			emit_run(c, p + run_start, run_len, run_packets, &run);
			send_error(c->opt->iface, "corrupt_input", 1,
				   "%s: record at byte %" PRIu64 " claims %" PRIu32
				   " captured bytes, more than the largest plausible record (%" PRIu32
				   "); the file is damaged after that point",
				   c->opt->read_path, in->offset + off, r.caplen, in->caplen_limit);
			return -1;
		}
		size_t rec = PCAP_RECORD_LEN + (size_t)r.caplen;
		if (off + rec > have)
			break;
		uint64_t ts = qe_pcap_record_ns(&r, in->nanos);
		/* A valid record goes out as it is; any other is made valid on its own (offer_checked). */
		if (in->verbatim && r.caplen <= c->opt->snaplen && !qe_pcap_record_problem(&r, 1) &&
		    writer_run_fits(c->w, run_len + rec, ts)) {
			if (!run_len) {
				run_start = off;
				run = (struct writer_span){ ts, ts, ts, ts, 1 };
			} else {
				if (ts < run.last_ns)
					run.sorted = 0;
				if (ts < run.min_ns)
					run.min_ns = ts;
				if (ts > run.max_ns)
					run.max_ns = ts;
				run.last_ns = ts;
			}
			run_len += rec;
			run_packets++;
		} else {
			emit_run(c, p + run_start, run_len, run_packets, &run);
			run_len = 0;
			run_packets = 0;
			offer_checked(c, in, in->offset + off, ts, r.caplen, r.origlen, p + off + PCAP_RECORD_LEN,
				      r.frac >= (in->nanos ? QE_PCAP_NS_PER_S : 1000000u));
			if (stop_requested)
				return (ssize_t)(off + rec);
		}
		off += rec;
	}
	emit_run(c, p + run_start, run_len, run_packets, &run);
	return (ssize_t)off;
}

/* The input is read in pieces small enough to stay in the CPU cache while their headers are walked
 * and their runs written out (mapping the file instead was 4x slower: every record header was a
 * cache miss, and the write then faulted the pages in again). */
static int import_classic_records(struct capture *c, struct import *in, int fd)
{
	size_t size = STREAM_READ + in->caplen_limit + PCAP_RECORD_LEN;
	unsigned char *buf = malloc(size);
	if (!buf)
		return 3;
	size_t have = 0;
	in->offset = PCAP_GLOBAL_LEN;
	uint64_t next_stats = now_monotonic_ns() + 1000000000u;
	int exit_code = 0;
	while (!stop_requested) {
		size_t room = size - have;
		ssize_t n = read_input(c, fd, buf + have, room < STREAM_READ ? room : STREAM_READ, &next_stats);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			send_error(c->opt->iface, "read_failed", 1, "%s: %s", c->opt->read_path, strerror(errno));
			exit_code = 5;
			break;
		}
		have += (size_t)n;
		ssize_t used = import_records(c, in, buf, have);
		if (used < 0) {
			exit_code = 5;
			break;
		}
		if (n == 0) {
			if (have > (size_t)used && !stop_requested)
				send_error(c->opt->iface, "truncated_input", 0,
					   "%s: the last %zu bytes (from byte %" PRIu64
					   ") are an incomplete record and were not imported",
					   c->opt->read_path, have - (size_t)used, in->offset + (uint64_t)used);
			break;
		}
		memmove(buf, buf + used, have - (size_t)used);
		have -= (size_t)used;
		in->offset += (uint64_t)used;
		periodic(c, &next_stats);
	}
	free(buf);
	return exit_code;
}

/* A link type nothing could read back is refused before a file is written. */
static int check_linktype(struct capture *c, uint32_t linktype, const char *where)
{
	if (qe_pcap_linktype_known(linktype))
		return 0;
	send_error(c->opt->iface, "bad_input", 1,
		   "%s: link type %" PRIu32 " (%s) is not one libpcap or Wireshark knows; a stored copy could "
		   "not be read back",
		   c->opt->read_path, linktype, where);
	return 5;
}

/* Classic pcap: we walk the records ourselves; libpcap's reader costs two stdio calls a packet. */
static int read_classic(struct capture *c, int fd, const unsigned char *gh)
{
	struct qe_pcap_global g;
	qe_pcap_global_decode(gh, &g);
	struct import in = { .path = c->opt->read_path, .swapped = g.swapped, .nanos = g.nanos };
	in.caplen_limit = qe_pcap_caplen_limit(g.snaplen);
	int rc = check_linktype(c, g.linktype, "at byte 20");
	if (!rc)
		rc = start_offline(c, g.linktype);
	if (rc)
		return rc;
	/* Our files are nanosecond pcap in host byte order; a filter needs every packet looked at. */
	in.verbatim = in.nanos && !in.swapped && !c->have_prog;

	rc = import_classic_records(c, &in, fd);
	report_fixes(c, &in);
	return rc;
}

/* pcapng (and anything else libpcap reads): libpcap does the parsing. libpcap reports neither
 * where a record is nor where it failed, so the offsets named are of the block after the last
 * record read. */
static int import_pcap(struct capture *c, pcap_t *in)
{
	struct import imp = { .path = c->opt->read_path, .nanos = 1 };
	FILE *f = pcap_file(in);
	int rc = check_linktype(c, (uint32_t)pcap_datalink(in), "of its first interface");
	if (rc)
		return rc;
	if ((rc = start_offline(c, (uint32_t)pcap_datalink(in))))
		return rc;
	struct pcap_pkthdr *h;
	const u_char *data;
	uint64_t next_stats = now_monotonic_ns() + 1000000000u;
	int exit_code = 0;
	while (!stop_requested) {
		long at = f ? ftell(f) : -1;
		rc = pcap_next_ex(in, &h, &data);
		if (rc == PCAP_ERROR_BREAK)
			break;
		if (rc == PCAP_ERROR) {
			send_error(c->opt->iface, "corrupt_input", 1, "%s: reading from byte %ld: %s", c->opt->read_path, at,
				   pcap_geterr(in));
			exit_code = 5;
			break;
		}
		/* An interface's time offset or resolution can put a record before 1970 or past what
		 * 64-bit nanoseconds hold: such a record is refused, never wrapped. */
		if (h->ts.tv_sec < 0 || h->ts.tv_usec < 0) {
			c->received++;
			note(&imp.refused, &imp.first_refused_at, &imp.first_refused, (uint64_t)at,
			     "a time before 1970 (or an interface's time offset past what a clock holds), which pcap cannot hold");
		} else {
			uint64_t ns = (uint64_t)h->ts.tv_sec <= 0xffffffffu
					      ? (uint64_t)h->ts.tv_sec * QE_PCAP_NS_PER_S + (uint64_t)h->ts.tv_usec
					      : QE_PCAP_MAX_TS_NS + 1;
			offer_checked(c, &imp, (uint64_t)at, ns, h->caplen, h->len, data,
				      (uint64_t)h->ts.tv_usec >= QE_PCAP_NS_PER_S);
		}
		if ((c->received & 0xffff) == 0)
			periodic(c, &next_stats);
	}
	report_fixes(c, &imp);
	return exit_code;
}

static int read_with_libpcap(struct capture *c)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *in = pcap_open_offline_with_tstamp_precision(c->opt->read_path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!in) {
		send_error(c->opt->iface, "bad_input", 1, "%s: %s", c->opt->read_path, errbuf);
		return 5;
	}
	int rc = import_pcap(c, in);
	pcap_close(in);
	return rc;
}

static int run_read(struct capture *c)
{
	int fd = open(c->opt->read_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		send_error(c->opt->iface, "bad_input", 1, "%s: %s", c->opt->read_path, strerror(errno));
		return 5;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	unsigned char gh[PCAP_GLOBAL_LEN];
	ssize_t n = read(fd, gh, sizeof gh);
	struct qe_pcap_global g;
	int rc;
	if (n == PCAP_GLOBAL_LEN && qe_pcap_global_decode(gh, &g)) {
		rc = read_classic(c, fd, gh);
		close(fd);
	} else {
		close(fd);
		rc = read_with_libpcap(c);
	}
	if (c->w)
		writer_finish(c->w);
	send_stats(c);
	send_elements(c, 0);
	writer_free(c->w);
	c->w = NULL;
	qe_elements_free(c->elems);
	c->elems = NULL;
	if (c->have_prog)
		pcap_freecode(&c->prog);
	if (c->pcap)
		pcap_close(c->pcap);
	return rc;
}

/* The filter must fit the line that would change it (`set filter EXPR`): a filter the helper takes
 * at start but could not take on reload would be a trap. */
static int filter_fits(const char *expr)
{
	return strlen(expr) <= QE_FILTER_MAX;
}

static void describe_filter_limit(char *out, size_t len, const char *expr)
{
	snprintf(out, len,
		 "is %zu bytes; the capture helper takes a filter of at most %zu bytes (its control line, `set filter EXPR`, is at most %d bytes)",
		 strlen(expr), (size_t)QE_FILTER_MAX, QE_COMMAND_LINE_MAX);
}

static int check_filter(struct options *o)
{
	if (!filter_fits(o->check_filter)) {
		char why[256];
		describe_filter_limit(why, sizeof why, o->check_filter);
		fprintf(stderr, "%s\n", why);
		return 6;
	}
	pcap_t *p = pcap_open_dead(qe_linktype_to_dlt((uint32_t)o->linktype), (int)o->snaplen);
	struct bpf_program prog;
	if (pcap_compile(p, &prog, o->check_filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		fprintf(stderr, "%s\n", pcap_geterr(p));
		pcap_close(p);
		return 2;
	}
	pcap_freecode(&prog);
	pcap_close(p);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	o.snaplen = 262144;
	o.buffer_bytes = 256u << 20;
	o.promisc = 1;
	o.linktype = DLT_EN10MB;
	o.wcfg.file_size = 1u << 30;
	o.wcfg.flush_ms = 1000;
	o.wcfg.fsync = 1;
	o.wcfg.index_block_size = QE_IDX_BLOCK_SIZE_DEFAULT;

	static const struct option longopts[] = {
		{ "iface", required_argument, 0, 'i' },	     { "dir", required_argument, 0, 'd' },
		{ "read", required_argument, 0, 'r' },	     { "filter", required_argument, 0, 'f' },
		{ "snaplen", required_argument, 0, 's' },    { "buffer", required_argument, 0, 'B' },
		{ "file-size", required_argument, 0, 'C' },  { "file-duration-ms", required_argument, 0, 'G' },
		{ "flush-ms", required_argument, 0, 'F' },   { "no-promisc", no_argument, 0, 'p' },
		{ "no-fsync", no_argument, 0, 'n' },	     { "check-filter", required_argument, 0, 'k' },
		{ "linktype", required_argument, 0, 'l' },   { "help", no_argument, 0, 'h' },
		{ "quota", required_argument, 0, 'Q' },	     { "direct-io", no_argument, 0, 'D' },
		{ "index-fields", required_argument, 0, 'X' }, { "index-block-size", required_argument, 0, 'K' },
		{ "flows", no_argument, 0, 'W' },	     { "elements", required_argument, 0, 'E' },
		{ 0, 0, 0, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i': o.iface = optarg; break;
		case 'd':
			if (o.wcfg.ndirs == MAX_DIRS) {
				fprintf(stderr, "qe-capture: at most %d --dir\n", MAX_DIRS);
				return 1;
			}
			o.wcfg.dirs[o.wcfg.ndirs++] = optarg;
			break;
		case 'r': o.read_path = optarg; break;
		case 'f': o.filter = optarg; break;
		case 's': o.snaplen = (uint32_t)parse_u64("--snaplen", optarg); break;
		case 'B': o.buffer_bytes = parse_u64("--buffer", optarg); break;
		case 'C': o.wcfg.file_size = parse_u64("--file-size", optarg); break;
		case 'G': o.wcfg.file_duration_ns = parse_u64("--file-duration-ms", optarg) * 1000000u; break;
		case 'F': o.wcfg.flush_ms = parse_u64("--flush-ms", optarg); break;
		case 'p': o.promisc = 0; break;
		case 'n': o.wcfg.fsync = 0; break;
		case 'D': o.wcfg.direct = 1; break;
		case 'k': o.check_filter = optarg; break;
		case 'l': o.linktype = (int)parse_u64("--linktype", optarg); break;
		case 'Q': o.quota = parse_u64("--quota", optarg); o.have_quota = 1; break;
		case 'X': {
			const char *bad;
			size_t bad_len;
			int64_t bits = qe_idx_parse_fields(optarg, &bad, &bad_len);
			if (bits < 0) {
				fprintf(stderr, "qe-capture: --index-fields: unknown field '%.*s' (known: mac, vlan, ip, port, proto, tunnel)\n",
					(int)bad_len, bad);
				return 1;
			}
			o.wcfg.index_fields = (uint32_t)bits;
			break;
		}
		case 'K': {
			uint64_t bs = parse_u64("--index-block-size", optarg);
			if (!qe_idx_block_size_ok(bs)) {
				fprintf(stderr, "qe-capture: --index-block-size %s is not a power of two from %u to %u\n", optarg,
					QE_IDX_BLOCK_SIZE_MIN, QE_IDX_BLOCK_SIZE_MAX);
				return 1;
			}
			o.wcfg.index_block_size = (uint32_t)bs;
			break;
		}
		case 'W': o.wcfg.flows = 1; break;
		case 'E': o.elements_path = optarg; break;
		case 'h': usage(); return 0;
		default: usage(); return 1;
		}
	}
	if (o.check_filter)
		return check_filter(&o);
	if (o.snaplen > QE_PCAP_CAPLEN_CEILING) {
		fprintf(stderr, "qe-capture: --snaplen %" PRIu32 " is more than the largest plausible record (%u)\n", o.snaplen,
			QE_PCAP_CAPLEN_CEILING);
		return 1;
	}
	if (!o.iface || o.wcfg.ndirs == 0 || o.snaplen == 0 || o.wcfg.flush_ms == 0) {
		usage();
		return 1;
	}
	o.wcfg.iface = o.iface;
	o.wcfg.snaplen = o.snaplen;

	struct sigaction sa = { 0 };
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN); /* the daemon reloads and tells us what changed over stdin */

	static struct capture c;
	c.opt = &o;
	struct stat st;
	c.watch_stdin = fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));

	int rc;
	if (o.filter && !filter_fits(o.filter)) {
		char why[256];
		describe_filter_limit(why, sizeof why, o.filter);
		send_error(o.iface, "bad_filter", 1, "the filter %s", why);
		rc = 2;
	} else {
		rc = o.read_path ? run_read(&c) : run_live(&c);
	}
	struct msg m;
	msg_begin(&m, "done", o.iface);
	msg_u64(&m, "exit_code", (uint64_t)rc);
	msg_send(&m);
	return rc;
}
