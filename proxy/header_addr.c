#include "autoconf.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>

#include "header_addr.h"
#include "utf8.h"

/* --- characters --- */

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool is_8bit(unsigned char c)
{
	return c >= 0x80;
}

/* RFC 5322 §3.2.3 atext. */
static bool is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* NUL and the other controls but HT; CR and LF are handled apart. */
static bool is_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* --- lexer: RFC 5322 §3.2 tokens, CFWS skipped --- */

/* RFC 2047 §5(3): an encoded-word in a phrase is an atom, with no
 * specials in it; it is read as one, never decoded. A non-conforming
 * one ("=?UTF-8?Q?Doe,_J.?=", a ',' left unencoded) is read as RFC 5322
 * says, the way a recipient's MUA splits it before decoding, so its
 * halves fail to parse: what we check can never be fewer addresses
 * than a reader is shown. */

enum tok_type {
	TOK_END,
	TOK_ATOM,
	TOK_QUOTED,	/* p, len: between the quotes, still escaped */
	TOK_LITERAL,	/* p, len: between the brackets */
	TOK_SPECIAL,	/* one of < > @ , ; : . */
};

struct token {
	enum tok_type type;
	const char *p;
	size_t len;
	/* its non-ASCII octets are all well-formed UTF-8 (RFC 6532 §3.1);
	 * display names may do without, addresses may not */
	bool utf8;
};

struct lexer {
	const char *p;
	const char *end;
};

/* The line end at p, as part of folding whitespace (RFC 5322 §3.2.2:
 * CRLF is only allowed followed by WSP), or a line end that ends the
 * value: its length (2 for CRLF, 1 for a bare LF left by a caller that
 * normalized line ends). 0: a line end that is neither. */
static size_t fold_len(const struct lexer *lx, const char *p)
{
	size_t n;

	if (*p == '\r') {
		if (p + 1 >= lx->end || p[1] != '\n')
			return 0;
		n = 2;
	} else if (*p == '\n') {
		n = 1;
	} else {
		return 0;
	}
	if (p + n == lx->end || is_wsp((unsigned char)p[n]))
		return n;
	return 0;
}

/* Steps over one octet of text that is not ASCII; clears *utf8 when it
 * does not start a well-formed UTF-8 character. */
static const char *skip_8bit(const struct lexer *lx, const char *p,
			     bool *utf8)
{
	size_t n = utf8_char_len(p, lx->end);

	if (n == 0) {
		*utf8 = false;
		return p + 1;
	}
	return p + n;
}

/* RFC 5322 §3.2.2: comment = "(" *([FWS] ccontent) [FWS] ")", ccontent
 * = ctext / quoted-pair / comment. Whatever it holds, an address or a
 * '<', is ignored; only its parentheses must balance. */
static int skip_comment(struct lexer *lx)
{
	size_t depth = 0;
	bool utf8_unused = true;
	const char *p = lx->p;

	while (p < lx->end) {
		unsigned char c = (unsigned char)*p;
		size_t n;

		if (c == '(') {
			depth++;
			p++;
		} else if (c == ')') {
			p++;
			if (--depth == 0) {
				lx->p = p;
				return 0;
			}
		} else if (c == '\\') {
			/* quoted-pair: any octet but a line end or NUL */
			if (p + 1 >= lx->end || is_ctl((unsigned char)p[1]) ||
			    p[1] == '\r' || p[1] == '\n')
				return -1;
			p += 2;
		} else if (c == '\r' || c == '\n') {
			if ((n = fold_len(lx, p)) == 0)
				return -1;
			p += n;
		} else if (is_ctl(c)) {
			return -1;
		} else if (is_8bit(c)) {
			p = skip_8bit(lx, p, &utf8_unused);
		} else {
			p++;
		}
	}
	return -1;
}

/* RFC 5322 §3.2.2 CFWS, with the obsolete folding of §4.2. */
static int skip_cfws(struct lexer *lx)
{
	while (lx->p < lx->end) {
		unsigned char c = (unsigned char)*lx->p;
		size_t n;

		if (is_wsp(c)) {
			lx->p++;
		} else if (c == '\r' || c == '\n') {
			if ((n = fold_len(lx, lx->p)) == 0)
				return -1;
			lx->p += n;
		} else if (c == '(') {
			if (skip_comment(lx) < 0)
				return -1;
		} else {
			break;
		}
	}
	return 0;
}

/* *p closes the token that began at t->p: take it, and go past. */
static bool token_closed(struct lexer *lx, struct token *t, const char *p,
			 char close)
{
	if (*p != close)
		return false;
	t->len = (size_t)(p - t->p);
	lx->p = p + 1;
	return true;
}

/* RFC 5322 §3.2.4 quoted-string, lx->p after the opening quote. */
static int lex_quoted(struct lexer *lx, struct token *t)
{
	const char *p = lx->p;

	t->type = TOK_QUOTED;
	t->p = p;
	while (p < lx->end) {
		unsigned char c = (unsigned char)*p;
		size_t n;

		if (token_closed(lx, t, p, '"'))
			return 0;
		if (c == '\\') {
			/* quoted-pair = "\" (VCHAR / WSP), RFC 6532 §3.2
			 * adding UTF-8 */
			if (p + 1 >= lx->end)
				return -1;
			c = (unsigned char)*++p;
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return -1;
			if (is_8bit(c))
				p = skip_8bit(lx, p, &t->utf8);
			else
				p++;
		} else if (c == '\r' || c == '\n') {
			if ((n = fold_len(lx, p)) == 0)
				return -1;
			p += n;
		} else if (is_ctl(c)) {
			return -1;
		} else if (is_8bit(c)) {
			p = skip_8bit(lx, p, &t->utf8);
		} else {
			p++;
		}
	}
	return -1;
}

/* RFC 5322 §3.4.1 domain-literal, lx->p after the '['. dtext is
 * %d33-90 / %d94-126 (RFC 6532: and UTF-8); the obsolete quoted-pair of
 * §4.4 is refused. */
static int lex_literal(struct lexer *lx, struct token *t)
{
	const char *p = lx->p;

	t->type = TOK_LITERAL;
	t->p = p;
	while (p < lx->end) {
		unsigned char c = (unsigned char)*p;
		size_t n;

		if (token_closed(lx, t, p, ']'))
			return 0;
		if (c == '\r' || c == '\n') {
			if ((n = fold_len(lx, p)) == 0)
				return -1;
			p += n;
		} else if (is_8bit(c)) {
			p = skip_8bit(lx, p, &t->utf8);
		} else if (is_wsp(c) || (c >= 33 && c <= 126 && c != '[' &&
					 c != '\\')) {
			p++;
		} else {
			return -1;
		}
	}
	return -1;
}

/* The next token after CFWS; -1 on text that is no token. */
static int lex_next(struct lexer *lx, struct token *t)
{
	unsigned char c;

	memset(t, 0, sizeof(*t));
	t->utf8 = true;
	if (skip_cfws(lx) < 0)
		return -1;
	if (lx->p >= lx->end) {
		t->type = TOK_END;
		return 0;
	}
	c = (unsigned char)*lx->p;
	if (c == '"') {
		lx->p++;
		return lex_quoted(lx, t);
	}
	if (c == '[') {
		lx->p++;
		return lex_literal(lx, t);
	}
	if (c != '\0' && strchr("<>@,;:.", c) != NULL) {
		t->type = TOK_SPECIAL;
		t->p = lx->p++;
		t->len = 1;
		return 0;
	}
	if (is_atext(c) || is_8bit(c)) {
		const char *p = lx->p;

		while (p < lx->end) {
			if (is_atext((unsigned char)*p))
				p++;
			else if (is_8bit((unsigned char)*p))
				p = skip_8bit(lx, p, &t->utf8);
			else
				break;
		}
		t->type = TOK_ATOM;
		t->p = lx->p;
		t->len = (size_t)(p - lx->p);
		lx->p = p;
		return 0;
	}
	/* ")", "]", "\" and controls outside where they belong */
	return -1;
}

static int lex_peek(const struct lexer *lx, struct token *t)
{
	struct lexer copy = *lx;

	return lex_next(&copy, t);
}

static bool tok_is(const struct token *t, char c)
{
	return t->type == TOK_SPECIAL && t->p[0] == c;
}

/* --- bounded output --- */

struct out_buf {
	char text[HEADER_ADDR_LEN + 1];
	size_t len;
	bool overflow;
};

static void put(struct out_buf *b, char c)
{
	if (b->len < HEADER_ADDR_LEN)
		b->text[b->len++] = c;
	else
		b->overflow = true;
}

static void put_n(struct out_buf *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put(b, p[i]);
}

/* --- addr-spec --- */

/* A word of a local part, unquoted: a quoted-string loses its quotes,
 * quoted-pair backslashes and folding line ends (RFC 5322 §3.2.4:
 * they are not part of its value). */
static int put_word_value(struct out_buf *b, const struct token *t)
{
	const char *p = t->p, *end = t->p + t->len;

	if (t->type == TOK_ATOM) {
		put_n(b, t->p, t->len);
		return 0;
	}
	for (; p < end; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (*p == '\\')
			p++;
		/* RFC 5321 §4.1.2 has no way to carry an HT in a
		 * local part */
		if (*p == '\t')
			return -1;
		put(b, *p);
	}
	return 0;
}

/* RFC 5322 §3.2.3 dot-atom-text, with RFC 6532 UTF-8. */
static bool is_dot_atom(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.' ? s[i + 1] == '.' : !is_atext(c) && !is_8bit(c))
			return false;
	}
	return true;
}

/* RFC 5322 §3.4.1 local-part = dot-atom / quoted-string, and the
 * obsolete word *("." word) of §4.4 (CFWS around the dots, quoted and
 * plain words mixed). Written as RFC 5321 §4.1.2 wants it: a Dot-string
 * when the value is one, otherwise one Quoted-string. */
static int parse_local_part(struct lexer *lx, struct out_buf *b)
{
	struct out_buf value = { .len = 0 };
	struct token t;

	for (;;) {
		if (lex_next(lx, &t) < 0 ||
		    (t.type != TOK_ATOM && t.type != TOK_QUOTED) ||
		    !t.utf8)
			return -1;
		if (put_word_value(&value, &t) < 0)
			return -1;
		if (lex_peek(lx, &t) < 0)
			return -1;
		if (!tok_is(&t, '.'))
			break;
		lex_next(lx, &t);
		put(&value, '.');
	}
	if (value.overflow)
		return -1;
	if (is_dot_atom(value.text, value.len)) {
		put_n(b, value.text, value.len);
		return 0;
	}
	put(b, '"');
	for (size_t i = 0; i < value.len; i++) {
		if (value.text[i] == '"' || value.text[i] == '\\')
			put(b, '\\');
		put(b, value.text[i]);
	}
	put(b, '"');
	return 0;
}

static void put_lower(struct out_buf *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put(b, ascii_lower(p[i]));
}

/* RFC 5322 §3.4.1 domain = dot-atom / domain-literal, and the obsolete
 * atom *("." atom) of §4.4. Written lower case (ASCII), folding and
 * whitespace inside a literal dropped. */
static int parse_domain(struct lexer *lx, struct out_buf *b)
{
	struct token t;

	if (lex_next(lx, &t) < 0 || !t.utf8)
		return -1;
	if (t.type == TOK_LITERAL) {
		size_t start = b->len;

		put(b, '[');
		for (size_t i = 0; i < t.len; i++)
			if (!is_wsp((unsigned char)t.p[i]) && t.p[i] != '\r' &&
			    t.p[i] != '\n')
				put(b, ascii_lower(t.p[i]));
		if (b->len == start + 1)
			return -1;
		put(b, ']');
		return 0;
	}
	for (;;) {
		if (t.type != TOK_ATOM || !t.utf8)
			return -1;
		put_lower(b, t.p, t.len);
		if (lex_peek(lx, &t) < 0)
			return -1;
		if (!tok_is(&t, '.'))
			return 0;
		lex_next(lx, &t);
		put(b, '.');
		if (lex_next(lx, &t) < 0)
			return -1;
	}
}

/* addr-spec = local-part "@" domain; appended to out. */
static int parse_addr_spec(struct lexer *lx, struct header_addrs *out)
{
	struct out_buf b = { .len = 0 };
	struct token t;

	if (parse_local_part(lx, &b) < 0)
		return -1;
	if (lex_next(lx, &t) < 0 || !tok_is(&t, '@'))
		return -1;
	put(&b, '@');
	if (parse_domain(lx, &b) < 0 || b.overflow)
		return -1;
	if (out->n >= HEADER_ADDR_MAX)
		return -1;
	memcpy(out->addr[out->n], b.text, b.len);
	out->addr[out->n][b.len] = '\0';
	out->n++;
	return 0;
}

/* The rest of an angle-addr after its '<' (RFC 5322 §3.4), with the
 * obsolete source route of §4.4, obs-route = obs-domain-list ":",
 * obs-domain-list = *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain]),
 * which is checked and dropped. */
static int parse_angle_addr(struct lexer *lx, struct header_addrs *out)
{
	struct out_buf route = { .len = 0 };
	struct token t;

	if (lex_peek(lx, &t) < 0)
		return -1;
	if (tok_is(&t, '@') || tok_is(&t, ',')) {
		while (lex_next(lx, &t) == 0 && tok_is(&t, ','))
			;
		if (!tok_is(&t, '@') || parse_domain(lx, &route) < 0)
			return -1;
		for (;;) {
			if (lex_next(lx, &t) < 0)
				return -1;
			if (tok_is(&t, ':'))
				break;
			if (!tok_is(&t, ','))
				return -1;
			if (lex_peek(lx, &t) < 0)
				return -1;
			if (tok_is(&t, '@')) {
				lex_next(lx, &t);
				route.len = 0;
				if (parse_domain(lx, &route) < 0)
					return -1;
			}
		}
	}
	if (parse_addr_spec(lx, out) < 0)
		return -1;
	if (lex_next(lx, &t) < 0 || !tok_is(&t, '>'))
		return -1;
	return 0;
}

static int parse_address(struct lexer *lx, struct header_addrs *out,
			 bool in_group);

/* The rest of a group after its ':' (RFC 5322 §3.4: group =
 * display-name ":" [group-list] ";" [CFWS]; the obsolete group-list of
 * §4.4 allows empty members). */
static int parse_group(struct lexer *lx, struct header_addrs *out)
{
	struct token t;

	for (;;) {
		if (lex_peek(lx, &t) < 0)
			return -1;
		if (tok_is(&t, ',')) {
			lex_next(lx, &t);
			continue;
		}
		if (tok_is(&t, ';')) {
			lex_next(lx, &t);
			return 0;
		}
		if (parse_address(lx, out, true) < 0)
			return -1;
		if (lex_peek(lx, &t) < 0 ||
		    (!tok_is(&t, ',') && !tok_is(&t, ';')))
			return -1;
	}
}

/* RFC 5322 §3.4: address = mailbox / group, mailbox = name-addr /
 * addr-spec. What leads up to a '<', '@' or ':' decides: words before
 * '@' are a local part (read again as one), before '<' or ':' a
 * display name (§4.1 obs-phrase: '.' allowed after the first word). */
static int parse_address(struct lexer *lx, struct header_addrs *out,
			 bool in_group)
{
	struct lexer start = *lx;
	struct token t;
	size_t words = 0;

	for (;;) {
		if (lex_next(lx, &t) < 0)
			return -1;
		if (t.type == TOK_ATOM || t.type == TOK_QUOTED)
			words++;
		else if (!tok_is(&t, '.') || words == 0)
			break;
	}
	if (tok_is(&t, '<'))
		return parse_angle_addr(lx, out);
	if (words == 0)
		return -1;
	if (tok_is(&t, '@')) {
		*lx = start;
		return parse_addr_spec(lx, out);
	}
	if (tok_is(&t, ':') && !in_group)
		return parse_group(lx, out);
	return -1;
}

int header_addr_parse(const char *value, size_t len, struct header_addrs *out)
{
	struct lexer lx = { value, value + len };
	size_t n0 = out->n;
	bool any = false;
	struct token t;

	assert(out->n <= HEADER_ADDR_MAX);
	/* address-list, with the empty members of obs-addr-list (RFC 5322
	 * §4.4); at least one address, though it may be an empty group */
	for (;;) {
		if (lex_peek(&lx, &t) < 0)
			goto fail;
		if (t.type == TOK_END)
			break;
		if (tok_is(&t, ',')) {
			lex_next(&lx, &t);
			continue;
		}
		if (parse_address(&lx, out, false) < 0)
			goto fail;
		any = true;
		if (lex_peek(&lx, &t) < 0 ||
		    (t.type != TOK_END && !tok_is(&t, ',')))
			goto fail;
	}
	if (any)
		return 0;
fail:
	out->n = n0;
	return -1;
}

/* --- comparison --- */

/* The '@' between local part and domain: after a quoted local part, or
 * the first one (a dot-atom has none). */
static const char *addr_at(const char *s)
{
	if (*s != '"')
		return strchr(s, '@');
	for (s++; *s != '\0' && *s != '"'; s++)
		if (*s == '\\' && s[1] != '\0')
			s++;
	if (*s != '"' || s[1] != '@')
		return NULL;
	return s + 1;
}

static bool ascii_caseeq_n(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

int header_addr_equal(const char *a, const char *b, int fold_local)
{
	const char *at_a = addr_at(a), *at_b = addr_at(b);
	size_t local;

	if (at_a == NULL || at_b == NULL)
		return 0;
	local = (size_t)(at_a - a);
	if ((size_t)(at_b - b) != local || strlen(at_a) != strlen(at_b))
		return 0;
	if (fold_local ? !ascii_caseeq_n(a, b, local) :
			 memcmp(a, b, local) != 0)
		return 0;
	/* RFC 5321 §2.4: domain names are case-insensitive */
	return ascii_caseeq_n(at_a, at_b, strlen(at_a));
}
