/* The daemon <-> auth worker protocol: what encodes decodes to the same
 * thing, and every malformed message is refused with the output wiped. */
#include "autoconf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth_proto.h"
#include "test.h"

#define HDR(v, t) .version = (v), .type = (t)
#define REQ HDR(AUTH_PROTO_VERSION, AUTH_MSG_REQUEST)
#define REP HDR(AUTH_PROTO_VERSION, AUTH_MSG_REPLY)

#define T_USER AUTH_TAG_USER
#define T_PW AUTH_TAG_PASSWORD
#define T_IP AUTH_TAG_CLIENT_IP
#define T_RES AUTH_TAG_RESULT
#define T_REASON AUTH_TAG_REASON
#define T_ADDR AUTH_TAG_ADDRESS

/* One field of a hand-built message: s (sizeof, so NULs inside count) or,
 * with s NULL, n octets of 'x'; declared overrides the length octets;
 * repeat writes it that many times. */
struct fld {
	bool set;
	int tag;
	const char *s;
	size_t n;
	long declared;
	int repeat;
};

#define F(t, str) { true, (t), (str), sizeof(str) - 1, -1, 1 }
#define FILL(t, len) { true, (t), NULL, (len), -1, 1 }
#define DECL(t, str, d) { true, (t), (str), sizeof(str) - 1, (d), 1 }
#define REPEAT(t, str, k) { true, (t), (str), sizeof(str) - 1, -1, (k) }
#define RES(v) F(T_RES, v)

#define OK_RES "\x00"
#define PERM_RES "\x01"
#define TEMP_RES "\x02"

struct msg_spec {
	const char *name;
	int version;
	int type;
	struct fld f[8];
	const char *tail;	/* raw octets after the fields */
	size_t tail_len;
	long cut;		/* > 0: keep the first cut octets; < 0: none */
};

#define TAIL(str) .tail = (str), .tail_len = sizeof(str) - 1

static unsigned char msg[70000];

static void put(size_t *len, const void *p, size_t n)
{
	memcpy(msg + *len, p, n);
	*len += n;
}

static size_t build(const struct msg_spec *m)
{
	unsigned char hdr[6] = { (unsigned char)m->version,
				 (unsigned char)m->type, 0, 0, 0, 42 };
	size_t len = 0;

	put(&len, hdr, sizeof(hdr));
	for (size_t i = 0; i < 8 && m->f[i].set; i++) {
		const struct fld *f = &m->f[i];
		size_t declared = f->declared >= 0 ? (size_t)f->declared : f->n;

		for (int k = 0; k < f->repeat; k++) {
			unsigned char fh[3] = { (unsigned char)f->tag,
						(unsigned char)(declared >> 8),
						(unsigned char)declared };
			put(&len, fh, sizeof(fh));
			if (f->s != NULL)
				put(&len, f->s, f->n);
			else {
				memset(msg + len, 'x', f->n);
				len += f->n;
			}
		}
	}
	if (m->tail != NULL)
		put(&len, m->tail, m->tail_len);
	if (m->cut < 0)
		len = 0;
	else if (m->cut > 0 && (size_t)m->cut < len)
		len = (size_t)m->cut;
	return len;
}

static bool is_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

/* What a failed decode leaves: zeros, and a reply reads as TEMPFAIL. */
static bool request_wiped(const struct auth_request *req)
{
	return is_zero(req, sizeof(*req));
}

static bool reply_wiped(const struct auth_reply *rep)
{
	struct auth_reply want;

	memset(&want, 0, sizeof(want));
	want.result = AUTH_TEMPFAIL;
	return memcmp(rep, &want, sizeof(want)) == 0;
}

#define VALID_USER F(T_USER, "alice")
#define VALID_PW F(T_PW, "secret")
#define VALID_IP F(T_IP, "192.0.2.1")

static const struct msg_spec bad_requests[] = {
	{ "empty message", REQ, .cut = -1 },
	{ "one octet", REQ, .cut = 1 },
	{ "header cut short", REQ, .cut = 5 },
	{ "header only", REQ },
	{ "version 0", HDR(0, AUTH_MSG_REQUEST),
	  .f = { VALID_USER, VALID_PW, VALID_IP } },
	{ "version 2", HDR(2, AUTH_MSG_REQUEST),
	  .f = { VALID_USER, VALID_PW, VALID_IP } },
	{ "type reply", REP, .f = { VALID_USER, VALID_PW, VALID_IP } },
	{ "type 0", HDR(AUTH_PROTO_VERSION, 0),
	  .f = { VALID_USER, VALID_PW, VALID_IP } },
	{ "type 3", HDR(AUTH_PROTO_VERSION, 3),
	  .f = { VALID_USER, VALID_PW, VALID_IP } },
	{ "field header cut after tag", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP }, TAIL("\x01") },
	{ "field header cut in length", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP }, TAIL("\x01\x00") },
	{ "value cut short", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP }, .cut = 6 + 8 + 9 + 11 },
	{ "length past end by one", REQ,
	  .f = { VALID_USER, VALID_PW, DECL(T_IP, "192.0.2.1", 10) } },
	{ "length 0xffff past end", REQ,
	  .f = { VALID_USER, DECL(T_PW, "secret", 0xffff), VALID_IP } },
	{ "length past end, first field", REQ,
	  .f = { DECL(T_USER, "alice", 6), VALID_PW, VALID_IP } },
	{ "unknown tag 0", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP, F(0, "x") } },
	{ "unknown tag 7", REQ,
	  .f = { VALID_USER, F(7, ""), VALID_PW, VALID_IP } },
	{ "unknown tag 255", REQ,
	  .f = { F(255, "x"), VALID_USER, VALID_PW, VALID_IP } },
	{ "reply tag RESULT in request", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP, RES(OK_RES) } },
	{ "reply tag REASON in request", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP, F(T_REASON, "r") } },
	{ "reply tag ADDRESS in request", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP, F(T_ADDR, "a@b") } },
	{ "repeated user", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP, F(T_USER, "bob") } },
	{ "repeated user, same value", REQ,
	  .f = { VALID_USER, VALID_USER, VALID_PW, VALID_IP } },
	{ "repeated password", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP, F(T_PW, "other") } },
	{ "repeated client ip", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP, F(T_IP, "::1") } },
	{ "missing user", REQ, .f = { VALID_PW, VALID_IP } },
	{ "missing password", REQ, .f = { VALID_USER, VALID_IP } },
	{ "missing client ip", REQ, .f = { VALID_USER, VALID_PW } },
	{ "NUL inside user", REQ,
	  .f = { F(T_USER, "ali\0ce"), VALID_PW, VALID_IP } },
	{ "NUL at end of user", REQ,
	  .f = { F(T_USER, "alice\0"), VALID_PW, VALID_IP } },
	{ "NUL inside password", REQ,
	  .f = { VALID_USER, F(T_PW, "sec\0ret"), VALID_IP } },
	{ "NUL inside client ip", REQ,
	  .f = { VALID_USER, VALID_PW, F(T_IP, "192.0\0.2.1") } },
	{ "user too long", REQ,
	  .f = { FILL(T_USER, AUTH_USER_MAX + 1), VALID_PW, VALID_IP } },
	{ "password too long", REQ,
	  .f = { VALID_USER, FILL(T_PW, AUTH_PASSWORD_MAX + 1), VALID_IP } },
	{ "client ip too long", REQ,
	  .f = { VALID_USER, VALID_PW, FILL(T_IP, AUTH_IP_MAX + 1) } },
	{ "trailing NUL octet", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP }, TAIL("\x00") },
	{ "trailing text", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP }, TAIL("xyzzy") },
	{ "user of 20000 octets", REQ,
	  .f = { VALID_USER, VALID_PW, VALID_IP, FILL(T_USER, 20000) } },
};

static const struct msg_spec bad_replies[] = {
	{ "empty message", REP, .cut = -1 },
	{ "header cut short", REP, .cut = 5 },
	{ "header only", REP },
	{ "version 0", HDR(0, AUTH_MSG_REPLY), .f = { RES(PERM_RES) } },
	{ "version 2", HDR(2, AUTH_MSG_REPLY), .f = { RES(PERM_RES) } },
	{ "type request", REQ, .f = { RES(PERM_RES) } },
	{ "type 0", HDR(AUTH_PROTO_VERSION, 0), .f = { RES(PERM_RES) } },
	{ "missing result", REP, .f = { F(T_REASON, "why") } },
	{ "result length 0", REP, .f = { F(T_RES, "") } },
	{ "result length 2", REP, .f = { F(T_RES, "\x01\x01") } },
	{ "result value 3", REP, .f = { RES("\x03") } },
	{ "result value 255", REP, .f = { RES("\xff") } },
	{ "repeated result", REP, .f = { RES(PERM_RES), RES(PERM_RES) } },
	{ "repeated result, OK after PERMFAIL", REP,
	  .f = { RES(PERM_RES), RES(OK_RES), F(T_USER, "alice") } },
	{ "OK without user", REP, .f = { RES(OK_RES) } },
	{ "OK with empty user", REP, .f = { RES(OK_RES), F(T_USER, "") } },
	{ "PERMFAIL with user", REP,
	  .f = { RES(PERM_RES), F(T_USER, "alice") } },
	{ "TEMPFAIL with user", REP,
	  .f = { F(T_USER, "alice"), RES(TEMP_RES) } },
	{ "repeated user", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice"), F(T_USER, "alice") } },
	{ "repeated reason", REP,
	  .f = { RES(PERM_RES), F(T_REASON, "a"), F(T_REASON, "b") } },
	{ "too many addresses", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice"),
	    REPEAT(T_ADDR, "alice@example.com", AUTH_MAX_ADDRESSES + 1) } },
	{ "empty address", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice"), F(T_ADDR, "") } },
	{ "user too long", REP,
	  .f = { RES(OK_RES), FILL(T_USER, AUTH_USER_MAX + 1) } },
	{ "reason too long", REP,
	  .f = { RES(PERM_RES), FILL(T_REASON, AUTH_REASON_MAX + 1) } },
	{ "address too long", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice"),
	    FILL(T_ADDR, AUTH_ADDRESS_MAX + 1) } },
	{ "NUL inside user", REP, .f = { RES(OK_RES), F(T_USER, "ali\0ce") } },
	{ "NUL inside reason", REP,
	  .f = { RES(PERM_RES), F(T_REASON, "a\0b") } },
	{ "NUL inside address", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice"), F(T_ADDR, "a\0@b") } },
	{ "unknown tag 0", REP, .f = { RES(PERM_RES), F(0, "") } },
	{ "unknown tag 8", REP, .f = { RES(PERM_RES), F(8, "x") } },
	{ "too many groups", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice"),
	    REPEAT(AUTH_TAG_GROUP, "sales", AUTH_MAX_GROUPS + 1) } },
	{ "empty group", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice"), F(AUTH_TAG_GROUP, "") } },
	{ "group too long", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice"),
	    FILL(AUTH_TAG_GROUP, AUTH_GROUP_MAX + 1) } },
	{ "NUL inside group", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice"), F(AUTH_TAG_GROUP, "a\0b") } },
	{ "request tag PASSWORD in reply", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice"), F(T_PW, "secret") } },
	{ "request tag CLIENT_IP in reply", REP,
	  .f = { RES(PERM_RES), F(T_IP, "::1") } },
	{ "length past end", REP,
	  .f = { RES(PERM_RES), DECL(T_REASON, "why", 4) } },
	{ "field header cut short", REP,
	  .f = { RES(PERM_RES) }, TAIL("\x05\x00") },
	{ "trailing octets", REP,
	  .f = { RES(OK_RES), F(T_USER, "alice") }, TAIL("\x00") },
	{ "trailing octets after full field", REP,
	  .f = { RES(PERM_RES) }, TAIL("junk") },
};

static void test_bad_requests(void)
{
	for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]);
	     i++) {
		const struct msg_spec *m = &bad_requests[i];
		size_t len = build(m);
		struct auth_request req;
		int ret;

		memset(&req, 0x5a, sizeof(req));
		ret = auth_request_decode(msg, len, &req);
		CHECK(ret == -1, "request \"%s\": decode got %d, want -1",
		      m->name, ret);
		CHECK(request_wiped(&req), "request \"%s\": output not wiped",
		      m->name);
	}
}

static void test_bad_replies(void)
{
	for (size_t i = 0; i < sizeof(bad_replies) / sizeof(bad_replies[0]);
	     i++) {
		const struct msg_spec *m = &bad_replies[i];
		size_t len = build(m);
		struct auth_reply rep;
		int ret;

		memset(&rep, 0x5a, sizeof(rep));
		ret = auth_reply_decode(msg, len, &rep);
		CHECK(ret == -1, "reply \"%s\": decode got %d, want -1",
		      m->name, ret);
		CHECK(reply_wiped(&rep), "reply \"%s\": output not wiped",
		      m->name);
	}
}

/* The wire format, octet by octet. */
static void test_golden(void)
{
	static const unsigned char want_req[] =
		"\x01\x01\x01\x02\x03\x04"
		"\x01\x00\x05" "alice"
		"\x02\x00\x06" "secret"
		"\x03\x00\x09" "192.0.2.1";
	static const unsigned char want_rep[] =
		"\x01\x02\xff\xff\xff\xfe"
		"\x04\x00\x01" "\x00"
		"\x01\x00\x05" "alice"
		"\x06\x00\x11" "alice@example.com"
		"\x06\x00\x0f" "a.b@example.com";
	struct auth_request req = { .id = 0x01020304, .user = "alice",
				    .password = "secret",
				    .client_ip = "192.0.2.1" };
	struct auth_reply rep = { .id = 0xfffffffe, .result = AUTH_OK,
				  .user = "alice",
				  .address = { "alice@example.com",
					       "a.b@example.com" },
				  .n_address = 2 };
	unsigned char buf[AUTH_PROTO_MAX];
	ssize_t n;

	n = auth_request_encode(&req, buf, sizeof(buf));
	CHECK_INT(n, sizeof(want_req) - 1, "golden request length");
	CHECK(n == sizeof(want_req) - 1 && memcmp(buf, want_req, n) == 0,
	      "golden request: octets differ");
	n = auth_reply_encode(&rep, buf, sizeof(buf));
	CHECK_INT(n, sizeof(want_rep) - 1, "golden reply length");
	CHECK(n == sizeof(want_rep) - 1 && memcmp(buf, want_rep, n) == 0,
	      "golden reply: octets differ");
	explicit_bzero(buf, sizeof(buf));
}

/* Octets 1..255 cycled: every non-NUL value must pass through. */
static void fill_bytes(char *s, size_t n, unsigned start)
{
	for (size_t i = 0; i < n; i++)
		s[i] = (char)(1 + (start + i) % 255);
	s[n] = '\0';
}

struct req_case {
	const char *name;
	uint32_t id;
	const char *user, *password, *client_ip;
	bool max;	/* every field at its maximum length */
};

static const struct req_case req_cases[] = {
	{ "plain", 1, "alice", "correct horse battery staple", "192.0.2.1",
	  false },
	{ "id 0", 0, "alice", "pw", "::1", false },
	{ "id max", UINT32_MAX, "alice", "pw", "2001:db8::1", false },
	{ "empty password (the backend refuses it)", 5, "alice", "",
	  "192.0.2.1", false },
	{ "empty client ip", 6, "alice", "pw", "", false },
	{ "UTF-8 and spaces", 7, "j\xc3\xbcrgen m\xc3\xbcller",
	  "p\xc3\xa4ss w\xc3\xb6rd \t", "192.0.2.1", false },
	{ "max-size fields", 8, NULL, NULL, NULL, true },
};

static void test_request_round_trip(void)
{
	for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		const struct req_case *c = &req_cases[i];
		struct auth_request in, out;
		unsigned char buf[AUTH_PROTO_MAX];
		ssize_t n;
		int ret;

		memset(&in, 0, sizeof(in));
		in.id = c->id;
		if (c->max) {
			fill_bytes(in.user, AUTH_USER_MAX, 0);
			fill_bytes(in.password, AUTH_PASSWORD_MAX, 7);
			fill_bytes(in.client_ip, AUTH_IP_MAX, 100);
		} else {
			strcpy(in.user, c->user);
			strcpy(in.password, c->password);
			strcpy(in.client_ip, c->client_ip);
		}
		n = auth_request_encode(&in, buf, sizeof(buf));
		CHECK(n > 0, "request \"%s\": encode got %zd", c->name, n);
		if (n <= 0)
			continue;
		/* 6 header + 3 * 3 field headers + the strings */
		CHECK_INT(n, 15 + strlen(in.user) + strlen(in.password) +
			  strlen(in.client_ip), c->name);
		memset(&out, 0x5a, sizeof(out));
		ret = auth_request_decode(buf, (size_t)n, &out);
		CHECK(ret == 0, "request \"%s\": decode got %d, want 0",
		      c->name, ret);
		CHECK_INT(out.id, in.id, c->name);
		CHECK_STR(out.user, in.user, c->name);
		CHECK(strcmp(out.password, in.password) == 0,
		      "request \"%s\": password differs", c->name);
		CHECK_STR(out.client_ip, in.client_ip, c->name);

		/* Every proper prefix is a truncated message. */
		for (size_t cut = 0; cut < (size_t)n; cut++) {
			ret = auth_request_decode(buf, cut, &out);
			CHECK(ret == -1 && request_wiped(&out),
			      "request \"%s\" cut to %zu: got %d, want -1 "
			      "and wiped", c->name, cut, ret);
		}
		explicit_bzero(buf, sizeof(buf));
	}
}

struct rep_case {
	const char *name;
	uint32_t id;
	enum auth_result result;
	const char *user;
	const char *reason;
	size_t n_address;	/* "userN@example.com" */
	bool max;
};

static const struct rep_case rep_cases[] = {
	{ "OK, no address", 1, AUTH_OK, "alice", "", 0, false },
	{ "OK, one address", 2, AUTH_OK, "alice", "", 1, false },
	{ "OK with reason", 3, AUTH_OK, "alice", "cached", 3, false },
	{ "PERMFAIL with reason", 4, AUTH_PERMFAIL, "",
	  "Authentication failure", 0, false },
	{ "PERMFAIL without reason", 5, AUTH_PERMFAIL, "", "", 0, false },
	{ "TEMPFAIL", UINT32_MAX, AUTH_TEMPFAIL, "",
	  "ldap backend not available", 0, false },
	{ "OK, all addresses", 6, AUTH_OK, "alice", "",
	  AUTH_MAX_ADDRESSES, false },
	{ "max-size fields", 7, AUTH_OK, NULL, NULL, AUTH_MAX_ADDRESSES,
	  true },
};

static void make_reply(const struct rep_case *c, struct auth_reply *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->id = c->id;
	rep->result = c->result;
	rep->n_address = c->n_address;
	if (c->max) {
		fill_bytes(rep->user, AUTH_USER_MAX, 3);
		fill_bytes(rep->reason, AUTH_REASON_MAX, 9);
		for (size_t i = 0; i < c->n_address; i++)
			fill_bytes(rep->address[i], AUTH_ADDRESS_MAX, i);
		rep->n_group = AUTH_MAX_GROUPS;
		for (size_t i = 0; i < AUTH_MAX_GROUPS; i++)
			fill_bytes(rep->group[i], AUTH_GROUP_MAX, i + 40);
		return;
	}
	if (c->n_address >= 3) {
		rep->n_group = 2;
		strcpy(rep->group[0], "sales");
		strcpy(rep->group[1], "CN=Mail Senders,OU=Groups,DC=corp");
	}
	strcpy(rep->user, c->user);
	strcpy(rep->reason, c->reason);
	for (size_t i = 0; i < c->n_address; i++)
		snprintf(rep->address[i], sizeof(rep->address[i]),
			 "user%zu@example.com", i);
}

static void test_reply_round_trip(void)
{
	for (size_t i = 0; i < sizeof(rep_cases) / sizeof(rep_cases[0]); i++) {
		const struct rep_case *c = &rep_cases[i];
		struct auth_reply in, out;
		unsigned char buf[AUTH_PROTO_MAX];
		ssize_t n;
		int ret;

		make_reply(c, &in);
		n = auth_reply_encode(&in, buf, sizeof(buf));
		CHECK(n > 0, "reply \"%s\": encode got %zd", c->name, n);
		if (n <= 0)
			continue;
		memset(&out, 0x5a, sizeof(out));
		ret = auth_reply_decode(buf, (size_t)n, &out);
		CHECK(ret == 0, "reply \"%s\": decode got %d, want 0",
		      c->name, ret);
		CHECK_INT(out.id, in.id, c->name);
		CHECK_INT(out.result, in.result, c->name);
		CHECK_STR(out.user, in.user, c->name);
		CHECK_STR(out.reason, in.reason, c->name);
		CHECK_INT(out.n_address, in.n_address, c->name);
		for (size_t k = 0; k < in.n_address && k < out.n_address; k++)
			CHECK_STR(out.address[k], in.address[k], c->name);
		CHECK_INT(out.n_group, in.n_group, c->name);
		for (size_t k = 0; k < in.n_group && k < out.n_group; k++)
			CHECK_STR(out.group[k], in.group[k], c->name);

		/* A cut inside a field is invalid. A cut between fields
		 * can leave a valid reply with fewer optional fields: only
		 * the datagram boundary (SOCK_SEQPACKET, MSG_TRUNC) tells. */
		for (size_t cut = 0, next = 6; cut < (size_t)n; cut++) {
			ret = auth_reply_decode(buf, cut, &out);
			if (cut == next && cut > 6) {
				CHECK(ret == -1 ||
				      out.n_address < in.n_address ||
				      out.n_group < in.n_group ||
				      out.reason[0] == '\0',
				      "reply \"%s\" cut to %zu: decoded as "
				      "complete", c->name, cut);
			} else {
				CHECK(ret == -1 && reply_wiped(&out),
				      "reply \"%s\" cut to %zu: got %d, want "
				      "-1 and wiped", c->name, cut, ret);
			}
			if (cut == next)
				next += 3 + ((size_t)buf[cut + 1] << 8 |
					     buf[cut + 2]);
		}
	}
}

/* Refused by the encoder: it never produces what the decoder refuses. */
static void test_bad_encode(void)
{
	unsigned char buf[AUTH_PROTO_MAX];
	struct auth_request req;
	struct auth_reply rep;
	ssize_t n, full;

	struct {
		const char *name;
		size_t user, password, ip;	/* octets, no NUL after */
	} reqs[] = {
		{ "user without NUL", AUTH_USER_MAX + 1, 0, 0 },
		{ "password without NUL", 0, AUTH_PASSWORD_MAX + 1, 0 },
		{ "client ip without NUL", 0, 0, AUTH_IP_MAX + 1 },
	};
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		memset(&req, 0, sizeof(req));
		strcpy(req.user, "alice");
		strcpy(req.password, "secret");
		strcpy(req.client_ip, "::1");
		if (reqs[i].user)
			memset(req.user, 'u', reqs[i].user);
		if (reqs[i].password)
			memset(req.password, 'p', reqs[i].password);
		if (reqs[i].ip)
			memset(req.client_ip, 'i', reqs[i].ip);
		memset(buf, 0, sizeof(buf));
		n = auth_request_encode(&req, buf, sizeof(buf));
		CHECK(n == -1, "encode \"%s\": got %zd, want -1", reqs[i].name,
		      n);
		CHECK(is_zero(buf, sizeof(buf)),
		      "encode \"%s\": buffer not wiped", reqs[i].name);
	}

	/* Too small a buffer, at every size: -1, and no password left. */
	memset(&req, 0, sizeof(req));
	strcpy(req.user, "alice");
	strcpy(req.password, "secret");
	strcpy(req.client_ip, "::1");
	full = auth_request_encode(&req, buf, sizeof(buf));
	CHECK(full > 0, "encode: got %zd", full);
	for (ssize_t size = 0; size < full; size++) {
		memset(buf, 0, sizeof(buf));
		n = auth_request_encode(&req, buf, (size_t)size);
		CHECK(n == -1 && is_zero(buf, sizeof(buf)),
		      "encode into %zd octets: got %zd, want -1 and wiped",
		      size, n);
	}

	struct {
		const char *name;
		int result;
		const char *user;
		size_t n_address;
		bool long_reason, long_address, empty_address;
	} reps[] = {
		{ "result 3", 3, "", 0, false, false, false },
		{ "result -1", -1, "", 0, false, false, false },
		{ "OK without user", AUTH_OK, "", 0, false, false, false },
		{ "PERMFAIL with user", AUTH_PERMFAIL, "alice", 0, false, false,
		  false },
		{ "too many addresses", AUTH_OK, "alice",
		  AUTH_MAX_ADDRESSES + 1, false, false, false },
		{ "reason without NUL", AUTH_PERMFAIL, "", 0, true, false,
		  false },
		{ "address without NUL", AUTH_OK, "alice", 1, false, true,
		  false },
		{ "empty address", AUTH_OK, "alice", 1, false, false, true },
	};
	for (size_t i = 0; i < sizeof(reps) / sizeof(reps[0]); i++) {
		memset(&rep, 0, sizeof(rep));
		rep.id = 9;
		rep.result = (enum auth_result)reps[i].result;
		strcpy(rep.user, reps[i].user);
		rep.n_address = reps[i].n_address;
		for (size_t k = 0; k < AUTH_MAX_ADDRESSES; k++)
			strcpy(rep.address[k], "a@example.com");
		if (reps[i].long_reason)
			memset(rep.reason, 'r', sizeof(rep.reason));
		if (reps[i].long_address)
			memset(rep.address[0], 'a', sizeof(rep.address[0]));
		if (reps[i].empty_address)
			rep.address[0][0] = '\0';
		n = auth_reply_encode(&rep, buf, sizeof(buf));
		CHECK(n == -1, "encode \"%s\": got %zd, want -1", reps[i].name,
		      n);
	}
}

static uint32_t rng_state = 2463534242u;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* 64 KiB of garbage: refused, with and without a valid header. Then
 * random messages up to the limit must not crash the decoder (ASan). */
static void test_garbage(void)
{
	static unsigned char junk[65536];
	struct auth_request req;
	struct auth_reply rep;
	int ret;

	for (int round = 0; round < 4; round++) {
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (unsigned char)rng();
		if (round >= 2) {
			junk[0] = AUTH_PROTO_VERSION;
			junk[1] = round == 2 ? AUTH_MSG_REQUEST :
				AUTH_MSG_REPLY;
		}
		ret = auth_request_decode(junk, sizeof(junk), &req);
		CHECK(ret == -1 && request_wiped(&req),
		      "request, 64 KiB garbage round %d: got %d, want -1",
		      round, ret);
		ret = auth_reply_decode(junk, sizeof(junk), &rep);
		CHECK(ret == -1 && reply_wiped(&rep),
		      "reply, 64 KiB garbage round %d: got %d, want -1",
		      round, ret);
	}
	memset(junk, 0xff, sizeof(junk));
	ret = auth_request_decode(junk, sizeof(junk), &req);
	CHECK_INT(ret, -1, "request, 64 KiB of 0xff");
	memset(junk, 0, sizeof(junk));
	ret = auth_reply_decode(junk, sizeof(junk), &rep);
	CHECK_INT(ret, -1, "reply, 64 KiB of NUL");

	/* Random field sequences: small tags and lengths, so that some
	 * decode and the rest fail at every kind of check. */
	for (int round = 0; round < 20000; round++) {
		size_t len = 6, fields = rng() % 12;

		junk[0] = AUTH_PROTO_VERSION;
		junk[1] = (unsigned char)(1 + rng() % 2);
		for (size_t i = 0; i < fields && len + 3 + 40 < sizeof(junk);
		     i++) {
			size_t flen = rng() % 40;

			junk[len] = (unsigned char)(rng() % 8);
			junk[len + 1] = 0;
			junk[len + 2] = (unsigned char)(flen + rng() % 3 - 1);
			for (size_t k = 0; k < flen; k++) {
				unsigned c = rng() % 16 == 0 ? 0 :
					'a' + rng() % 26;

				junk[len + 3 + k] = (unsigned char)c;
			}
			len += 3 + flen;
		}
		if (rng() % 4 == 0)
			junk[len - 1] = (unsigned char)rng();
		if (auth_request_decode(junk, len, &req) == 0)
			CHECK(req.user[AUTH_USER_MAX] == '\0',
			      "random request decoded without NUL");
		else
			CHECK(request_wiped(&req), "random request not wiped");
		if (auth_reply_decode(junk, len, &rep) == 0)
			CHECK(rep.n_address <= AUTH_MAX_ADDRESSES &&
			      (rep.result != AUTH_OK) == (rep.user[0] == '\0'),
			      "random reply decoded inconsistent");
		else
			CHECK(reply_wiped(&rep), "random reply not wiped");
	}
}

/* A successful decode after a failed one keeps nothing of the old. */
static void test_no_leftovers(void)
{
	static const struct msg_spec full = { "full", REQ,
		.f = { F(T_USER, "alice"), F(T_PW, "secret"),
		       F(T_IP, "::1") } };
	static const struct msg_spec bad = { "bad", REQ,
		.f = { F(T_USER, "alice"), F(T_PW, "secret"), F(T_IP, "::1"),
		       F(T_PW, "again") } };
	struct auth_request req;
	size_t len;

	len = build(&bad);
	CHECK_INT(auth_request_decode(msg, len, &req), -1,
		  "repeated password after a valid one");
	CHECK(request_wiped(&req), "decoded password left after failure");
	len = build(&full);
	CHECK_INT(auth_request_decode(msg, len, &req), 0, "full request");
	CHECK_STR(req.password, "secret", "password");
	explicit_bzero(&req, sizeof(req));
}

int main(void)
{
	test_golden();
	test_request_round_trip();
	test_reply_round_trip();
	test_bad_requests();
	test_bad_replies();
	test_bad_encode();
	test_garbage();
	test_no_leftovers();
	return test_done("test_auth_proto");
}
