/* The one bounded string builder for every line we compose (commands to
 * the smarthost, our header lines, log records): text is appended into
 * storage the caller gives, never past its end; what does not fit is
 * cut and the builder remembers it. The text is always NUL-terminated.
 *
 *	char line[512];
 *	struct strbuf sb;
 *
 *	strbuf_init(&sb, line, sizeof(line));
 *	strbuf_printf(&sb, "MAIL FROM:<%s>", path);
 *	if (strbuf_truncated(&sb)) ...
 */
#ifndef AUTHRELAY_STRBUF_H
#define AUTHRELAY_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *buf;
	size_t cap;		/* size of buf, the NUL included */
	size_t len;
	bool truncated;
};

/* cap > 0. */
void strbuf_init(struct strbuf *sb, char *buf, size_t cap);
void strbuf_add(struct strbuf *sb, const char *s);
void strbuf_addn(struct strbuf *sb, const char *p, size_t n);
void strbuf_addc(struct strbuf *sb, char c);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Back to empty, e.g. to reuse the storage. */
void strbuf_reset(struct strbuf *sb);

static inline const char *strbuf_str(const struct strbuf *sb)
{
	return sb->buf;
}

static inline size_t strbuf_len(const struct strbuf *sb)
{
	return sb->len;
}

/* Room left for text (not counting the NUL). */
static inline size_t strbuf_room(const struct strbuf *sb)
{
	return sb->cap - 1 - sb->len;
}

static inline bool strbuf_truncated(const struct strbuf *sb)
{
	return sb->truncated;
}

#endif
