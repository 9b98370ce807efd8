#include "autoconf.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "strbuf.h"

void strbuf_init(struct strbuf *sb, char *buf, size_t cap)
{
	assert(buf != NULL && cap > 0);
	sb->buf = buf;
	sb->cap = cap;
	strbuf_reset(sb);
}

void strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	sb->truncated = false;
	sb->buf[0] = '\0';
}

void strbuf_addn(struct strbuf *sb, const char *p, size_t n)
{
	if (n > strbuf_room(sb)) {
		n = strbuf_room(sb);
		sb->truncated = true;
	}
	memcpy(sb->buf + sb->len, p, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void strbuf_add(struct strbuf *sb, const char *s)
{
	strbuf_addn(sb, s, strlen(s));
}

void strbuf_addc(struct strbuf *sb, char c)
{
	strbuf_addn(sb, &c, 1);
}

void strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	size_t room = strbuf_room(sb);
	int n = vsnprintf(sb->buf + sb->len, room + 1, fmt, ap);

	if (n < 0) {
		/* an encoding error: keep what was there */
		sb->buf[sb->len] = '\0';
		sb->truncated = true;
		return;
	}
	if ((size_t)n > room) {
		sb->len += room;
		sb->truncated = true;
	} else {
		sb->len += (size_t)n;
	}
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	strbuf_vprintf(sb, fmt, ap);
	va_end(ap);
}
