#include "proto.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void put(struct msg *m, const char *s, size_t n)
{
	if (m->len + n >= sizeof(m->buf) - 2)
		n = sizeof(m->buf) - 2 - m->len;
	memcpy(m->buf + m->len, s, n);
	m->len += n;
}

static void put_escaped(struct msg *m, const char *s)
{
	put(m, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(m, esc, 2);
		} else if (c < 0x20) {
			int n = snprintf(esc, sizeof esc, "\\u%04x", c);
			put(m, esc, (size_t)n);
		} else {
			put(m, (const char *)&c, 1);
		}
	}
	put(m, "\"", 1);
}

static void key(struct msg *m, const char *k)
{
	put(m, ",", 1);
	put_escaped(m, k);
	put(m, ":", 1);
}

void msg_begin(struct msg *m, const char *type, const char *iface)
{
	m->len = 0;
	put(m, "{\"type\":", 8);
	put_escaped(m, type);
	if (iface) {
		key(m, "iface");
		put_escaped(m, iface);
	}
}

void msg_str(struct msg *m, const char *k, const char *val)
{
	key(m, k);
	put_escaped(m, val);
}

void msg_u64(struct msg *m, const char *k, uint64_t val)
{
	char num[24];
	int n = snprintf(num, sizeof num, "%llu", (unsigned long long)val);
	key(m, k);
	put(m, num, (size_t)n);
}

void msg_ns(struct msg *m, const char *k, uint64_t ns)
{
	char num[26];
	int n = snprintf(num, sizeof num, "\"%llu\"", (unsigned long long)ns);
	key(m, k);
	put(m, num, (size_t)n);
}

void msg_bool(struct msg *m, const char *k, int val)
{
	key(m, k);
	put(m, val ? "true" : "false", val ? 4 : 5);
}

void msg_send(struct msg *m)
{
	m->buf[m->len++] = '}';
	m->buf[m->len++] = '\n';
	pthread_mutex_lock(&out_lock);
	size_t off = 0;
	while (off < m->len) {
		ssize_t w = write(STDOUT_FILENO, m->buf + off, m->len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break; /* the daemon is gone; nothing useful to do with the message */
		}
		off += (size_t)w;
	}
	pthread_mutex_unlock(&out_lock);
}

void send_error(const char *iface, const char *code, int fatal, const char *fmt, ...)
{
	char text[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	struct msg m;
	msg_begin(&m, "error", iface);
	msg_str(&m, "code", code);
	msg_str(&m, "message", text);
	msg_bool(&m, "fatal", fatal);
	msg_send(&m);
}
