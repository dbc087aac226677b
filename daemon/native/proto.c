#include "proto.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Every line sent is valid JSON, whatever the length of its strings: pieces go in whole or not at
 * all, "}\n" always fits, and a string too long for the room left keeps its start and its end (for
 * an error: what, then why) with a marker saying how much of the middle was left out, cut between
 * whole characters and escapes. */
#define CLOSING 2      /* "}\n" */
#define AFTER_STR 256  /* kept free after a string for the fields that follow it */
#define MARKER_MAX 40  /* "…(N bytes left out)…" */

static size_t room(const struct msg *m)
{
	return sizeof m->buf - CLOSING - m->len;
}

static void put(struct msg *m, const char *s, size_t n)
{
	if (n > room(m))
		return;
	memcpy(m->buf + m->len, s, n);
	m->len += n;
}

/* Bytes of the character at s: a whole UTF-8 sequence, or 1 for a byte that starts none. */
static size_t char_len(const unsigned char *s, const unsigned char *end)
{
	size_t n = *s < 0xc0 ? 1 : *s < 0xe0 ? 2 : *s < 0xf0 ? 3 : *s < 0xf8 ? 4 : 1;
	if (n > (size_t)(end - s))
		return 1;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 1;
	return n;
}

static size_t escaped_len(const unsigned char *s, size_t n)
{
	return n > 1 ? n : *s == '"' || *s == '\\' ? 2 : *s < 0x20 ? 6 : 1;
}

static void put_char(struct msg *m, const unsigned char *s, size_t n)
{
	char esc[8];
	if (n == 1 && (*s == '"' || *s == '\\')) {
		esc[0] = '\\';
		esc[1] = (char)*s;
		put(m, esc, 2);
	} else if (n == 1 && *s < 0x20) {
		snprintf(esc, sizeof esc, "\\u%04x", *s);
		put(m, esc, 6);
	} else {
		put(m, (const char *)s, n);
	}
}

/* The string as a JSON string of at most `budget` bytes (quotes included; at least 2). */
static void put_escaped_within(struct msg *m, const char *str, size_t budget)
{
	const unsigned char *s = (const unsigned char *)str, *end = s + strlen(str);
	size_t total = 2;
	for (const unsigned char *p = s; p < end;) {
		size_t n = char_len(p, end);
		total += escaped_len(p, n);
		p += n;
	}
	put(m, "\"", 1);
	if (total <= budget) {
		for (const unsigned char *p = s; p < end;) {
			size_t n = char_len(p, end);
			put_char(m, p, n);
			p += n;
		}
	} else if (budget >= 2 + MARKER_MAX) {
		size_t keep = budget - 2 - MARKER_MAX, head_room = keep / 2, tail_room = keep - head_room;
		const unsigned char *head_end = s;
		for (size_t used = 0; head_end < end;) {
			size_t n = char_len(head_end, end), e = escaped_len(head_end, n);
			if (used + e > head_room)
				break;
			used += e;
			head_end += n;
		}
		/* The tail starts at a character boundary found walking back over continuation bytes. */
		const unsigned char *tail = end;
		for (size_t used = 0; tail > head_end;) {
			const unsigned char *p = tail - 1;
			while (p > head_end && (*p & 0xc0) == 0x80 && tail - p < 4)
				p--;
			size_t n = char_len(p, end);
			if (p + n != tail) { /* not a whole sequence: a lone byte */
				p = tail - 1;
				n = 1;
			}
			size_t e = escaped_len(p, n);
			if (used + e > tail_room)
				break;
			used += e;
			tail = p;
		}
		for (const unsigned char *p = s; p < head_end;) {
			size_t n = char_len(p, head_end);
			put_char(m, p, n);
			p += n;
		}
		char marker[MARKER_MAX + 1];
		int mn = snprintf(marker, sizeof marker, "\u2026(%zu bytes left out)\u2026", (size_t)(tail - head_end));
		put(m, marker, mn < 0 ? 0 : (size_t)mn < sizeof marker ? (size_t)mn : sizeof marker - 1);
		for (const unsigned char *p = tail; p < end;) {
			size_t n = char_len(p, end);
			put_char(m, p, n);
			p += n;
		}
	}
	put(m, "\"", 1);
}

/* `,"key":` and a string, the string given what is left but the room kept for what follows. */
static void put_field_str(struct msg *m, const char *k, const char *val, int first)
{
	size_t klen = strlen(k) + (first ? 0 : 1) + 3;
	if (room(m) < klen + 2)
		return; /* the field is left out whole */
	size_t left = room(m) - klen;
	size_t budget = left > AFTER_STR + 2 + MARKER_MAX ? left - AFTER_STR : left;
	if (!first)
		put(m, ",", 1);
	put_escaped_within(m, k, klen);
	put(m, ":", 1);
	put_escaped_within(m, val, budget);
}

/* `,"key":` and a number or literal: whole or left out. */
static void put_field_raw(struct msg *m, const char *k, const char *val)
{
	char field[128];
	int n = snprintf(field, sizeof field, ",\"%s\":%s", k, val);
	if (n > 0 && (size_t)n < sizeof field)
		put(m, field, (size_t)n);
}

void msg_begin(struct msg *m, const char *type, const char *iface)
{
	m->len = 0;
	put(m, "{", 1);
	put_field_str(m, "type", type, 1);
	if (iface)
		put_field_str(m, "iface", iface, 0);
}

void msg_str(struct msg *m, const char *k, const char *val)
{
	put_field_str(m, k, val, 0);
}

void msg_u64(struct msg *m, const char *k, uint64_t val)
{
	char num[24];
	snprintf(num, sizeof num, "%llu", (unsigned long long)val);
	put_field_raw(m, k, num);
}

void msg_ns(struct msg *m, const char *k, uint64_t ns)
{
	char num[26];
	snprintf(num, sizeof num, "\"%llu\"", (unsigned long long)ns);
	put_field_raw(m, k, num);
}

void msg_bool(struct msg *m, const char *k, int val)
{
	put_field_raw(m, k, val ? "true" : "false");
}

void msg_send_line(const char *line, size_t len)
{
	pthread_mutex_lock(&out_lock);
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(STDOUT_FILENO, line + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break; /* the daemon is gone; nothing useful to do with the message */
		}
		off += (size_t)w;
	}
	pthread_mutex_unlock(&out_lock);
}

void msg_send(struct msg *m)
{
	m->buf[m->len++] = '}';
	m->buf[m->len++] = '\n';
	msg_send_line(m->buf, m->len);
}

void send_error(const char *iface, const char *code, int fatal, const char *fmt, ...)
{
	char text[sizeof ((struct msg *)0)->buf]; /* longer could not be sent whole anyway */
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
