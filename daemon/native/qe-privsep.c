/* qe-privsep: keeps capture privileges out of the daemon that parses network requests.
 *
 * systemd starts `qe-privsep PROGRAM ARGS...` as the unprivileged service user with CAP_NET_RAW as
 * an ambient capability. qe-privsep forks a spawner that keeps the capability, then clears its own
 * ambient set and execs PROGRAM (the daemon), which therefore runs with no capability at all and
 * stays the service's main process (sd_notify, signals, watchdog).
 *
 * The spawner can start one program only: qe-capture from its own directory. The daemon asks over
 * a socket pair (fd in QE_PRIVSEP_FD), one request per line, fields separated by spaces and
 * arguments hex-encoded so a BPF filter may hold any character:
 *     spawn ID SOCKET_PATH_HEX ARG_HEX...   start qe-capture with these arguments
 *     kill ID SIGNAL                        signal it
 * and hears back:
 *     started ID PID | failed ID ERRNO | exit ID CODE SIGNAL
 * A request longer than MAX_LINE is refused whole (failed ID E2BIG), never run in pieces.
 * The helper's stdin/stdout and its stderr are two connections the spawner makes to SOCKET_PATH
 * (a Unix socket the daemon listens on in its runtime directory), each announced by a first line
 * "ID io" or "ID err": Node.js cannot receive file descriptors over a socket, so the helper comes
 * to it instead. When the daemon goes away the spawner's socket closes, helpers see EOF on their
 * stdin and stop cleanly, and the spawner exits once they have.
 *
 * Exit codes (before the exec): 1 usage, 2 system error. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LINE (64 * 1024)
#define MAX_ARGS 256
#define MAX_CHILDREN 1024

struct child {
	pid_t pid;
	unsigned long id;
};

static struct child children[MAX_CHILDREN];
static int nchildren;
static char helper_path[PATH_MAX];

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes hex in place; returns -1 on a malformed field. */
static int unhex(char *s)
{
	size_t n = strlen(s);
	if (n % 2)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		s[i] = (char)(hi << 4 | lo);
		if (!s[i])
			return -1; /* no NUL inside an argument */
	}
	s[n / 2] = 0;
	return 0;
}

static void reply(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(int fd, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* The daemon reads continuously; a short write on a stream socket is retried. */
	for (int off = 0; off < n;) {
		ssize_t w = write(fd, buf + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (int)w;
	}
}

static int connect_to(const char *path, unsigned long id, const char *kind)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	char hello[64];
	int n = snprintf(hello, sizeof hello, "%lu %s\n", id, kind);
	if (write(fd, hello, (size_t)n) != n) {
		close(fd);
		errno = EIO;
		return -1;
	}
	return fd;
}

static void spawn(int ctl, unsigned long id, char *sock_hex, char **args, int nargs)
{
	if (nchildren == MAX_CHILDREN) {
		reply(ctl, "failed %lu %d\n", id, EAGAIN);
		return;
	}
	if (unhex(sock_hex) < 0) {
		reply(ctl, "failed %lu %d\n", id, EINVAL);
		return;
	}
	char *argv[MAX_ARGS + 2];
	argv[0] = helper_path;
	for (int i = 0; i < nargs; i++) {
		if (unhex(args[i]) < 0) {
			reply(ctl, "failed %lu %d\n", id, EINVAL);
			return;
		}
		argv[i + 1] = args[i];
	}
	argv[nargs + 1] = NULL;
	int io = connect_to(sock_hex, id, "io");
	if (io < 0) {
		reply(ctl, "failed %lu %d\n", id, errno);
		return;
	}
	int err = connect_to(sock_hex, id, "err");
	if (err < 0) {
		int e = errno;
		close(io);
		reply(ctl, "failed %lu %d\n", id, e);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(io, 0) < 0 || dup2(io, 1) < 0 || dup2(err, 2) < 0)
			_exit(127);
		execv(helper_path, argv);
		dprintf(2, "qe-privsep: cannot run %s: %s\n", helper_path, strerror(errno));
		_exit(127);
	}
	int e = errno;
	close(io);
	close(err);
	if (pid < 0) {
		reply(ctl, "failed %lu %d\n", id, e);
		return;
	}
	children[nchildren++] = (struct child){.pid = pid, .id = id};
	reply(ctl, "started %lu %d\n", id, (int)pid);
}

static void handle_line(int ctl, char *line)
{
	char *fields[MAX_ARGS + 4];
	int n = 0;
	for (char *save = NULL, *tok = strtok_r(line, " ", &save); tok && n < MAX_ARGS + 4; tok = strtok_r(NULL, " ", &save))
		fields[n++] = tok;
	if (n >= 3 && !strcmp(fields[0], "spawn") && n - 3 <= MAX_ARGS) {
		spawn(ctl, strtoul(fields[1], NULL, 10), fields[2], fields + 3, n - 3);
	} else if (n == 3 && !strcmp(fields[0], "kill")) {
		unsigned long id = strtoul(fields[1], NULL, 10);
		int sig = atoi(fields[2]);
		/* Only its own helpers, and only by the id it gave them. */
		for (int i = 0; i < nchildren; i++)
			if (children[i].id == id)
				kill(children[i].pid, sig);
	}
}

/* The id of a spawn request from its first bytes, to answer one too long to read whole. */
static int spawn_id(const char *line, unsigned long *id)
{
	if (strncmp(line, "spawn ", 6))
		return 0;
	char *end;
	*id = strtoul(line + 6, &end, 10);
	return end != line + 6 && *end == ' ';
}

static void reap(int ctl)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < nchildren; i++) {
			if (children[i].pid != pid)
				continue;
			int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
			reply(ctl, "exit %lu %d %d\n", children[i].id, code, sig);
			children[i] = children[--nchildren];
			break;
		}
	}
}

static int spawner(int ctl)
{
	/* The daemon owns shutdown: its SIGTERM must not reach helpers through us. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, 0);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return 2;
	static char buf[MAX_LINE];
	size_t len = 0;
	/* Inside a line longer than the buffer: its rest is dropped up to the newline, then refused. */
	int overlong = 0, answer_overlong = 0;
	unsigned long overlong_id = 0;
	int open_ctl = 1;
	while (open_ctl || nchildren) {
		struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = open_ctl ? ctl : -1, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 2;
		}
		if (p[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == sizeof si)
				;
			reap(ctl);
		}
		if (p[1].revents) {
			ssize_t r = read(ctl, buf + len, sizeof buf - 1 - len);
			if (r <= 0) {
				if (r < 0 && errno == EINTR)
					continue;
				open_ctl = 0; /* the daemon is gone: helpers get EOF from it and stop */
				continue;
			}
			len += (size_t)r;
			buf[len] = 0;
			char *start = buf, *nl;
			while ((nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
				*nl = 0;
				if (overlong) {
					if (answer_overlong)
						reply(ctl, "failed %lu %d\n", overlong_id, E2BIG);
					overlong = 0;
				} else {
					handle_line(ctl, start);
				}
				start = nl + 1;
			}
			len -= (size_t)(start - buf);
			memmove(buf, start, len);
			buf[len] = 0;
			if (len == sizeof buf - 1) {
				if (!overlong) {
					overlong = 1;
					answer_overlong = spawn_id(buf, &overlong_id);
				}
				len = 0;
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	int first = 1;
	if (argc > 1 && !strcmp(argv[1], "--"))
		first = 2;
	if (argc <= first || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: qe-privsep PROGRAM [ARGS...]\n"
				"Runs PROGRAM without capabilities; it starts qe-capture with this process's capture\n"
				"capabilities through the socket in QE_PRIVSEP_FD. Meant as the ExecStart of qe-packets.service.\n");
		return 1;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0) {
		perror("qe-privsep: /proc/self/exe");
		return 2;
	}
	self[n] = 0;
	char *slash = strrchr(self, '/');
	*slash = 0;
	snprintf(helper_path, sizeof helper_path, "%s/qe-capture", self);
	if (access(helper_path, X_OK) < 0) {
		fprintf(stderr, "qe-privsep: %s: %s (it must sit beside qe-privsep)\n", helper_path, strerror(errno));
		return 2;
	}

	if (geteuid() == 0)
		fprintf(stderr, "qe-privsep: warning: running as root, the daemon keeps root's privileges; run it as the qe-packets user\n");
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("qe-privsep: socketpair");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("qe-privsep: fork");
		return 2;
	}
	if (pid == 0) {
		close(sv[0]);
		_exit(spawner(sv[1]));
	}
	close(sv[1]);
	/* Without file capabilities an exec keeps only ambient capabilities: clearing them leaves the
	 * daemon with none (permitted, effective and inheritable all empty). */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
		perror("qe-privsep: clearing ambient capabilities");
		return 2;
	}
	int fd = fcntl(sv[0], F_DUPFD, 3);
	if (fd < 0) {
		perror("qe-privsep: fcntl");
		return 2;
	}
	char fdstr[16];
	snprintf(fdstr, sizeof fdstr, "%d", fd);
	setenv("QE_PRIVSEP_FD", fdstr, 1);
	execvp(argv[first], argv + first);
	fprintf(stderr, "qe-privsep: cannot run %s: %s\n", argv[first], strerror(errno));
	return 2;
}
