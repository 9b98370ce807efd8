#include "autoconf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "line_reader.h"
#include "xalloc.h"

void line_reader_init(struct line_reader *lr, size_t cap, size_t max_line)
{
	assert(cap > max_line + 2);
	lr->buf = NULL;
	lr->cap = lr->next_cap = cap;
	lr->dirty = 0;
	lr->start = lr->end = 0;
	lr->max_line = max_line;
	lr->discarding = false;
	lr->crlf_only = false;
	lr->discard_cr = false;
}

void line_reader_set_crlf_only(struct line_reader *lr, bool on)
{
	lr->crlf_only = on;
}

/* The LF that ends the next line, or NULL. In crlf_only mode a LF not
 * preceded by CR is line content (RFC 5321 §2.3.8). */
static char *line_end(const struct line_reader *lr, char *p, size_t avail)
{
	size_t off = 0;

	for (;;) {
		char *lf = memchr(p + off, '\n', avail - off);

		if (lf == NULL || !lr->crlf_only)
			return lf;
		if (lf > p ? lf[-1] == '\r' : lr->discarding && lr->discard_cr)
			return lf;
		off = (size_t)(lf - p) + 1;
	}
}

static void buf_free(struct line_reader *lr)
{
	if (lr->buf != NULL) {
		/* It may have held an AUTH line. */
		explicit_bzero(lr->buf, lr->dirty);
		free(lr->buf);
	}
	lr->buf = NULL;
	lr->dirty = 0;
}

void line_reader_free(struct line_reader *lr)
{
	buf_free(lr);
	lr->cap = lr->next_cap = lr->start = lr->end = 0;
}

void line_reader_release(struct line_reader *lr)
{
	if (lr->start != lr->end)
		return;
	buf_free(lr);
	lr->start = lr->end = 0;
	lr->cap = lr->next_cap;
}

void line_reader_set_size(struct line_reader *lr, size_t cap)
{
	assert(cap > lr->max_line + 2);
	lr->next_cap = cap;
	if (lr->buf == NULL) {
		lr->cap = cap;
	} else if (cap > lr->cap) {
		/* not realloc: the old copy is wiped */
		char *buf = xmalloc(cap);
		size_t n = lr->end - lr->start;

		memcpy(buf, lr->buf + lr->start, n);
		buf_free(lr);
		lr->buf = buf;
		lr->cap = cap;
		lr->start = 0;
		lr->end = lr->dirty = n;
	}
}

size_t line_reader_room(const struct line_reader *lr)
{
	if (lr->start == lr->end)
		return lr->cap;
	if (lr->start > 0 && lr->end == lr->cap)
		return lr->cap - (lr->end - lr->start);
	return lr->cap - lr->end;
}

char *line_reader_space(struct line_reader *lr, size_t *avail_r)
{
	if (lr->buf == NULL) {
		lr->buf = xmalloc(lr->cap);
		lr->start = lr->end = lr->dirty = 0;
	}
	if (lr->start > 0 && lr->end == lr->cap) {
		size_t n = lr->end - lr->start;

		/* what stays behind is wiped with the rest on release */
		memmove(lr->buf, lr->buf + lr->start, n);
		lr->start = 0;
		lr->end = n;
	} else if (lr->start == lr->end) {
		lr->start = lr->end = 0;
	}
	*avail_r = lr->cap - lr->end;
	return lr->buf + lr->end;
}

void line_reader_commit(struct line_reader *lr, size_t n)
{
	assert(n <= lr->cap - lr->end);
	lr->end += n;
	if (lr->end > lr->dirty)
		lr->dirty = lr->end;
}

enum line_status line_reader_next(struct line_reader *lr, char **line_r,
				  size_t *len_r)
{
	if (lr->buf == NULL)
		return LINE_NONE;
	for (;;) {
		char *p = lr->buf + lr->start;
		size_t avail = lr->end - lr->start;
		char *lf = line_end(lr, p, avail);

		if (lr->discarding) {
			if (lf == NULL) {
				lr->discard_cr = avail > 0 && p[avail - 1] == '\r';
				lr->start = lr->end = 0;
				return LINE_NONE;
			}
			lr->start += (size_t)(lf - p) + 1;
			lr->discarding = false;
			return LINE_TOO_LONG;
		}
		if (lf == NULL) {
			/* +1: a CR may be waiting for its LF. */
			if (avail > lr->max_line + 1) {
				lr->discarding = true;
				lr->discard_cr = false;
				continue;
			}
			return LINE_NONE;
		}
		size_t len = (size_t)(lf - p);
		lr->start += len + 1;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len > lr->max_line)
			return LINE_TOO_LONG;
		p[len] = '\0';
		*line_r = p;
		*len_r = len;
		return LINE_OK;
	}
}

size_t line_reader_pending(const struct line_reader *lr)
{
	return lr->end - lr->start;
}

const char *line_reader_peek(const struct line_reader *lr, size_t *len_r)
{
	*len_r = lr->end - lr->start;
	return lr->buf != NULL ? lr->buf + lr->start : "";
}

void line_reader_consume(struct line_reader *lr, size_t n)
{
	assert(n <= lr->end - lr->start);
	lr->start += n;
	if (lr->start == lr->end)
		lr->start = lr->end = 0;
}

void line_reader_clear(struct line_reader *lr)
{
	if (lr->buf != NULL)
		explicit_bzero(lr->buf, lr->dirty);
	lr->start = lr->end = 0;
	lr->discarding = false;
	lr->discard_cr = false;
}
