#include "autoconf.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "crlf_span.h"
#include "data_filter.h"
#include "header_scan.h"
#include "xalloc.h"

/* Output is collected here and handed to emit in batches. */
#define OUT_SIZE (16 * 1024)
#define HOLD_INITIAL 4096
/* Whitespace (folds included) held after a field name that equals
 * drop_header while waiting for the colon. RFC 5322 §2.1.1: a line holds
 * at most 998 octets; a name followed by more whitespace than that is
 * taken for the field and dropped, so this is never a way around the
 * drop. */
#define PENDING_WSP_MAX 1000

/* Where the input is, octet by octet. The flag crlf_bol tells whether the
 * current line began after a real CR LF (or at the start of data): only
 * there can "." CR LF end the message. */
enum input_state {
	ST_BOL,		/* at the start of a line */
	ST_DOT,		/* "." at the start of a line */
	ST_DOT_CR,	/* "." CR at the start of a line */
	ST_MID,		/* inside a line */
	ST_CR,		/* CR inside a line, or a line that is just CR */
};

/* The header field the current header line belongs to. */
enum field_state {
	F_KEEP,		/* emitted */
	F_DROP,		/* dropped with its continuation lines */
	F_NAME,		/* so far a prefix of drop_header: held */
	F_WSP,		/* drop_header, then whitespace only: held */
};

struct data_filter {
	enum bare_newline mode;
	uint64_t max_size;
	uint64_t size;
	data_filter_emit *emit;
	void *ctx;

	char *prepend;
	size_t prepend_len;
	char *drop;		/* NULL: drop nothing */
	size_t drop_len;

	enum input_state state;
	bool crlf_bol;
	/* DATA_FILTER_MORE while the message is good; once set, nothing
	 * more is emitted. The first error seen wins. */
	enum data_filter_status error;
	/* DATA_FILTER_MORE until the end was seen. */
	enum data_filter_status result;
	/* Output also stops at a NUL, or when the header check refuses;
	 * either ranks below a latched error at the end. */
	bool nul;
	bool refused;

	/* What the output's header section says (From:, Sender:,
	 * Message-ID:), and who decides on it when it ends. */
	struct header_scan hs;
	data_filter_check *check;
	void *check_ctx;

	/* Header section. Fields are filtered as they arrive; what is kept
	 * is held until the section ends (so that prepend comes first), or
	 * until holding more would pass DATA_FILTER_HEADER_MAX: then it is
	 * released and the rest of the section streams, still filtered. */
	bool in_header;
	bool holding;
	char *hold;
	size_t hold_len, hold_cap;
	bool hline_start;	/* no octet of this header line seen yet */
	enum field_state fstate;
	size_t match_pos;	/* F_NAME: octets of drop_header matched */
	/* F_NAME, F_WSP: the field's octets so far, line ends as CR LF. */
	char *pending;
	size_t pending_len, pending_cap;

	bool out_bol;		/* the output is at the start of a line */
	size_t out_len;
	size_t out_used;	/* of out ever written: what is wiped */
	char out[OUT_SIZE];	/* last: neither zeroed nor wiped whole */
};

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static void latch(struct data_filter *df, enum data_filter_status error)
{
	if (df->error == DATA_FILTER_MORE)
		df->error = error;
}

/* Nothing more goes out. */
static bool stopped(const struct data_filter *df)
{
	return df->error != DATA_FILTER_MORE || df->nul || df->refused;
}

/* --- output --- */

static void out_flush(struct data_filter *df)
{
	if (df->out_len > 0) {
		df->emit(df->out, df->out_len, df->ctx);
		df->out_len = 0;
	}
}

static void out_put(struct data_filter *df, const char *p, size_t n)
{
	if (n > OUT_SIZE - df->out_len)
		out_flush(df);
	if (n >= OUT_SIZE) {
		df->emit(p, n, df->ctx);
		return;
	}
	memcpy(df->out + df->out_len, p, n);
	df->out_len += n;
	if (df->out_len > df->out_used)
		df->out_used = df->out_len;
}

/* The held header section is wiped as far as it was written (it only
 * grows until it goes), not to its capacity. */
static void hold_drop(struct data_filter *df)
{
	if (df->hold != NULL)
		free_secret(df->hold, df->hold_len);
	df->hold = NULL;
	df->hold_len = df->hold_cap = 0;
}

/* The header section is complete, or too big to hold: our header lines,
 * then the kept client fields. */
static void hold_release(struct data_filter *df)
{
	assert(df->holding);
	out_put(df, df->prepend, df->prepend_len);
	if (df->hold != NULL)
		out_put(df, df->hold, df->hold_len);
	hold_drop(df);
	df->holding = false;
}

static void hold_put(struct data_filter *df, const char *p, size_t n)
{
	if (n > DATA_FILTER_HEADER_MAX - df->hold_len) {
		hold_release(df);
		out_put(df, p, n);
		return;
	}
	if (n > df->hold_cap - df->hold_len) {
		size_t cap = df->hold_cap > 0 ? df->hold_cap : HOLD_INITIAL;
		char *hold;

		while (cap - df->hold_len < n)
			cap *= 2;
		if (cap > DATA_FILTER_HEADER_MAX)
			cap = DATA_FILTER_HEADER_MAX;
		/* not xrealloc: the old copy is wiped */
		hold = xmalloc(cap);
		if (df->hold != NULL) {
			memcpy(hold, df->hold, df->hold_len);
			free_secret(df->hold, df->hold_len);
		}
		df->hold = hold;
		df->hold_cap = cap;
	}
	memcpy(df->hold + df->hold_len, p, n);
	df->hold_len += n;
}

static void dest_put(struct data_filter *df, const char *p, size_t n)
{
	/* RFC 5321 §4.5.2 / RFC 6152: NUL is not text. A smarthost that
	 * drops NULs would see "CRLF NUL . CRLF" as an end of data and the
	 * rest as commands (SMTP smuggling): nothing with a NUL goes up. */
	const char *nul = memchr(p, '\0', n);

	if (nul != NULL) {
		/* what came before it still goes, so the output does not
		 * depend on how the input was split */
		n = (size_t)(nul - p);
		df->nul = true;
		if (n == 0)
			return;
	}
	if (!df->hs.done)
		header_scan_feed(&df->hs, p, n);
	if (df->holding)
		hold_put(df, p, n);
	else
		out_put(df, p, n);
}

/* Octets of one output line (never CR or LF). */
static void line_out(struct data_filter *df, const char *p, size_t n)
{
	if (stopped(df) || n == 0)
		return;
	/* RFC 5321 §4.5.2: a line that starts with "." gets one more. */
	if (df->out_bol && p[0] == '.')
		dest_put(df, ".", 1);
	df->out_bol = false;
	dest_put(df, p, n);
}

static void line_end_out(struct data_filter *df)
{
	if (stopped(df))
		return;
	dest_put(df, "\r\n", 2);
	df->out_bol = true;
}

/* --- header section --- */

static bool pending_add(struct data_filter *df, const char *p, size_t n)
{
	if (n > df->pending_cap - df->pending_len)
		return false;
	memcpy(df->pending + df->pending_len, p, n);
	df->pending_len += n;
	return true;
}

static void pending_clear(struct data_filter *df)
{
	explicit_bzero(df->pending, df->pending_len);
	df->pending_len = 0;
}

/* The held start of a field is not drop_header: out with it. */
static void pending_keep(struct data_filter *df)
{
	const char *p = df->pending, *end = p + df->pending_len;

	while (p < end) {
		const char *cr = memchr(p, '\r', (size_t)(end - p));

		if (cr == NULL) {
			line_out(df, p, (size_t)(end - p));
			break;
		}
		/* content holds no CR: this is a line end we stored */
		assert(cr + 1 < end && cr[1] == '\n');
		line_out(df, p, (size_t)(cr - p));
		line_end_out(df);
		p = cr + 2;
	}
	pending_clear(df);
	df->fstate = F_KEEP;
}

static void pending_drop(struct data_filter *df)
{
	pending_clear(df);
	df->fstate = F_DROP;
}

/* One more octet of a field that may be drop_header. */
static void field_name_octet(struct data_filter *df, char c)
{
	if (!pending_add(df, &c, 1)) {
		/* only F_WSP grows past drop_len: see PENDING_WSP_MAX */
		assert(df->fstate == F_WSP);
		pending_drop(df);
		return;
	}
	if (df->fstate == F_NAME) {
		/* Field names are case-insensitive (RFC 5322 §1.2.2: ABNF
		 * strings); ASCII only, strcasecmp() would follow the
		 * locale. */
		if (ascii_lower(c) != ascii_lower(df->drop[df->match_pos])) {
			pending_keep(df);
			return;
		}
		if (++df->match_pos == df->drop_len)
			df->fstate = F_WSP;
		return;
	}
	/* RFC 5322 §4.5.8 (obs-optional): whitespace may precede the
	 * colon, and unfolded (§2.2.3) that includes a fold. */
	if (c == ':')
		pending_drop(df);
	else if (!is_wsp(c))
		pending_keep(df);
}

static void hdr_content(struct data_filter *df, const char *p, size_t n)
{
	while (n > 0) {
		if (df->hline_start) {
			df->hline_start = false;
			/* RFC 5322 §2.2.3: a line starting with whitespace
			 * continues the field before it; F_WSP goes on into
			 * it, as the colon may follow the fold. */
			if (!is_wsp(p[0])) {
				if (df->fstate == F_WSP)
					pending_keep(df);
				df->fstate = df->drop != NULL ? F_NAME : F_KEEP;
				df->match_pos = 0;
			}
		}
		switch (df->fstate) {
		case F_KEEP:
			line_out(df, p, n);
			return;
		case F_DROP:
			return;
		case F_NAME:
		case F_WSP:
			field_name_octet(df, p[0]);
			p++;
			n--;
			break;
		}
	}
}

/* The header section has ended: the check decides before any of it
 * (or, past DATA_FILTER_HEADER_MAX, before any body octet) goes out. */
static void hdr_done(struct data_filter *df)
{
	df->in_header = false;
	header_scan_finish(&df->hs);
	if (!stopped(df) && df->check != NULL &&
	    !df->check(&df->hs, df->check_ctx))
		df->refused = true;
	if (df->refused) {
		hold_drop(df);
		df->holding = false;
		return;
	}
	if (df->holding)
		hold_release(df);
}

static void hdr_line_end(struct data_filter *df)
{
	bool empty = df->hline_start;

	df->hline_start = true;
	if (empty) {
		/* RFC 5322 §2.1: the empty line ends the header section. */
		if (df->fstate == F_WSP)
			pending_keep(df);
		line_end_out(df);
		hdr_done(df);
		return;
	}
	switch (df->fstate) {
	case F_KEEP:
		line_end_out(df);
		break;
	case F_DROP:
		break;
	case F_NAME:
		/* a line that is a prefix of the name: not the field */
		pending_keep(df);
		line_end_out(df);
		break;
	case F_WSP:
		if (!pending_add(df, "\r\n", 2))
			pending_drop(df);
		break;
	}
}

/* The end of data inside the header section. */
static void hdr_finish(struct data_filter *df)
{
	if (df->fstate == F_WSP)
		pending_keep(df);
	hdr_done(df);
}

/* --- the message as unstuffed, normalized --- */

static void sink_content(struct data_filter *df, const char *p, size_t n)
{
	uint64_t room = df->size < df->max_size ? df->max_size - df->size : 0;
	size_t take = (uint64_t)n > room ? (size_t)room : n;

	df->size = n > UINT64_MAX - df->size ? UINT64_MAX : df->size + n;
	if (df->error != DATA_FILTER_MORE)
		return;
	/* what fits is emitted, so the output does not depend on how the
	 * input was split; after a NUL or a refusal only the size counts */
	if (take > 0 && !stopped(df)) {
		if (df->in_header)
			hdr_content(df, p, take);
		else
			line_out(df, p, take);
	}
	if (take < n)
		latch(df, DATA_FILTER_TOO_BIG);
}

static void sink_line_end(struct data_filter *df, bool bare)
{
	/* RFC 5321 §2.3.8: CR and LF are only valid together. */
	if (bare && df->mode == BARE_NEWLINE_REJECT)
		latch(df, DATA_FILTER_BARE_NEWLINE);
	df->size = df->size > UINT64_MAX - 2 ? UINT64_MAX : df->size + 2;
	if (df->size > df->max_size)
		latch(df, DATA_FILTER_TOO_BIG);
	if (stopped(df))
		return;
	if (df->in_header)
		hdr_line_end(df);
	else
		line_end_out(df);
}

static void line_ended(struct data_filter *df, bool bare)
{
	sink_line_end(df, bare);
	df->state = ST_BOL;
	df->crlf_bol = !bare;
}

/* The line "." that is not an end: it is data (RFC 5321 §4.1.1.4 allows
 * no other end; SMTP smuggling relies on servers that do), sent as "..".
 * A bare newline is marked before the "." goes out. */
static void dot_line(struct data_filter *df, bool bare)
{
	if (bare && df->mode == BARE_NEWLINE_REJECT)
		latch(df, DATA_FILTER_BARE_NEWLINE);
	sink_content(df, ".", 1);
	line_ended(df, bare);
}

/* The body's fast path: text the filter would pass on unchanged (lines
 * ended by CR LF, no NUL, no line starting with ".": crlf_span.h) goes
 * out as one block, without the octet-by-octet state machine. Only
 * while the output flows, and only when the whole rest of the input
 * fits under max_size (so that the size limit stays the slow path's
 * business). Returns the octets used. */
static size_t body_span(struct data_filter *df, const char *p, size_t n)
{
	size_t k;

	if (df->in_header || stopped(df) || df->size > df->max_size ||
	    (uint64_t)n > df->max_size - df->size)
		return 0;
	switch (df->state) {
	case ST_BOL:
		if (p[0] == '.')
			return 0;
		break;
	case ST_MID:
		break;
	default:
		return 0;
	}
	k = crlf_span(p, n);
	if (k == 0)
		return 0;
	assert(!df->holding);
	/* After an unstuffed "." (ST_DOT), a line whose content starts with
	 * "." gets one more (RFC 5321 §4.5.2), as in line_out(). */
	if (df->out_bol && p[0] == '.')
		out_put(df, ".", 1);
	out_put(df, p, k);
	df->size += k;
	if (p[k - 1] == '\n') {
		df->state = ST_BOL;
		df->crlf_bol = true;
		df->out_bol = true;
	} else {
		df->state = ST_MID;
		df->out_bol = false;
	}
	return k;
}

static void finish(struct data_filter *df)
{
	if (df->in_header && !stopped(df))
		hdr_finish(df);
	/* The message's own faults first: a refusal of its sender is only
	 * news when the message could have gone. */
	if (df->error != DATA_FILTER_MORE)
		df->result = df->error;
	else if (df->nul)
		df->result = DATA_FILTER_NUL;
	else if (df->refused)
		df->result = DATA_FILTER_REFUSED;
	else
		df->result = DATA_FILTER_DONE;
	hold_drop(df);
	pending_clear(df);
}

/* --- interface --- */

struct data_filter *data_filter_new(enum bare_newline mode, uint64_t max_size,
				    const char *prepend,
				    const char *drop_header,
				    data_filter_emit *emit, void *ctx)
{
	/* Not calloc: out (16 KiB) is written before it is read. */
	struct data_filter *df = xmalloc(sizeof(*df));

	memset(df, 0, offsetof(struct data_filter, out));
	assert(emit != NULL);
	df->mode = mode;
	df->max_size = max_size;
	df->emit = emit;
	df->ctx = ctx;
	df->prepend = xstrdup(prepend != NULL ? prepend : "");
	df->prepend_len = strlen(df->prepend);
	if (drop_header != NULL && *drop_header != '\0') {
		df->drop = xstrdup(drop_header);
		df->drop_len = strlen(df->drop);
	}
	df->pending_cap = df->drop_len + PENDING_WSP_MAX;
	df->pending = xmalloc(df->pending_cap);
	/* The scan sees the message as it goes out, ours first. */
	header_scan_init(&df->hs);
	header_scan_feed(&df->hs, df->prepend, df->prepend_len);

	/* RFC 5321 §4.1.1.4: the first CR LF of the end sequence may be the
	 * one that ended the DATA command. */
	df->state = ST_BOL;
	df->crlf_bol = true;
	df->error = DATA_FILTER_MORE;
	df->result = DATA_FILTER_MORE;
	df->in_header = true;
	df->holding = true;
	df->hline_start = true;
	/* A continuation line before any field would continue the last of
	 * our prepended fields: it is dropped. */
	df->fstate = F_DROP;
	df->out_bol = true;
	return df;
}

void data_filter_free(struct data_filter **dfp)
{
	struct data_filter *df = *dfp;

	if (df == NULL)
		return;
	hold_drop(df);
	free_secret(df->pending, df->pending_cap);
	free_secret(df->prepend, df->prepend_len + 1);
	header_scan_free(&df->hs);
	if (df->drop != NULL)
		free_secret(df->drop, df->drop_len + 1);
	explicit_bzero(df->out, df->out_used);
	free_secret(df, offsetof(struct data_filter, out));
	*dfp = NULL;
}

enum data_filter_status data_filter_feed(struct data_filter *df,
					 const char *buf, size_t len,
					 size_t *consumed_r)
{
	size_t i = 0;

	assert(df != NULL);
	assert(consumed_r != NULL);
	assert(buf != NULL || len == 0);
	if (df->result != DATA_FILTER_MORE) {
		*consumed_r = 0;
		return df->result;
	}

	while (i < len) {
		char c;

		i += body_span(df, buf + i, len - i);
		if (i == len)
			break;
		c = buf[i];

		switch (df->state) {
		case ST_MID: {
			size_t j = i;

			while (j < len && buf[j] != '\r' && buf[j] != '\n')
				j++;
			if (j > i) {
				sink_content(df, buf + i, j - i);
				i = j;
			} else if (c == '\r') {
				df->state = ST_CR;
				i++;
			} else {
				line_ended(df, true);
				i++;
			}
			break;
		}
		case ST_BOL:
			if (c == '.') {
				df->state = ST_DOT;
				i++;
			} else {
				df->state = ST_MID;
			}
			break;
		case ST_CR:
			if (c == '\n') {
				line_ended(df, false);
				i++;
			} else {
				/* c starts the next line */
				line_ended(df, true);
			}
			break;
		case ST_DOT:
			if (c == '\r') {
				df->state = ST_DOT_CR;
				i++;
			} else if (c == '\n') {
				dot_line(df, true);
				i++;
			} else {
				/* RFC 5321 §4.5.2: the first "." is deleted;
				 * c is the line's first octet. */
				df->state = ST_MID;
			}
			break;
		case ST_DOT_CR:
			if (c == '\n' && df->crlf_bol) {
				/* RFC 5321 §4.1.1.4: CR LF "." CR LF */
				finish(df);
				out_flush(df);
				*consumed_r = i + 1;
				return df->result;
			}
			/* "." after a bare CR or LF, or ended by a bare CR */
			if (c == '\n') {
				dot_line(df, false);
				i++;
			} else {
				dot_line(df, true);
			}
			break;
		}
	}
	out_flush(df);
	*consumed_r = len;
	return DATA_FILTER_MORE;
}

uint64_t data_filter_size(const struct data_filter *df)
{
	return df->size;
}

bool data_filter_failed(const struct data_filter *df)
{
	return stopped(df);
}

void data_filter_set_check(struct data_filter *df, data_filter_check *check,
			   void *ctx)
{
	df->check = check;
	df->check_ctx = ctx;
}

const struct header_scan *data_filter_headers(const struct data_filter *df)
{
	return &df->hs;
}

const char *data_filter_message_id(const struct data_filter *df)
{
	for (size_t i = 0; i < df->hs.n; i++)
		if (df->hs.v[i].field == HS_MESSAGE_ID)
			return df->hs.v[i].value +
			       strspn(df->hs.v[i].value, " \t");
	return NULL;
}
