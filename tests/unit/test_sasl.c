#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"
#include "sasl.h"
#include "test.h"

#define RAW_MAX 4096

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i] != 0)
			return false;
	return true;
}

static void test_mech(void)
{
	static const struct {
		const char *name;
		enum sasl_mech want;
	} cases[] = {
		{ "PLAIN", SASL_MECH_PLAIN },
		{ "plain", SASL_MECH_PLAIN },
		{ "Plain", SASL_MECH_PLAIN },
		{ "pLaIn", SASL_MECH_PLAIN },
		{ "LOGIN", SASL_MECH_LOGIN },
		{ "login", SASL_MECH_LOGIN },
		{ "LoGiN", SASL_MECH_LOGIN },
		{ "", SASL_MECH_NONE },
		{ "PLAI", SASL_MECH_NONE },
		{ "PLAINX", SASL_MECH_NONE },
		{ "PLAIN ", SASL_MECH_NONE },
		{ " PLAIN", SASL_MECH_NONE },
		{ "LOGI", SASL_MECH_NONE },
		{ "LOGINS", SASL_MECH_NONE },
		{ "CRAM-MD5", SASL_MECH_NONE },
		{ "XOAUTH2", SASL_MECH_NONE },
		{ "GSSAPI", SASL_MECH_NONE },
		{ "pla\xc4\xb1n", SASL_MECH_NONE },	/* dotless i */
		{ "PLA\xc4\xb0N", SASL_MECH_NONE },	/* dotted capital I */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(sasl_mech_parse(cases[i].name), cases[i].want,
			  cases[i].name);
	CHECK_INT(sasl_mech_parse(NULL), SASL_MECH_NONE, "NULL");
}

struct plain_case {
	const char *what;
	const char *raw;	/* encoded by the test; NULL: use b64 */
	size_t raw_len;
	const char *b64;
	enum sasl_status want;
	const char *user;
	const char *password;
};

#define RAW(s) s, sizeof(s) - 1, NULL
#define B64(s) NULL, 0, s

static const struct plain_case plain_cases[] = {
	/* RFC 4616 §4 */
	{ "no authzid", RAW("\0tim\0tanstaaftanstaaf"), SASL_OK,
	  "tim", "tanstaaftanstaaf" },
	{ "RFC 4616 example, authzid Kurt != test",
	  RAW("Kurt\0test\0password"), SASL_AUTHZID_MISMATCH, NULL, NULL },
	{ "authzid == authcid", RAW("tim\0tim\0secret"), SASL_OK,
	  "tim", "secret" },
	{ "authzid differs in case", RAW("Tim\0tim\0secret"),
	  SASL_AUTHZID_MISMATCH, NULL, NULL },
	{ "authzid is a prefix", RAW("ti\0tim\0secret"),
	  SASL_AUTHZID_MISMATCH, NULL, NULL },
	{ "authcid is a prefix", RAW("timo\0tim\0secret"),
	  SASL_AUTHZID_MISMATCH, NULL, NULL },
	{ "authzid with domain", RAW("tim@example.com\0tim\0secret"),
	  SASL_AUTHZID_MISMATCH, NULL, NULL },
	{ "user@domain authcid", RAW("\0tim@example.com\0secret"), SASL_OK,
	  "tim@example.com", "secret" },
	/* NUL count */
	{ "empty", RAW(""), SASL_BAD_FORMAT, NULL, NULL },
	{ "no NUL", RAW("timsecret"), SASL_BAD_FORMAT, NULL, NULL },
	{ "one NUL", RAW("tim\0secret"), SASL_BAD_FORMAT, NULL, NULL },
	{ "one leading NUL", RAW("\0timsecret"), SASL_BAD_FORMAT, NULL,
	  NULL },
	{ "three NULs", RAW("\0tim\0secret\0"), SASL_BAD_FORMAT, NULL, NULL },
	{ "NUL in password", RAW("\0tim\0sec\0ret"), SASL_BAD_FORMAT, NULL,
	  NULL },
	{ "three NULs with authzid", RAW("tim\0tim\0s\0"), SASL_BAD_FORMAT,
	  NULL, NULL },
	{ "only NULs", RAW("\0\0\0"), SASL_BAD_FORMAT, NULL, NULL },
	{ "two NULs only", RAW("\0\0"), SASL_BAD_FORMAT, NULL, NULL },
	{ "single NUL", RAW("\0"), SASL_BAD_FORMAT, NULL, NULL },
	/* control characters in a login name would reach logs, headers */
	{ "CRLF in user", RAW("\0tim\r\nX-Evil: 1\0secret"),
	  SASL_BAD_FORMAT, NULL, NULL },
	{ "DEL in user", RAW("\0tim\x7f\0secret"), SASL_BAD_FORMAT, NULL,
	  NULL },
	{ "control chars in password are fine", RAW("\0tim\0se\tc\r"),
	  SASL_OK, "tim", "se\tc\r" },
	/* empty parts */
	{ "empty authcid", RAW("\0\0secret"), SASL_BAD_FORMAT, NULL, NULL },
	{ "empty authcid with authzid", RAW("tim\0\0secret"),
	  SASL_BAD_FORMAT, NULL, NULL },
	{ "empty password", RAW("\0tim\0"), SASL_OK, "tim", "" },
	{ "empty password with authzid", RAW("tim\0tim\0"), SASL_OK, "tim",
	  "" },
	/* octets the protocol carries as they are */
	{ "UTF-8", RAW("\0j\xc3\xbcrgen\0p\xc3\xa4\xc3\x9f w\xc3\xb6rd"),
	  SASL_OK, "j\xc3\xbcrgen", "p\xc3\xa4\xc3\x9f w\xc3\xb6rd" },
	{ "Latin-1 password", RAW("\0tim\0\xe4\xf6\xfc\xff\x80"), SASL_OK,
	  "tim", "\xe4\xf6\xfc\xff\x80" },
	{ "0x80+ user", RAW("\xff\xfe\0\xff\xfe\0x"), SASL_OK, "\xff\xfe",
	  "x" },
	{ "spaces and tab in password", RAW("\0tim\0 a b\t"), SASL_OK, "tim",
	  " a b\t" },
	{ "CR LF in password", RAW("\0tim\0a\r\nb"), SASL_OK, "tim",
	  "a\r\nb" },
	/* base64 */
	{ "unpadded", B64("AHRpbQBz"), SASL_OK, "tim", "s" },
	{ "missing padding", B64("AHRpbQBzZQ"), SASL_BAD_BASE64, NULL, NULL },
	{ "trailing CRLF", B64("AHRpbQBz\r\n"), SASL_BAD_BASE64, NULL, NULL },
	{ "space inside", B64("AHRp bQBz"), SASL_BAD_BASE64, NULL, NULL },
	{ "base64url", B64("AHRpbQB-"), SASL_BAD_BASE64, NULL, NULL },
	{ "RFC 4954 empty response marker", B64("="), SASL_BAD_BASE64, NULL,
	  NULL },
	{ "RFC 4954 cancel", B64("*"), SASL_BAD_BASE64, NULL, NULL },
	{ "non-zero pad bits", B64("AHRpbQBzZR=="), SASL_BAD_BASE64, NULL,
	  NULL },
	{ "0x80 in base64", B64("AHRpbQB\x80"), SASL_BAD_BASE64, NULL, NULL },
};

static void run_plain(const char *what, const unsigned char *raw,
		      size_t raw_len, const char *b64,
		      enum sasl_status want, const char *user,
		      const char *password)
{
	static char enc[BASE64_ENCODED_LEN(RAW_MAX) + 1];
	struct sasl_credentials creds;
	enum sasl_status st;
	size_t len;

	if (b64 == NULL) {
		len = base64_encode(raw, raw_len, enc);
		b64 = enc;
	} else {
		len = strlen(b64);
	}
	memset(&creds, 0xaa, sizeof(creds));
	st = sasl_plain_decode(b64, len, &creds);
	CHECK_INT(st, want, what);
	if (want == SASL_OK && st == SASL_OK) {
		CHECK_STR(creds.user, user, what);
		CHECK_STR(creds.password, password, what);
	}
	if (st != SASL_OK)
		CHECK(all_zero(&creds, sizeof(creds)),
		      "%s: creds not wiped", what);
}

static void test_plain_table(void)
{
	for (size_t i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]);
	     i++) {
		const struct plain_case *c = &plain_cases[i];

		run_plain(c->what, (const unsigned char *)c->raw, c->raw_len,
			  c->b64, c->want, c->user, c->password);
	}
}

/* Builds authzid NUL authcid NUL passwd from run lengths of 'z', 'u' and
 * 'p'. */
static size_t build_plain(unsigned char *raw, size_t zlen, size_t ulen,
			  size_t plen)
{
	size_t n = 0;

	memset(raw + n, 'z', zlen);
	n += zlen;
	raw[n++] = '\0';
	memset(raw + n, 'u', ulen);
	n += ulen;
	raw[n++] = '\0';
	memset(raw + n, 'p', plen);
	n += plen;
	return n;
}

static void test_plain_limits(void)
{
	static const struct {
		const char *what;
		size_t zlen, ulen, plen;
		bool authzid_is_user;
		enum sasl_status want;
	} cases[] = {
		{ "user at limit", 0, AUTH_USER_MAX, 1, false, SASL_OK },
		{ "user over limit", 0, AUTH_USER_MAX + 1, 1, false,
		  SASL_TOO_LONG },
		{ "password at limit", 0, 1, AUTH_PASSWORD_MAX, false,
		  SASL_OK },
		{ "password over limit", 0, 1, AUTH_PASSWORD_MAX + 1, false,
		  SASL_TOO_LONG },
		{ "all at limit", AUTH_USER_MAX, AUTH_USER_MAX,
		  AUTH_PASSWORD_MAX, true, SASL_OK },
		{ "authzid over limit", AUTH_USER_MAX + 1, AUTH_USER_MAX + 1,
		  1, true, SASL_TOO_LONG },
		{ "authzid over limit, user not", AUTH_USER_MAX + 1, 1, 1,
		  false, SASL_TOO_LONG },
		/* 1539 octets: 2052 base64 characters, the longest input
		 * accepted for decoding */
		{ "one over the decoded maximum", AUTH_USER_MAX + 1,
		  AUTH_USER_MAX, AUTH_PASSWORD_MAX, false, SASL_TOO_LONG },
		{ "everything over", AUTH_USER_MAX * 2, AUTH_USER_MAX * 2,
		  AUTH_PASSWORD_MAX * 2, false, SASL_TOO_LONG },
	};
	static unsigned char raw[RAW_MAX];
	static char user[AUTH_USER_MAX * 2 + 1];
	static char password[AUTH_PASSWORD_MAX * 2 + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = build_plain(raw, cases[i].zlen, cases[i].ulen,
				       cases[i].plen);

		if (cases[i].authzid_is_user)
			memset(raw, 'u', cases[i].zlen);
		memset(user, 'u', cases[i].ulen);
		user[cases[i].ulen] = '\0';
		memset(password, 'p', cases[i].plen);
		password[cases[i].plen] = '\0';
		run_plain(cases[i].what, raw, n, NULL, cases[i].want, user,
			  password);
	}
}

/* Input longer than any valid PLAIN message is refused before decoding:
 * invalid base64 of that length is TOO_LONG, not BAD_BASE64. */
static void test_plain_long_input(void)
{
	static char in[RAW_MAX];
	const size_t b64_max =
		BASE64_ENCODED_LEN(AUTH_USER_MAX * 2 + AUTH_PASSWORD_MAX + 2);
	struct sasl_credentials creds;

	memset(in, '!', sizeof(in));
	memset(&creds, 0xaa, sizeof(creds));
	CHECK_INT(sasl_plain_decode(in, b64_max + 1, &creds), SASL_TOO_LONG,
		  "invalid input, one over the maximum length");
	CHECK(all_zero(&creds, sizeof(creds)), "too long: creds not wiped");
	CHECK_INT(sasl_plain_decode(in, sizeof(in), &creds), SASL_TOO_LONG,
		  "invalid input, far over the maximum length");
	CHECK_INT(sasl_plain_decode(in, b64_max, &creds), SASL_BAD_BASE64,
		  "invalid input at the maximum length");

	memset(in, 'A', sizeof(in));
	CHECK_INT(sasl_plain_decode(in, b64_max + 4, &creds), SASL_TOO_LONG,
		  "valid base64, 4 over the maximum length");
	CHECK_INT(sasl_plain_decode(in, b64_max, &creds), SASL_BAD_FORMAT,
		  "all NULs at the maximum length");
}

struct login_case {
	const char *what;
	const char *raw;
	size_t raw_len;
	const char *b64;
	size_t max;
	enum sasl_status want;
	const char *out;
};

static const struct login_case login_cases[] = {
	{ "user", RAW("tim"), AUTH_USER_MAX, SASL_OK, "tim" },
	{ "password", RAW("tanstaaf"), AUTH_PASSWORD_MAX, SASL_OK,
	  "tanstaaf" },
	{ "empty user", RAW(""), AUTH_USER_MAX, SASL_BAD_FORMAT, NULL },
	{ "empty password", RAW(""), AUTH_PASSWORD_MAX, SASL_OK, "" },
	{ "LF in user", RAW("tim\nroot"), AUTH_USER_MAX, SASL_BAD_FORMAT,
	  NULL },
	{ "tab in password", RAW("a\tb"), AUTH_PASSWORD_MAX, SASL_OK,
	  "a\tb" },
	{ "NUL at end", RAW("tim\0"), AUTH_USER_MAX, SASL_BAD_FORMAT, NULL },
	{ "NUL at start", RAW("\0tim"), AUTH_USER_MAX, SASL_BAD_FORMAT,
	  NULL },
	{ "only NUL", RAW("\0"), AUTH_PASSWORD_MAX, SASL_BAD_FORMAT, NULL },
	{ "PLAIN sent to LOGIN", RAW("\0tim\0secret"), AUTH_PASSWORD_MAX,
	  SASL_BAD_FORMAT, NULL },
	{ "UTF-8 user", RAW("j\xc3\xbcrgen"), AUTH_USER_MAX, SASL_OK,
	  "j\xc3\xbcrgen" },
	{ "0x80+ password", RAW("\xe4\xf6\xfc\xff\x80"), AUTH_PASSWORD_MAX,
	  SASL_OK, "\xe4\xf6\xfc\xff\x80" },
	{ "user with domain", RAW("tim@example.com"), AUTH_USER_MAX,
	  SASL_OK, "tim@example.com" },
	{ "small max, at it", RAW("timo"), 4, SASL_OK, "timo" },
	{ "small max, over it", RAW("timos"), 4, SASL_TOO_LONG, NULL },
	{ "prompt Username:", B64(SASL_LOGIN_PROMPT_USER), AUTH_PASSWORD_MAX,
	  SASL_OK, "Username:" },
	{ "prompt Password:", B64(SASL_LOGIN_PROMPT_PASS), AUTH_PASSWORD_MAX,
	  SASL_OK, "Password:" },
	{ "missing padding", B64("dGltbw"), AUTH_USER_MAX, SASL_BAD_BASE64,
	  NULL },
	{ "trailing space", B64("dGlt "), AUTH_USER_MAX, SASL_BAD_BASE64,
	  NULL },
	{ "cancel", B64("*"), AUTH_USER_MAX, SASL_BAD_BASE64, NULL },
	{ "non-zero pad bits", B64("dGltbx=="), AUTH_USER_MAX,
	  SASL_BAD_BASE64, NULL },
};

static void run_login(const char *what, const unsigned char *raw,
		      size_t raw_len, const char *b64, size_t max,
		      enum sasl_status want, const char *want_out)
{
	static char enc[BASE64_ENCODED_LEN(RAW_MAX) + 1];
	char out[AUTH_PASSWORD_MAX + 2];	/* one canary octet */
	enum sasl_status st;
	size_t len;

	if (b64 == NULL) {
		len = base64_encode(raw, raw_len, enc);
		b64 = enc;
	} else {
		len = strlen(b64);
	}
	memset(out, 0xaa, sizeof(out));
	st = sasl_login_decode(b64, len, out, max);
	CHECK_INT(st, want, what);
	if (want == SASL_OK && st == SASL_OK)
		CHECK_STR(out, want_out, what);
	if (st != SASL_OK)
		CHECK(all_zero(out, max + 1), "%s: out not wiped", what);
	CHECK_INT((unsigned char)out[max + 1], 0xaa, "wrote past max + 1");
}

static void test_login_table(void)
{
	for (size_t i = 0; i < sizeof(login_cases) / sizeof(login_cases[0]);
	     i++) {
		const struct login_case *c = &login_cases[i];

		run_login(c->what, (const unsigned char *)c->raw, c->raw_len,
			  c->b64, c->max, c->want, c->out);
	}
}

static void test_login_limits(void)
{
	static const struct {
		const char *what;
		size_t len, max;
		enum sasl_status want;
	} cases[] = {
		{ "user at limit", AUTH_USER_MAX, AUTH_USER_MAX, SASL_OK },
		{ "user over limit", AUTH_USER_MAX + 1, AUTH_USER_MAX,
		  SASL_TOO_LONG },
		{ "user far over limit", AUTH_PASSWORD_MAX, AUTH_USER_MAX,
		  SASL_TOO_LONG },
		{ "password at limit", AUTH_PASSWORD_MAX, AUTH_PASSWORD_MAX,
		  SASL_OK },
		{ "password over limit", AUTH_PASSWORD_MAX + 1,
		  AUTH_PASSWORD_MAX, SASL_TOO_LONG },
		{ "password far over limit", AUTH_PASSWORD_MAX * 3,
		  AUTH_PASSWORD_MAX, SASL_TOO_LONG },
	};
	static unsigned char raw[RAW_MAX];
	static char want[RAW_MAX + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(raw, 'x', cases[i].len);
		memset(want, 'x', cases[i].len);
		want[cases[i].len] = '\0';
		run_login(cases[i].what, raw, cases[i].len, NULL,
			  cases[i].max, cases[i].want, want);
	}
}

static void test_login_long_input(void)
{
	static char in[RAW_MAX];
	char out[AUTH_PASSWORD_MAX + 1];

	memset(in, '!', sizeof(in));
	CHECK_INT(sasl_login_decode(in, BASE64_ENCODED_LEN(AUTH_USER_MAX) + 1,
				    out, AUTH_USER_MAX),
		  SASL_TOO_LONG, "invalid user input over the length");
	CHECK_INT(sasl_login_decode(in, BASE64_ENCODED_LEN(AUTH_USER_MAX),
				    out, AUTH_USER_MAX),
		  SASL_BAD_BASE64, "invalid user input at the length");
	CHECK_INT(sasl_login_decode(in,
				    BASE64_ENCODED_LEN(AUTH_PASSWORD_MAX) + 1,
				    out, AUTH_PASSWORD_MAX),
		  SASL_TOO_LONG, "invalid password input over the length");
}

int main(void)
{
	test_mech();
	test_plain_table();
	test_plain_limits();
	test_plain_long_input();
	test_login_table();
	test_login_limits();
	test_login_long_input();
	return test_done("test_sasl");
}
