/* The daemon <-> auth worker protocol (common/auth_proto.h), both
 * directions. Octet 0 picks: decode a request, decode a reply (arbitrary
 * octets, as from a compromised peer), or build a request or a reply
 * from the input's NUL-separated parts and encode it.
 *
 * Invariants beyond the sanitizers:
 * - a decoded message never holds an over-long field: every string fits
 *   its AUTH_*_MAX and is NUL-terminated there, the address and group
 *   counts are within AUTH_MAX_*, the result is one of the three;
 * - a refused message leaves the output wiped (all zero; a reply's
 *   result TEMPFAIL);
 * - decode(encode(m)) == m, for what was decoded and for what was built;
 *   encoding refuses (-1) exactly the fields that are too long. */
#include "autoconf.h"

#include <stdbool.h>
#include <string.h>

#include "auth_proto.h"
#include "fuzz.h"

static unsigned char buf[AUTH_PROTO_MAX];

#define FITS(s, max) (strnlen((s), (max) + 1) <= (max))

static void check_request(const struct auth_request *q)
{
	FUZZ_CHECK(FITS(q->user, AUTH_USER_MAX) &&
		   FITS(q->password, AUTH_PASSWORD_MAX) &&
		   FITS(q->client_ip, AUTH_IP_MAX), "over-long request field");
}

static void check_reply(const struct auth_reply *p)
{
	FUZZ_CHECK(p->result == AUTH_OK || p->result == AUTH_PERMFAIL ||
		   p->result == AUTH_TEMPFAIL, "result %d", (int)p->result);
	FUZZ_CHECK(FITS(p->user, AUTH_USER_MAX) &&
		   FITS(p->reason, AUTH_REASON_MAX), "over-long reply field");
	FUZZ_CHECK(p->n_address <= AUTH_MAX_ADDRESSES &&
		   p->n_group <= AUTH_MAX_GROUPS, "%zu addresses, %zu groups",
		   p->n_address, p->n_group);
	for (size_t i = 0; i < p->n_address; i++)
		FUZZ_CHECK(FITS(p->address[i], AUTH_ADDRESS_MAX),
			   "over-long address");
	for (size_t i = 0; i < p->n_group; i++)
		FUZZ_CHECK(FITS(p->group[i], AUTH_GROUP_MAX), "over-long group");
}

static int same_request(const struct auth_request *a,
			const struct auth_request *b)
{
	return a->id == b->id && strcmp(a->user, b->user) == 0 &&
	       strcmp(a->password, b->password) == 0 &&
	       strcmp(a->client_ip, b->client_ip) == 0;
}

static int same_reply(const struct auth_reply *a, const struct auth_reply *b)
{
	if (a->id != b->id || a->result != b->result ||
	    strcmp(a->user, b->user) != 0 || strcmp(a->reason, b->reason) != 0 ||
	    a->n_address != b->n_address || a->n_group != b->n_group)
		return 0;
	for (size_t i = 0; i < a->n_address; i++)
		if (strcmp(a->address[i], b->address[i]) != 0)
			return 0;
	for (size_t i = 0; i < a->n_group; i++)
		if (strcmp(a->group[i], b->group[i]) != 0)
			return 0;
	return 1;
}

static void request_round_trip(const struct auth_request *q)
{
	static struct auth_request back;
	ssize_t n = auth_request_encode(q, buf, sizeof(buf));

	FUZZ_CHECK(n > 0, "a valid request does not encode");
	FUZZ_CHECK(auth_request_decode(buf, (size_t)n, &back) == 0 &&
		   same_request(q, &back), "decode(encode(request)) differs");
}

static void reply_round_trip(const struct auth_reply *p)
{
	static struct auth_reply back;
	ssize_t n = auth_reply_encode(p, buf, sizeof(buf));

	FUZZ_CHECK(n > 0, "a valid reply does not encode");
	FUZZ_CHECK(auth_reply_decode(buf, (size_t)n, &back) == 0 &&
		   same_reply(p, &back), "decode(encode(reply)) differs");
}

/* The next NUL-separated part of the input, copied into out (cut at
 * size - 1: the input may say more than fits, the fields may not). */
static size_t part(const uint8_t **d, size_t *left, char *out, size_t size)
{
	const uint8_t *nul = memchr(*d, 0, *left);
	size_t n = nul ? (size_t)(nul - *d) : *left, c = n < size ? n : size - 1;

	memcpy(out, *d, c);
	out[c] = '\0';
	*d += n + (nul != NULL);
	*left -= n + (nul != NULL);
	return n;
}

static void build_request(const uint8_t *d, size_t left)
{
	static struct auth_request q;

	memset(&q, 0, sizeof(q));
	q.id = left > 0 ? d[0] * 0x01010101u : 0;
	part(&d, &left, q.user, sizeof(q.user));
	part(&d, &left, q.password, sizeof(q.password));
	part(&d, &left, q.client_ip, sizeof(q.client_ip));
	request_round_trip(&q);
}

static void build_reply(const uint8_t *d, size_t left)
{
	static struct auth_reply p;

	memset(&p, 0, sizeof(p));
	p.id = left > 0 ? d[0] : 0;
	p.result = (enum auth_result)(left > 1 ? d[1] % 3 : 0);
	part(&d, &left, p.user, sizeof(p.user));
	part(&d, &left, p.reason, sizeof(p.reason));
	/* The user comes with OK and only with OK, non-empty; addresses and
	 * groups are non-empty (auth_proto.h). */
	if (p.result != AUTH_OK)
		p.user[0] = '\0';
	else if (p.user[0] == '\0')
		strcpy(p.user, "u");
	while (left > 0 && (p.n_address < AUTH_MAX_ADDRESSES ||
			    p.n_group < AUTH_MAX_GROUPS)) {
		bool group = (left & 1) && p.n_group < AUTH_MAX_GROUPS;
		char *s = group ? p.group[p.n_group] : p.address[p.n_address];

		if (!group && p.n_address >= AUTH_MAX_ADDRESSES)
			break;
		part(&d, &left, s, group ? sizeof(p.group[0]) :
				   sizeof(p.address[0]));
		if (s[0] != '\0') {
			if (group)
				p.n_group++;
			else
				p.n_address++;
		}
	}
	reply_round_trip(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct auth_request q;
	static struct auth_reply p;

	if (size < 1 || size > AUTH_PROTO_MAX + 16)
		return 0;
	switch (data[0] % 4) {
	case 0:
		memset(&q, 0xaa, sizeof(q));
		if (auth_request_decode(data + 1, size - 1, &q) == 0) {
			check_request(&q);
			request_round_trip(&q);
		} else {
			FUZZ_CHECK(fuzz_all_zero(&q, sizeof(q)), "request not wiped");
		}
		break;
	case 1:
		memset(&p, 0xaa, sizeof(p));
		if (auth_reply_decode(data + 1, size - 1, &p) == 0) {
			check_reply(&p);
			reply_round_trip(&p);
		} else {
			/* Wiped, but for the result: TEMPFAIL, so that a
			 * caller that forgets the -1 sees 454, never 235. */
			FUZZ_CHECK(p.result == AUTH_TEMPFAIL,
				   "refused reply says result %d", p.result);
			p.result = 0;
			FUZZ_CHECK(fuzz_all_zero(&p, sizeof(p)), "reply not wiped");
		}
		break;
	case 2:
		build_request(data + 1, size - 1);
		break;
	default:
		build_reply(data + 1, size - 1);
		break;
	}
	return 0;
}
