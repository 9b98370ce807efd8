/* Line reader: a fixed input buffer that yields CRLF- (or, unless
 * crlf_only, LF-) terminated lines, bounded by a maximum line length. A longer line is dropped up to
 * its end and reported once as LINE_TOO_LONG, so memory never grows with
 * what a client sends. The caller reads directly into the free space
 * (line_reader_space/commit) to avoid a copy. */
#ifndef AUTHRELAY_LINE_READER_H
#define AUTHRELAY_LINE_READER_H

#include <stdbool.h>
#include <stddef.h>

enum line_status { LINE_NONE, LINE_OK, LINE_TOO_LONG };

struct line_reader {
	char *buf;		/* NULL until input comes, and after a release */
	size_t cap;		/* buffer size */
	size_t next_cap;	/* the size after the next release */
	size_t dirty;		/* octets of buf ever written: wiped on release */
	size_t start, end;	/* unconsumed data is buf[start..end) */
	size_t max_line;	/* longest line content accepted, without CRLF */
	bool discarding;	/* inside an over-long line, dropping to LF */
	bool crlf_only;		/* only CR LF ends a line */
	bool discard_cr;	/* discarding, and the last octet was CR */
};

/* cap must be > max_line + 2. The buffer is allocated when input first
 * comes (line_reader_space). */
void line_reader_init(struct line_reader *lr, size_t cap, size_t max_line);
void line_reader_free(struct line_reader *lr);

/* An idle connection holds no buffer: when nothing is buffered, the
 * buffer is wiped and freed (the next line_reader_space allocates it
 * again). Nothing returned by line_reader_next or _peek stays valid. */
void line_reader_release(struct line_reader *lr);
/* Another buffer size (> max_line + 2): bigger reads for DATA. Growing
 * keeps what is buffered; shrinking takes effect at the next release
 * (the buffer may hold more than the new size). */
void line_reader_set_size(struct line_reader *lr, size_t cap);
/* What line_reader_space would offer, without allocating. */
size_t line_reader_room(const struct line_reader *lr);

/* RFC 5321 §2.3.8: only CR LF ends a line; a bare LF is then part of
 * the line (for the caller to refuse, as it refuses a bare CR). Off by
 * default: a lone LF also ends a line. */
void line_reader_set_crlf_only(struct line_reader *lr, bool on);

/* Free space for new input (compacting first); *avail_r may be 0 when
 * the buffer holds unconsumed data that fills it. */
char *line_reader_space(struct line_reader *lr, size_t *avail_r);
void line_reader_commit(struct line_reader *lr, size_t n);

/* Next line. LINE_OK: *line_r points to the line, NUL-terminated, without
 * its CRLF or LF; valid until the next call. LINE_TOO_LONG: a line of more
 * than max_line octets was dropped (up to and including its LF).
 * LINE_NONE: no complete line yet. */
enum line_status line_reader_next(struct line_reader *lr, char **line_r,
				  size_t *len_r);

/* Raw access for the DATA phase. */
size_t line_reader_pending(const struct line_reader *lr);
const char *line_reader_peek(const struct line_reader *lr, size_t *len_r);
void line_reader_consume(struct line_reader *lr, size_t n);
/* Drop everything buffered (RFC 3207 §4.2: pipelined input after
 * STARTTLS). */
void line_reader_clear(struct line_reader *lr);

#endif
