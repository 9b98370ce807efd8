#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "header_scan.h"
#include "xalloc.h"

void header_scan_init(struct header_scan *hs)
{
	memset(hs, 0, sizeof(*hs));
	hs->cur = xmalloc(HEADER_SCAN_FIELD_MAX + 1);
	hs->line_start = true;
}

void header_scan_free(struct header_scan *hs)
{
	for (size_t i = 0; i < hs->n; i++)
		free(hs->v[i].value);
	free(hs->cur);
	memset(hs, 0, sizeof(*hs));
}

/* Name of the collected field, if one we keep. */
static int field_kind(const char *p, size_t len, size_t *value_off)
{
	static const struct {
		const char *name;
		enum header_scan_field f;
	} names[] = {
		{ "from", HS_FROM },
		{ "sender", HS_SENDER },
		{ "message-id", HS_MESSAGE_ID },
	};
	const char *colon = memchr(p, ':', len);
	size_t n;

	if (colon == NULL)
		return -1;
	n = (size_t)(colon - p);
	/* RFC 5322 §4.5: obsolete whitespace before the colon */
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == n &&
		    strncasecmp(p, names[i].name, n) == 0) {
			*value_off = (size_t)(colon - p) + 1;
			return (int)names[i].f;
		}
	}
	return -1;
}

/* The current field is complete. */
static void field_end(struct header_scan *hs)
{
	size_t off = 0, len;
	char *value;
	int kind;

	if (!hs->cur_active)
		return;
	hs->cur_active = false;
	if (hs->cur_skip)
		return;
	kind = field_kind(hs->cur, hs->cur_len, &off);
	if (kind < 0)
		return;
	if (kind == HS_MESSAGE_ID) {
		for (size_t i = 0; i < hs->n; i++)
			if (hs->v[i].field == HS_MESSAGE_ID)
				return;
	}
	if (hs->n >= HEADER_SCAN_FIELDS) {
		hs->overflow = true;
		return;
	}
	/* Copied by length, not as a string: a NUL in the value must not
	 * shorten the copy below the len the caller is given. */
	len = hs->cur_len - off;
	value = xmalloc(len + 1);
	memcpy(value, hs->cur + off, len);
	value[len] = '\0';
	hs->v[hs->n].field = (enum header_scan_field)kind;
	hs->v[hs->n].value = value;
	hs->v[hs->n].len = len;
	hs->n++;
}

static void field_add(struct header_scan *hs, const char *p, size_t n)
{
	if (hs->cur_skip)
		return;
	if (hs->cur_len + n > HEADER_SCAN_FIELD_MAX) {
		size_t off;

		/* Too long to keep: matters only if it is one we want. */
		if (field_kind(hs->cur, hs->cur_len, &off) >= 0 ||
		    memchr(hs->cur, ':', hs->cur_len) == NULL)
			hs->overflow = true;
		hs->cur_skip = true;
		return;
	}
	/* The filter's output has CR only before LF: dropping every CR
	 * unfolds correctly however the octets were split. */
	for (size_t i = 0; i < n; i++)
		if (p[i] != '\r')
			hs->cur[hs->cur_len++] = p[i];
}

void header_scan_feed(struct header_scan *hs, const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && !hs->done) {
		const char *lf = memchr(buf + i, '\n', len - i);
		size_t n = lf ? (size_t)(lf - (buf + i)) + 1 : len - i;
		const char *p = buf + i;

		/* At a line start: an empty line ends the section, a line
		 * starting with WSP continues the field (unfolded: the CRLF
		 * is dropped, RFC 5322 §2.2.3). */
		if (hs->line_start) {
			if (p[0] == '\n' || (p[0] == '\r' && (n == 1 || p[1] == '\n'))) {
				field_end(hs);
				hs->done = true;
				return;
			}
			if (p[0] != ' ' && p[0] != '\t') {
				field_end(hs);
				hs->cur_active = true;
				hs->cur_skip = false;
				hs->cur_len = 0;
			}
		}
		/* The line's text without its line end. */
		if (hs->cur_active)
			field_add(hs, p, lf != NULL ? n - 1 : n);
		hs->line_start = lf != NULL;
		i += n;
	}
}

void header_scan_finish(struct header_scan *hs)
{
	if (!hs->done) {
		field_end(hs);
		hs->done = true;
	}
}
