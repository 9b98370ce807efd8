#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "header_addr.h"
#include "test.h"

#define MAXW 4

struct parse_case {
	const char *value;
	size_t len;		/* 0: strlen(value) */
	int ret;
	const char *want[MAXW + 1];	/* NULL-ended */
};

#define OK(v, ...) { .value = (v), .want = { __VA_ARGS__ } }
#define NONE(v) { .value = (v) }
#define BAD(v) { .value = (v), .ret = -1 }
/* a string literal that holds a NUL */
#define BAD_S(v) { .value = (v), .len = sizeof(v) - 1, .ret = -1 }

static const struct parse_case parse_cases[] = {
	/* plain addr-spec, name-addr */
	OK("alice@example.com", "alice@example.com"),
	OK("  alice@example.com  ", "alice@example.com"),
	OK("postmaster@example.com", "postmaster@example.com"),
	OK("<alice@example.com>", "alice@example.com"),
	OK("Alice Example <alice@example.com>", "alice@example.com"),
	OK("Alice Example<alice@example.com>", "alice@example.com"),
	OK("\"Alice Example\" <alice@example.com>", "alice@example.com"),
	OK("John Q. Public <jqp@example.com>", "jqp@example.com"),
	OK("\"Joe Q. Public\" <john.q.public@example.com>",
	   "john.q.public@example.com"),
	/* quoted display names with commas, quotes, colons, semicolons */
	OK("\"Doe, John \\\"JD\\\"\" <jd@x.org>", "jd@x.org"),
	OK("\"Smith, Alice (IT)\" <Alice.Smith@Example.com>",
	   "Alice.Smith@example.com"),
	OK("\"Mary Smith: Personal Account\" <smith@home.example>",
	   "smith@home.example"),
	OK("<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" "
	   "<sysservices@example.net>",
	   "boss@nil.test", "sysservices@example.net"),
	OK("\"Doe, John\" <jd@x.org>, \"Roe, Jane\" <jr@x.org>", "jd@x.org",
	   "jr@x.org"),
	/* RFC 2047 encoded words as display names */
	OK("=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>",
	   "joerg@example.de"),
	OK("=?iso-8859-1?Q?J=F6rg?= <j@x>", "j@x"),
	OK("=?UTF-8?Q?M=C3=BCller=2C_Hans?= <hans@example.de>",
	   "hans@example.de"),
	OK("=?UTF-8?B?5bGx55Sw?= =?UTF-8?B?5aSq6YOO?= <taro@example.jp>",
	   "taro@example.jp"),
	OK("\"=?UTF-8?Q?Doe=2C_J.?=\" <jd@example.com>", "jd@example.com"),
	/* not conforming: a '.' left unencoded is still a phrase (RFC 5322
	 * §4.1 obs-phrase) */
	OK("=?UTF-8?Q?J._Doe?= <jd@example.com>", "jd@example.com"),
	/* comments */
	OK("alice@example.com (Alice)", "alice@example.com"),
	OK("(comment) <alice@example.com>", "alice@example.com"),
	OK("alice@example.com (Alice (the (real) one))", "alice@example.com"),
	OK("alice@example.com (not <evil@x.org>)", "alice@example.com"),
	OK("(evil@x.org) alice@example.com", "alice@example.com"),
	OK("Alice (work) <alice@example.com> (sent from my phone)",
	   "alice@example.com"),
	OK("alice(x)@(y)example.com", "alice@example.com"),
	OK("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
	   "pete@silly.test"),
	OK("Chris Jones <c@(Chris's host.)public.example>",
	   "c@public.example"),
	OK("alice@example.com (\\(evil@x.org)", "alice@example.com"),
	/* groups (RFC 6854 allows them in From:) */
	NONE("undisclosed-recipients:;"),
	NONE("Undisclosed recipients: ;"),
	NONE("Empty: (nobody) ;"),
	OK("Team: a@example.com, c@example.org;", "a@example.com",
	   "c@example.org"),
	OK("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	   "c@a.test", "joe@where.test", "jdoe@one.test"),
	OK("Team: Alice <a@example.com>, ,; , carol@example.net",
	   "a@example.com", "carol@example.net"),
	OK("\"Team, Inc\": a@example.com; (done)", "a@example.com"),
	/* several mailboxes, and the empty members of obs-mbox-list */
	OK("alice@example.com, bob@example.org", "alice@example.com",
	   "bob@example.org"),
	OK("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
	   "mary@x.test", "jdoe@example.org", "one@y.test"),
	OK(", alice@example.com,,bob@example.org,", "alice@example.com",
	   "bob@example.org"),
	/* folded, or with the field's own line end */
	OK("\"Example, Alice\"\r\n <alice@example.com>", "alice@example.com"),
	OK("Alice\r\n\t<alice@example.com>,\r\n bob@example.org",
	   "alice@example.com", "bob@example.org"),
	OK("\"Example,\r\n Alice\" <alice@example.com>", "alice@example.com"),
	OK("alice@example.com (a long\r\n comment)", "alice@example.com"),
	OK("Alice\n <alice@example.com>", "alice@example.com"),
	OK("alice@example.com\r\n", "alice@example.com"),
	OK(" \r\n alice@example.com \r\n \r\n", "alice@example.com"),
	/* obsolete forms (RFC 5322 §4.4) */
	OK("alice @ example.com", "alice@example.com"),
	OK("alice . smith @ example . com", "alice.smith@example.com"),
	OK("John Doe <jdoe@machine(comment).  example>",
	   "jdoe@machine.example"),
	OK("<@relay.example.net:alice@example.com>", "alice@example.com"),
	OK("Mary Smith <@node.test:mary@example.net>", "mary@example.net"),
	OK("Alice <@r1.example,@r2.example:alice@example.com>",
	   "alice@example.com"),
	OK("<,@r1.example,,@r2.example,:alice@example.com>",
	   "alice@example.com"),
	/* domains are lower-cased, local parts kept */
	OK("A@EXAMPLE.COM", "A@example.com"),
	OK("Alice <Alice.Smith@Mail.Example.COM>",
	   "Alice.Smith@mail.example.com"),
	/* address literals */
	OK("alice@[192.0.2.1]", "alice@[192.0.2.1]"),
	OK("<alice@[IPv6:2001:DB8::1]>", "alice@[ipv6:2001:db8::1]"),
	OK("alice@[ 192.0.2.1 ]", "alice@[192.0.2.1]"),
	/* quoted local parts: unquoted when quoting was not needed */
	OK("\"john.doe\"@example.com", "john.doe@example.com"),
	OK("\"john\"@example.com", "john@example.com"),
	OK("\"john doe\"@example.com", "\"john doe\"@example.com"),
	OK("John <\"john doe\"@example.com>", "\"john doe\"@example.com"),
	OK("\"john\\\"d\"@x.org", "\"john\\\"d\"@x.org"),
	OK("\"a\\\\b\"@x.org", "\"a\\\\b\"@x.org"),
	OK("\"a\\b\"@x.org", "ab@x.org"),
	OK("\"\"@x.org", "\"\"@x.org"),
	OK("\"john..doe\"@x.org", "\"john..doe\"@x.org"),
	OK("\".john\"@x.org", "\".john\"@x.org"),
	OK("\"a@b\"@x.org", "\"a@b\"@x.org"),
	OK("\"john\".\"doe\"@x.org", "john.doe@x.org"),
	OK("\"john doe\".smith@x.org", "\"john doe.smith\"@x.org"),
	/* UTF-8 (RFC 6532, SMTPUTF8) */
	OK("J\xc3\xbcrgen <j\xc3\xbcrgen@b\xc3\xbc\x63her.example>",
	   "j\xc3\xbcrgen@b\xc3\xbc\x63her.example"),
	OK("\xe7\x94\xb0\xe4\xb8\xad <\xe7\x94\xb0\xe4\xb8\xad@"
	   "\xe4\xbe\x8b\xe3\x81\x88.JP>",
	   "\xe7\x94\xb0\xe4\xb8\xad@\xe4\xbe\x8b\xe3\x81\x88.jp"),
	OK("\"J\xc3\xb6rg M\xc3\xbcller\" <joerg@example.de>",
	   "joerg@example.de"),
	/* raw Latin-1 in a display name or comment: not UTF-8, but not an
	 * address either */
	OK("J\xf6rg <joerg@example.de>", "joerg@example.de"),
	OK("joerg@example.de (J\xf6rg)", "joerg@example.de"),
	/* an address in a display name does not count */
	OK("\"alice@example.com\" <mallory@evil.org>", "mallory@evil.org"),
	OK("\"<alice@example.com>\" <mallory@evil.org>", "mallory@evil.org"),
	OK("\"alice@example.com, bob@example.com\" <mallory@evil.org>",
	   "mallory@evil.org"),

	/* nothing, or not a field body */
	BAD(""),
	BAD("   "),
	BAD("\r\n"),
	BAD("(just a comment)"),
	BAD(","),
	BAD(" , , "),
	BAD("Alice"),
	BAD("alice"),
	BAD("\"Alice\""),
	/* broken addresses */
	BAD("<<a@b>"),
	BAD("<a@b>>"),
	BAD("a@"),
	BAD("a@ (comment)"),
	BAD("@b"),
	BAD("<@b>"),
	BAD("<>"),
	BAD("Alice <>"),
	BAD("a@b@c"),
	BAD("a@example..com"),
	BAD(".a@example.com"),
	BAD("a.@example.com"),
	BAD("a..b@example.com"),
	BAD("a@example.com."),
	BAD("a@.example.com"),
	BAD("a b@example.com"),
	BAD("a@[]"),
	BAD("a@[1.2.3.4"),
	BAD("a@[a[b]"),
	BAD("a@[a\\]b]"),
	BAD("<@:alice@example.com>"),
	BAD("<@r1.example alice@example.com>"),
	BAD("<@r1.example,alice@example.com>"),
	/* unbalanced quotes, parentheses, angle brackets */
	BAD("\"unbalanced@example.com"),
	BAD("Alice \"Smith <alice@example.com>"),
	BAD("\"Alice\\\" <alice@example.com>"),
	BAD("alice@example.com (unclosed"),
	BAD("alice@example.com (a (b)"),
	BAD("alice@example.com )"),
	BAD("alice@example.com (a))"),
	BAD("<alice@example.com"),
	BAD("Alice <alice@example.com"),
	BAD("Alice <alice@example.com, bob@example.org"),
	BAD("alice@example.com>"),
	/* more than one mailbox in the wrong way */
	BAD("<a@b> <c@d>"),
	BAD("a@b c@d"),
	BAD("a@b <c@d>"),
	BAD("alice@example.com <mallory@evil.org>"),
	BAD("Alice <alice@example.com> bob@example.org"),
	/* groups */
	BAD("Team: a@example.com, c@example.org"),
	BAD("A: B: c@d;;"),
	BAD("Alice <alice@example.com>;"),
	BAD("Alice: <alice@example.com>"),
	BAD(": a@example.com;"),
	BAD("Team: a@example.com; b@example.com"),
	/* line ends that are not folding, controls */
	BAD("alice@example.com\r\nbob@example.org"),
	BAD("alice@example.com\r\n\r\n"),
	BAD("alice@example.com\rbob"),
	BAD("alice@example.com\r"),
	BAD("\"alice\r\nx\"@example.com"),
	BAD_S("ali\0ce@example.com"),
	BAD_S("alice@example.com\0"),
	BAD_S("alice@example.com (\0)"),
	BAD("alice@exa\x01mple.com"),
	BAD("Alice\x1b[2J <alice@example.com>"),
	BAD("\"a\tb\"@x.org"),
	/* not UTF-8 in an address */
	BAD("\xff@example.com"),
	BAD("j\xfcrgen@example.de"),
	BAD("alice@ex\xc3\x28mple.com"),
	BAD("\"j\xfcrgen\"@example.de"),
	BAD("alice@[192.0.2.\xff]"),
	/* an encoded word is no address, nor a quoted-pair outside quotes */
	BAD("=?UTF-8?Q?a,b?=@example.com"),
	BAD("=?UTF-8?Q?a?= b@example.com"),
	BAD("alice\\@example.com"),
	/* a non-conforming encoded word with specials in it is split where
	 * RFC 5322 splits it, as a reader's MUA does before decoding */
	BAD("=?UTF-8?Q?Doe,_J.?= <jd@example.com>"),
	BAD("=?utf-8?q?alice@example.com?= <mallory@evil.org>"),
	BAD("=?utf-8?q?x,bob@evil.org,?= <alice@example.com>"),
	BAD("=?utf-8?q?<bob@evil.org>?= <alice@example.com>"),
	/* a domain literal is no display name */
	BAD("[Jira] Bob <bob@example.com>"),
};

static void check_parse(const char *what, const char *value, size_t len,
			int ret, const char *const *want)
{
	struct header_addrs out;
	size_t nwant = 0;
	int r;

	while (nwant < MAXW && want[nwant] != NULL)
		nwant++;
	memset(&out, 0xaa, sizeof(out));
	out.n = 0;
	r = header_addr_parse(value, len, &out);
	CHECK_INT(r, ret, what);
	if (r != 0 || ret != 0) {
		for (size_t i = 0; r == 0 && i < out.n; i++)
			fprintf(stderr, "  (got \"%s\")\n", out.addr[i]);
		if (ret != 0)
			CHECK_INT(out.n, 0, what);
		return;
	}
	CHECK_INT(out.n, nwant, what);
	for (size_t i = 0; i < out.n && i < nwant; i++)
		CHECK_STR(out.addr[i], want[i], what);
}

static void test_parse_table(void)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]);
	     i++) {
		const struct parse_case *c = &parse_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->value);
		char what[300];

		snprintf(what, sizeof(what), "\"%s\"", c->value);
		check_parse(what, c->value, len, c->ret, c->want);
	}
}

/* What header_addr_parse writes is an address it reads back as itself,
 * bare or in angle brackets. */
static void test_canonical(void)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]);
	     i++) {
		const struct parse_case *c = &parse_cases[i];

		for (size_t k = 0; k < MAXW && c->want[k] != NULL; k++) {
			const char *want[2] = { c->want[k], NULL };
			char buf[HEADER_ADDR_LEN + 8];
			char what[HEADER_ADDR_LEN + 40];

			snprintf(what, sizeof(what), "again \"%s\"",
				 c->want[k]);
			check_parse(what, c->want[k], strlen(c->want[k]), 0,
				    want);
			snprintf(buf, sizeof(buf), "<%s>", c->want[k]);
			check_parse(what, buf, strlen(buf), 0, want);
		}
	}
}

/* Each call appends; a failed call leaves out as it was. */
static void test_append(void)
{
	static const char *const fields[] = {
		"Alice <alice@example.com>",
		"\"Team\" <team@example.com>, bob@example.org",
	};
	struct header_addrs out;
	int r;

	out.n = 0;
	for (size_t i = 0; i < 2; i++) {
		r = header_addr_parse(fields[i], strlen(fields[i]), &out);
		CHECK_INT(r, 0, fields[i]);
	}
	CHECK_INT(out.n, 3, "append");
	CHECK_STR(out.addr[0], "alice@example.com", "append 0");
	CHECK_STR(out.addr[1], "team@example.com", "append 1");
	CHECK_STR(out.addr[2], "bob@example.org", "append 2");
	r = header_addr_parse("carol@example.net, <broken", 26, &out);
	CHECK_INT(r, -1, "append broken");
	CHECK_INT(out.n, 3, "append broken");
}

/* A quoted local part counts as written: quotes and needed escapes in,
 * needless escapes out. */
static const struct {
	const char *unit;	/* repeated inside the quotes */
	size_t count;
	int ret;
} quoted[] = {
	{ " ", 312, 0 },	/* "   ...   "@x.org: 320 */
	{ " ", 313, -1 },
	{ "\\\"", 156, 0 },	/* "\"\"...\""@x.org: 320 */
	{ "\\\"", 157, -1 },
	{ "\\q", 314, 0 },	/* qqq...q@x.org: 320 */
	{ "\\q", 315, -1 },
};

/* HEADER_ADDR_MAX mailboxes in all, and HEADER_ADDR_LEN octets each. */
static void test_limits(void)
{
	static char buf[4096];
	struct header_addrs out;
	char what[80];
	size_t n;
	int r;

	for (size_t count = HEADER_ADDR_MAX - 1; count <= HEADER_ADDR_MAX + 1;
	     count++) {
		n = 0;
		for (size_t i = 0; i < count; i++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n,
					      "%sUser %zu <u%zu@example.com>",
					      i > 0 ? ", " : "", i, i);
		out.n = 0;
		r = header_addr_parse(buf, n, &out);
		snprintf(what, sizeof(what), "%zu mailboxes", count);
		CHECK_INT(r, count <= HEADER_ADDR_MAX ? 0 : -1, what);
		CHECK_INT(out.n, count <= HEADER_ADDR_MAX ? count : 0, what);
		if (r == 0)
			CHECK_STR(out.addr[count - 1],
				  count == HEADER_ADDR_MAX ? "u31@example.com" :
							     "u30@example.com",
				  what);
	}

	/* the limit counts what out already holds */
	out.n = HEADER_ADDR_MAX - 1;
	r = header_addr_parse("a@example.com, b@example.com", 28, &out);
	CHECK_INT(r, -1, "over the limit with what out holds");
	CHECK_INT(out.n, HEADER_ADDR_MAX - 1, "over the limit, out kept");

	/* and so does a group */
	n = (size_t)snprintf(buf, sizeof(buf), "Many:");
	for (size_t i = 0; i <= HEADER_ADDR_MAX; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " g%zu@x.org,",
				      i);
	buf[n++] = ';';
	out.n = 0;
	CHECK_INT(header_addr_parse(buf, n, &out), -1, "group over the limit");

	/* 320 octets: 64 + '@' + 255, then one more */
	for (size_t len = HEADER_ADDR_LEN; len <= HEADER_ADDR_LEN + 1; len++) {
		char addr[HEADER_ADDR_LEN + 2];
		size_t dom = len - 65;

		memset(addr, 'l', 64);
		addr[64] = '@';
		for (size_t i = 0; i < dom; i++)
			addr[65 + i] = i % 50 == 49 && i + 1 < dom ? '.' : 'D';
		addr[len] = '\0';
		n = (size_t)snprintf(buf, sizeof(buf), "Long <%s>", addr);
		out.n = 0;
		r = header_addr_parse(buf, n, &out);
		snprintf(what, sizeof(what), "address of %zu octets", len);
		CHECK_INT(r, len <= HEADER_ADDR_LEN ? 0 : -1, what);
		if (r == 0) {
			for (size_t i = 65; i < len; i++)
				addr[i] = addr[i] == 'D' ? 'd' : addr[i];
			CHECK_STR(out.addr[0], addr, what);
		}
	}

	/* a quoted local part counts as written */
	for (size_t i = 0; i < sizeof(quoted) / sizeof(quoted[0]); i++) {
		n = (size_t)snprintf(buf, sizeof(buf), "\"");
		for (size_t k = 0; k < quoted[i].count; k++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s",
					      quoted[i].unit);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\"@x.org");
		out.n = 0;
		r = header_addr_parse(buf, n, &out);
		snprintf(what, sizeof(what), "quoted local part, %zu x \"%s\"",
			 quoted[i].count, quoted[i].unit);
		CHECK_INT(r, quoted[i].ret, what);
		if (r == 0)
			CHECK_INT(strlen(out.addr[0]), HEADER_ADDR_LEN, what);
	}

	/* a long display name is no problem */
	memset(buf, 'N', 3000);
	n = 3000 + (size_t)snprintf(buf + 3000, sizeof(buf) - 3000,
				    " <alice@example.com>");
	out.n = 0;
	r = header_addr_parse(buf, n, &out);
	CHECK_INT(r, 0, "long display name");
	CHECK_STR(out.addr[0], "alice@example.com", "long display name");
}

/* --- header_addr_equal --- */

static const struct {
	const char *a, *b;
	int fold_local;
	int want;
} equal_cases[] = {
	{ "alice@example.com", "alice@example.com", 0, 1 },
	{ "alice@example.com", "alice@example.com", 1, 1 },
	/* local part: exact (RFC 5321 §2.4), unless folded */
	{ "Alice@example.com", "alice@example.com", 0, 0 },
	{ "Alice@example.com", "alice@example.com", 1, 1 },
	{ "ALICE.SMITH@example.com", "alice.smith@example.com", 1, 1 },
	{ "alice.smith@example.com", "alice_smith@example.com", 1, 0 },
	/* domain: case-insensitive */
	{ "alice@EXAMPLE.com", "alice@example.COM", 0, 1 },
	{ "A@Example.Com", "a@example.com", 0, 0 },
	{ "A@Example.Com", "a@example.com", 1, 1 },
	/* not the same address */
	{ "alice@example.com", "alice@example.org", 1, 0 },
	{ "alice@example.com", "alicex@example.com", 1, 0 },
	{ "alice@example.com", "alice@example.comx", 1, 0 },
	{ "alice@example.com", "alice@sub.example.com", 1, 0 },
	{ "alice@example.com", "", 1, 0 },
	{ "", "", 1, 0 },
	/* no domain: never equal */
	{ "alice", "alice", 0, 0 },
	{ "alice", "alice@example.com", 1, 0 },
	/* quoted local parts: an '@' in one is not the domain's */
	{ "\"a b\"@x.org", "\"a b\"@X.ORG", 0, 1 },
	{ "\"A@b\"@x.org", "\"a@b\"@x.org", 1, 1 },
	{ "\"A@b\"@x.org", "\"a@b\"@x.org", 0, 0 },
	{ "\"a@b\"@x.org", "a@b", 0, 0 },
	{ "\"a\\\"@b\"@x.org", "\"a\\\"@b\"@x.org", 0, 1 },
	{ "\"a@b\"@x.org", "\"a@b\"@b", 0, 0 },
	/* only ASCII is folded */
	{ "j\xc3\xbcrgen@example.de", "J\xc3\xbcrgen@example.de", 1, 1 },
	{ "J\xc3\x9cRGEN@example.de", "j\xc3\xbcrgen@example.de", 1, 0 },
	{ "alice@B\xc3\x9c\x43HER.example", "alice@b\xc3\x9c\x63her.example", 0,
	  1 },
	{ "alice@[IPv6:2001:db8::1]", "alice@[ipv6:2001:DB8::1]", 0, 1 },
};

static void test_equal(void)
{
	for (size_t i = 0; i < sizeof(equal_cases) / sizeof(equal_cases[0]);
	     i++) {
		char what[200];

		snprintf(what, sizeof(what), "equal(\"%s\", \"%s\", %d)",
			 equal_cases[i].a, equal_cases[i].b,
			 equal_cases[i].fold_local);
		CHECK_INT(header_addr_equal(equal_cases[i].a, equal_cases[i].b,
					    equal_cases[i].fold_local),
			  equal_cases[i].want, what);
		snprintf(what, sizeof(what), "equal(\"%s\", \"%s\", %d)",
			 equal_cases[i].b, equal_cases[i].a,
			 equal_cases[i].fold_local);
		CHECK_INT(header_addr_equal(equal_cases[i].b, equal_cases[i].a,
					    equal_cases[i].fold_local),
			  equal_cases[i].want, what);
	}
}

int main(void)
{
	test_parse_table();
	test_canonical();
	test_append();
	test_limits();
	test_equal();
	return test_done("test_header_addr");
}
