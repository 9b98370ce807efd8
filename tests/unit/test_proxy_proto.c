#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxy_proto.h"
#include "test.h"

#define NEED PROXY_PROTO_NEED_MORE
#define OK PROXY_PROTO_OK
#define BAD PROXY_PROTO_INVALID
/* A string literal as pointer and length: it may hold NULs. */
#define S(s) s, sizeof(s) - 1

/* proxy-protocol.txt §2.2 */
#define SIG "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
/* 192.0.2.1 -> 198.51.100.7, 54321 -> 587 */
#define V4_ADDRS "\xC0\x00\x02\x01" "\xC6\x33\x64\x07" "\xD4\x31" "\x02\x4B"
/* 2001:db8::1 -> 2001:db8::2, 54321 -> 465 */
#define V6_ADDRS "\x20\x01\x0D\xB8\x00\x00\x00\x00" \
		 "\x00\x00\x00\x00\x00\x00\x00\x01" \
		 "\x20\x01\x0D\xB8\x00\x00\x00\x00" \
		 "\x00\x00\x00\x00\x00\x00\x00\x02" \
		 "\xD4\x31" "\x01\xD1"
/* what the client sends after the header: never part of it */
#define AFTER "EHLO client.example.com\r\n"

/* "PROXY UNKNOWN" and the longest TCP6 addresses: 107 octets, the
 * example of §2.1 */
#define FFFF6 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
#define V1_LONGEST "PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 65535\r\n"

static const char *status_name(enum proxy_proto_status st)
{
	switch (st) {
	case PROXY_PROTO_NEED_MORE:
		return "NEED_MORE";
	case PROXY_PROTO_OK:
		return "OK";
	case PROXY_PROTO_INVALID:
		return "INVALID";
	}
	return "?";
}

#define CHECK_STATUS(got, want, what) do { \
	enum proxy_proto_status g_ = (got), w_ = (want); \
	CHECK(g_ == w_, "%s: got %s, want %s", (what), status_name(g_), \
	      status_name(w_)); \
} while (0)

/* "ADDR PORT" of a sockaddr, "-" when it is not AF_INET/AF_INET6. */
static const char *sockaddr_text(const struct sockaddr_storage *ss,
				 char *buf, size_t size)
{
	char addr[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, ss, sizeof(sin));
		inet_ntop(AF_INET, &sin.sin_addr, addr, sizeof(addr));
		snprintf(buf, size, "%s %u", addr, ntohs(sin.sin_port));
	} else if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, ss, sizeof(sin6));
		inet_ntop(AF_INET6, &sin6.sin6_addr, addr, sizeof(addr));
		snprintf(buf, size, "%s %u", addr, ntohs(sin6.sin6_port));
	} else {
		snprintf(buf, size, "-");
	}
	return buf;
}

/* --- valid headers --- */

struct ok_case {
	const char *what;
	const char *buf;
	size_t len;
	int has_addr;
	const char *src;	/* "ADDR PORT", or "-" */
	const char *dst;
};

#define V1_OK(s, src, dst) { s, S(s), (src)[0] != '-', src, dst }
#define V2_OK(w, s, src, dst) { w, S(s), (src)[0] != '-', src, dst }

static const struct ok_case ok_cases[] = {
	V1_OK("PROXY TCP4 192.0.2.1 198.51.100.7 54321 587\r\n",
	      "192.0.2.1 54321", "198.51.100.7 587"),
	V1_OK("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
	      "0.0.0.0 0", "255.255.255.255 65535"),
	V1_OK("PROXY TCP4 10.20.30.40 10.0.0.1 1 465\r\n",
	      "10.20.30.40 1", "10.0.0.1 465"),
	V1_OK("PROXY TCP6 2001:db8::1 2001:db8::2 54321 465\r\n",
	      "2001:db8::1 54321", "2001:db8::2 465"),
	V1_OK("PROXY TCP6 2001:DB8:0:0:0:0:0:A ::1 40000 587\r\n",
	      "2001:db8::a 40000", "::1 587"),
	V1_OK("PROXY TCP6 ::ffff:192.0.2.1 :: 1 0\r\n",
	      "::ffff:192.0.2.1 1", ":: 0"),
	V1_OK("PROXY TCP6 " FFFF6 " " FFFF6 " 65535 65535\r\n",
	      FFFF6 " 65535", FFFF6 " 65535"),
	/* §2.1: UNKNOWN: the rest of the line is ignored */
	V1_OK("PROXY UNKNOWN\r\n", "-", "-"),
	V1_OK("PROXY UNKNOWN 192.0.2.1 198.51.100.7 54321 587\r\n", "-", "-"),
	V1_OK("PROXY UNKNOWN whatever  at all \r\n", "-", "-"),
	V1_OK(V1_LONGEST, "-", "-"),

	V2_OK("v2 PROXY TCP4", SIG "\x21\x11\x00\x0C" V4_ADDRS,
	      "192.0.2.1 54321", "198.51.100.7 587"),
	V2_OK("v2 PROXY TCP6", SIG "\x21\x21\x00\x24" V6_ADDRS,
	      "2001:db8::1 54321", "2001:db8::2 465"),
	/* §2.2.7: TLVs after the addresses, skipped: ALPN "h2", NOOP */
	V2_OK("v2 PROXY TCP4 + TLVs",
	      SIG "\x21\x11\x00\x17" V4_ADDRS "\x01\x00\x02" "h2"
	      "\x04\x00\x03" "\x00\x00\x00",
	      "192.0.2.1 54321", "198.51.100.7 587"),
	V2_OK("v2 PROXY TCP6 + empty TLV",
	      SIG "\x21\x21\x00\x27" V6_ADDRS "\x04\x00\x00",
	      "2001:db8::1 54321", "2001:db8::2 465"),
	/* LOCAL (a health check) and UNSPEC: keep the connection's own */
	V2_OK("v2 LOCAL UNSPEC", SIG "\x20\x00\x00\x00", "-", "-"),
	V2_OK("v2 LOCAL TCP4", SIG "\x20\x11\x00\x0C" V4_ADDRS, "-", "-"),
	V2_OK("v2 LOCAL UNSPEC + TLV", SIG "\x20\x00\x00\x05"
	      "\x04\x00\x02\x00\x00", "-", "-"),
	V2_OK("v2 PROXY UNSPEC", SIG "\x21\x00\x00\x00", "-", "-"),
	V2_OK("v2 PROXY UNSPEC + TLV", SIG "\x21\x00\x00\x04"
	      "\x02\x00\x01" "x", "-", "-"),
};

/* The header alone, then followed by the client's first data: OK with
 * the header's length; and every shorter prefix: NEED_MORE. */
static void check_ok(const char *what, const char *hdr, size_t len,
		     int has_addr, const char *src, const char *dst)
{
	unsigned char buf[PROXY_PROTO_MAX + sizeof(AFTER)];
	struct proxy_proto_result res;
	char got[INET6_ADDRSTRLEN + 8], msg[200];
	size_t len_r;

	memcpy(buf, hdr, len);
	memcpy(buf + len, AFTER, sizeof(AFTER) - 1);
	for (size_t n = 0; n < len; n++) {
		len_r = 1234;
		snprintf(msg, sizeof(msg), "%s: first %zu of %zu octets", what,
			 n, len);
		CHECK_STATUS(proxy_proto_parse(buf, n, &len_r, &res), NEED,
			     msg);
		CHECK_INT(len_r, 0, msg);
	}
	for (size_t extra = 0; extra <= 1; extra++) {
		size_t total = len + (extra ? sizeof(AFTER) - 1 : 0);

		len_r = 1234;
		memset(&res, 0xaa, sizeof(res));
		snprintf(msg, sizeof(msg), "%s%s", what,
			 extra ? " + client data" : "");
		CHECK_STATUS(proxy_proto_parse(buf, total, &len_r, &res), OK,
			     msg);
		CHECK_INT(len_r, len, msg);
		CHECK_INT(res.has_addr, has_addr, msg);
		if (has_addr) {
			CHECK_STR(sockaddr_text(&res.src, got, sizeof(got)),
				  src, msg);
			CHECK_STR(sockaddr_text(&res.dst, got, sizeof(got)),
				  dst, msg);
		}
	}
}

static void test_ok_table(void)
{
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];

		check_ok(c->what, c->buf, c->len, c->has_addr, c->src, c->dst);
	}
}

/* --- invalid headers --- */

struct bad_case {
	const char *what;
	const char *buf;
	size_t len;
	size_t at;	/* the shortest prefix that is already INVALID */
};

/* at: the prefix of s (a string literal) at which the header can no
 * longer become valid */
#define V1_BAD(s, prefix) { s, S(s), sizeof(prefix) - 1 }
#define V2_BAD(w, s, at) { w, S(s), at }

static const struct bad_case bad_cases[] = {
	/* not a PROXY header at all: from the first octet */
	V1_BAD("GET / HTTP/1.1\r\n", "G"),
	V1_BAD("EHLO x\r\n", "E"),
	V1_BAD("ehlo x\r\n", "e"),
	V1_BAD("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "\x16"),
	V1_BAD("proxy TCP4 192.0.2.1 198.51.100.7 54321 587\r\n", "p"),
	V1_BAD("PROXX TCP4 192.0.2.1 198.51.100.7 54321 587\r\n", "PROXX"),
	V1_BAD("PROXY\r\n", "PROXY\r"),
	V1_BAD("PROXY \r\n", "PROXY \r"),
	V1_BAD("PROXYTCP4 192.0.2.1 198.51.100.7 54321 587\r\n", "PROXYT"),
	/* protocol */
	V1_BAD("PROXY TCP5 192.0.2.1 198.51.100.7 54321 587\r\n",
	       "PROXY TCP5"),
	V1_BAD("PROXY tcp4 192.0.2.1 198.51.100.7 54321 587\r\n",
	       "PROXY t"),
	V1_BAD("PROXY TCP 192.0.2.1 198.51.100.7 54321 587\r\n",
	       "PROXY TCP "),
	V1_BAD("PROXY TCP44 192.0.2.1 198.51.100.7 54321 587\r\n",
	       "PROXY TCP44"),
	V1_BAD("PROXY UDP4 192.0.2.1 198.51.100.7 54321 587\r\n",
	       "PROXY UD"),
	V1_BAD("PROXY UNKNOWNX\r\n", "PROXY UNKNOWNX"),
	V1_BAD("PROXY TCP4\r\n", "PROXY TCP4\r"),
	/* extra or missing spaces */
	V1_BAD("PROXY  TCP4 192.0.2.1 198.51.100.7 54321 587\r\n",
	       "PROXY  "),
	V1_BAD("PROXY TCP4  192.0.2.1 198.51.100.7 54321 587\r\n",
	       "PROXY TCP4  "),
	V1_BAD("PROXY TCP4 192.0.2.1  198.51.100.7 54321 587\r\n",
	       "PROXY TCP4 192.0.2.1  "),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7  54321 587\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7  "),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 54321  587\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 54321  "),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 54321 587 \r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 54321 587 "),
	V1_BAD("PROXY TCP4 192.0.2.1\t198.51.100.7 54321 587\r\n",
	       "PROXY TCP4 192.0.2.1\t"),
	/* too few fields */
	V1_BAD("PROXY TCP4 192.0.2.1\r\n", "PROXY TCP4 192.0.2.1\r"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 54321\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 54321\r"),
	/* addresses that do not parse as the family says */
	V1_BAD("PROXY TCP4 1.2.3 198.51.100.7 54321 587\r\n",
	       "PROXY TCP4 1.2.3 "),
	V1_BAD("PROXY TCP4 1.2.3.4.5 198.51.100.7 54321 587\r\n",
	       "PROXY TCP4 1.2.3.4."),
	V1_BAD("PROXY TCP4 1.2.3.256 198.51.100.7 54321 587\r\n",
	       "PROXY TCP4 1.2.3.256"),
	V1_BAD("PROXY TCP4 1.2.3.1234 198.51.100.7 54321 587\r\n",
	       "PROXY TCP4 1.2.3.1234"),
	V1_BAD("PROXY TCP4 01.2.3.4 198.51.100.7 54321 587\r\n",
	       "PROXY TCP4 01"),
	V1_BAD("PROXY TCP4 1..2.3 198.51.100.7 54321 587\r\n",
	       "PROXY TCP4 1.."),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.x 54321 587\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.x"),
	V1_BAD("PROXY TCP4 ::1 ::1 54321 587\r\n", "PROXY TCP4 :"),
	V1_BAD("PROXY TCP4 localhost 198.51.100.7 54321 587\r\n",
	       "PROXY TCP4 l"),
	V1_BAD("PROXY TCP6 1.2.3.4 5.6.7.8 54321 587\r\n",
	       "PROXY TCP6 1.2.3.4 "),
	V1_BAD("PROXY TCP6 2001:db8::1 2001:db8::g 54321 587\r\n",
	       "PROXY TCP6 2001:db8::1 2001:db8::g"),
	V1_BAD("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 54321 587\r\n",
	       "PROXY TCP6 1:2:3:4:5:6:7:8:9 "),
	V1_BAD("PROXY TCP6 2001:db8:::1 ::1 54321 587\r\n",
	       "PROXY TCP6 2001:db8:::1 "),
	V1_BAD("PROXY TCP6 [::1] ::1 54321 587\r\n", "PROXY TCP6 ["),
	V1_BAD("PROXY TCP6 fe80::1%eth0 ::1 54321 587\r\n",
	       "PROXY TCP6 fe80::1%"),
	/* ports: 0..65535, decimal, no leading zero, no sign */
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 65536 587\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 65536"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 54321 99999\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 54321 99999"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 123456 587\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 123456"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 -1 587\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 -"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 +1 587\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 +"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 080 587\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 08"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 00 587\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 00"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 54321 0x24b\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 54321 0x"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 54321 \r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 54321 \r"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7  587\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7  "),
	/* the line end: CR LF only */
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 54321 587\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 54321 587\n"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 54321 587\r\r\n",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 54321 587\r\r"),
	V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.7 54321 587\rEHLO",
	       "PROXY TCP4 192.0.2.1 198.51.100.7 54321 587\rE"),
	V1_BAD("PROXY UNKNOWN\n", "PROXY UNKNOWN\n"),
	V1_BAD("PROXY UNKNOWN 1 2\rx\r\n", "PROXY UNKNOWN 1 2\rx"),
	/* over-long: no CR LF within 107 octets */
	V1_BAD("PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 655351\r\n",
	       "PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 655351\r"),
	V1_BAD("PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 65535 \r\n",
	       "PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 65535 \r"),
	V1_BAD("PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 65535\r\r\n",
	       "PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 65535\r\r"),
	V1_BAD("PROXY TCP6 0000:0000:0000:0000:0000:ffff:255.255.255.255 "
	       "0000:0000:0000:0000:0000:ffff:255.255.255.255 65535 65535\r\n",
	       "PROXY TCP6 0000:0000:0000:0000:0000:ffff:255.255.255.255 "
	       "0000:0000:0000:0000:0000:ffff:255.255.255.255 6553"),

	/* v2: the signature, octet by octet */
	V2_BAD("v2 signature: \\r\\nQ", "\x0D\x0A\x51", 3),
	V2_BAD("v2 signature: last octet",
	       "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0B"
	       "\x21\x11\x00\x0C" V4_ADDRS, 12),
	V2_BAD("v2 signature: NUL missing",
	       "\x0D\x0A\x0D\x0A\x0D\x0A\x51\x55\x49\x54\x0A", 5),
	/* version and command */
	V2_BAD("v2 version 1", SIG "\x11\x11\x00\x0C" V4_ADDRS, 13),
	V2_BAD("v2 version 3", SIG "\x31\x11\x00\x0C" V4_ADDRS, 13),
	V2_BAD("v2 version 0", SIG "\x01\x11\x00\x0C" V4_ADDRS, 13),
	V2_BAD("v2 command 0x22", SIG "\x22\x11\x00\x0C" V4_ADDRS, 13),
	V2_BAD("v2 command 0x2F", SIG "\x2F\x11\x00\x0C" V4_ADDRS, 13),
	/* family and protocol */
	V2_BAD("v2 UDP over IPv4", SIG "\x21\x12\x00\x0C" V4_ADDRS, 14),
	V2_BAD("v2 UDP over IPv6", SIG "\x21\x22\x00\x24" V6_ADDRS, 14),
	V2_BAD("v2 AF_UNIX stream", SIG "\x21\x31\x00\xD8", 14),
	V2_BAD("v2 AF_INET, protocol UNSPEC", SIG "\x21\x10\x00\x0C"
	       V4_ADDRS, 14),
	V2_BAD("v2 AF_UNSPEC, STREAM", SIG "\x21\x01\x00\x00", 14),
	V2_BAD("v2 family 4", SIG "\x21\x41\x00\x0C" V4_ADDRS, 14),
	V2_BAD("v2 LOCAL, UDP", SIG "\x20\x12\x00\x0C" V4_ADDRS, 14),
	/* length: enough for the family, at most the cap */
	V2_BAD("v2 TCP4, length 11", SIG "\x21\x11\x00\x0B" V4_ADDRS, 16),
	V2_BAD("v2 TCP4, length 0", SIG "\x21\x11\x00\x00" V4_ADDRS, 16),
	V2_BAD("v2 TCP6, length 12", SIG "\x21\x21\x00\x0C" V4_ADDRS, 16),
	V2_BAD("v2 TCP6, length 35", SIG "\x21\x21\x00\x23" V6_ADDRS, 16),
	V2_BAD("v2 length 521", SIG "\x21\x11\x02\x09" V4_ADDRS, 16),
	V2_BAD("v2 length 65535", SIG "\x21\x11\xFF\xFF" V4_ADDRS, 16),
	V2_BAD("v2 LOCAL length 65535", SIG "\x20\x00\xFF\xFF", 16),
	/* TLVs must tile the rest exactly */
	V2_BAD("v2 TLV longer than the header",
	       SIG "\x21\x11\x00\x10" V4_ADDRS "\x01\x00\x05" "x", 31),
	V2_BAD("v2 TLV header cut",
	       SIG "\x21\x11\x00\x0E" V4_ADDRS "\x01\x00", 16),
	V2_BAD("v2 second TLV longer than the header",
	       SIG "\x21\x00\x00\x08" "\x04\x00\x00" "\x04\x00\x03" "xy", 22),
};

static void test_bad_table(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]);
	     i++) {
		const struct bad_case *c = &bad_cases[i];
		struct proxy_proto_result res;
		char msg[300];

		CHECK(c->at >= 1 && c->at <= c->len, "%s: bad test: at %zu",
		      c->what, c->at);
		for (size_t n = 0; n <= c->len; n++) {
			size_t len_r = 1234;

			memset(&res, 0xaa, sizeof(res));
			snprintf(msg, sizeof(msg), "\"%s\": first %zu of %zu",
				 c->what, n, c->len);
			CHECK_STATUS(proxy_proto_parse((const unsigned char *)
						       c->buf, n, &len_r,
						       &res),
				     n < c->at ? NEED : BAD, msg);
			CHECK_INT(len_r, 0, msg);
			CHECK_INT(res.has_addr, 0, msg);
		}
	}
}

/* --- limits --- */

/* v2 at the cap: 16 + 520 octets, a NOOP TLV filling the rest; one more
 * octet is refused. */
static void test_v2_cap(void)
{
	static unsigned char buf[PROXY_PROTO_MAX + 1 + sizeof(AFTER)];
	struct proxy_proto_result res;
	size_t len_r;

	for (size_t total = PROXY_PROTO_MAX - 16; total <= PROXY_PROTO_MAX - 15;
	     total++) {
		size_t tlv = total - 12 - 3;
		char what[80];

		memset(buf, 0, sizeof(buf));
		memcpy(buf, SIG "\x21\x11", 14);
		buf[14] = (unsigned char)(total >> 8);
		buf[15] = (unsigned char)total;
		memcpy(buf + 16, V4_ADDRS, 12);
		buf[28] = 0x04;
		buf[29] = (unsigned char)(tlv >> 8);
		buf[30] = (unsigned char)tlv;
		snprintf(what, sizeof(what), "v2 length %zu", total);
		if (total <= PROXY_PROTO_MAX - 16) {
			check_ok(what, (const char *)buf, 16 + total, 1,
				 "192.0.2.1 54321", "198.51.100.7 587");
		} else {
			CHECK_STATUS(proxy_proto_parse(buf, 16, &len_r, &res),
				     BAD, what);
			CHECK_STATUS(proxy_proto_parse(buf, 16 + total, &len_r,
						       &res),
				     BAD, what);
		}
	}
}

/* v1 at 107 octets (the longest allowed) and at 108; an endless line is
 * refused at 107. */
static void test_v1_cap(void)
{
	static char buf[256];
	struct proxy_proto_result res;
	size_t len_r;
	size_t n;

	CHECK_INT(sizeof(V1_LONGEST) - 1, 107, "V1_LONGEST");
	for (size_t total = 106; total <= 108; total++) {
		char what[80];

		n = (size_t)snprintf(buf, sizeof(buf), "PROXY UNKNOWN ");
		memset(buf + n, 'x', total - 2 - n);
		memcpy(buf + total - 2, "\r\n", 2);
		snprintf(what, sizeof(what), "v1 UNKNOWN, %zu octets", total);
		if (total <= 107) {
			check_ok(what, buf, total, 0, "-", "-");
		} else {
			CHECK_STATUS(proxy_proto_parse((unsigned char *)buf,
						       106, &len_r, &res),
				     NEED, what);
			CHECK_STATUS(proxy_proto_parse((unsigned char *)buf,
						       107, &len_r, &res),
				     BAD, what);
			CHECK_STATUS(proxy_proto_parse((unsigned char *)buf,
						       total, &len_r, &res),
				     BAD, what);
		}
	}

	n = (size_t)snprintf(buf, sizeof(buf), "PROXY UNKNOWN ");
	memset(buf + n, 'x', sizeof(buf) - n);
	CHECK_STATUS(proxy_proto_parse((unsigned char *)buf, 106, &len_r,
				       &res), NEED, "v1 endless, 106");
	CHECK_STATUS(proxy_proto_parse((unsigned char *)buf, 107, &len_r,
				       &res), BAD, "v1 endless, 107");
	CHECK_STATUS(proxy_proto_parse((unsigned char *)buf, sizeof(buf),
				       &len_r, &res), BAD, "v1 endless, 256");
}

/* Every single octet value after a valid v1 prefix: only the ones that
 * may continue it keep NEED_MORE. */
static void test_v1_next_octet(void)
{
	static const struct {
		const char *prefix;
		const char *more;	/* octets that may follow */
	} cases[] = {
		{ "PROXY ", "TU" },
		{ "PROXY TCP", "46" },
		{ "PROXY TCP4 ", "0123456789" },
		{ "PROXY TCP4 1", "0123456789." },
		{ "PROXY TCP4 0", "." },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 ", "0123456789" },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 0", " " },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 6553", "012345 " },
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2", "0123456789\r" },
		{ "PROXY TCP6 ::1", "0123456789abcdefABCDEF:. " },
	};
	unsigned char buf[128];
	struct proxy_proto_result res;
	size_t len_r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = strlen(cases[i].prefix);

		memcpy(buf, cases[i].prefix, n);
		for (unsigned c = 0; c < 256; c++) {
			bool may = c != 0 && strchr(cases[i].more, (int)c);
			char what[80];

			buf[n] = (unsigned char)c;
			snprintf(what, sizeof(what), "\"%s\" + 0x%02x",
				 cases[i].prefix, c);
			CHECK_STATUS(proxy_proto_parse(buf, n + 1, &len_r,
						       &res),
				     may ? NEED : BAD, what);
		}
	}
}

/* Feeds buf octet by octet: whatever the answers, they never go back as
 * more data arrives (INVALID stays INVALID, OK stays OK with the same
 * length), and OK never claims more than the data holds. Returns how
 * many went back. */
static size_t count_reversals(const unsigned char *buf, size_t total,
			      const char *what)
{
	enum proxy_proto_status prev = NEED;
	struct proxy_proto_result res;
	size_t prev_len = 0, bad = 0;

	for (size_t n = 0; n <= total; n++) {
		size_t len_r;
		enum proxy_proto_status st = proxy_proto_parse(buf, n, &len_r,
							       &res);

		if ((prev != NEED && st != prev) ||
		    (st == OK && prev == OK && len_r != prev_len) ||
		    (st == OK && len_r > n)) {
			fprintf(stderr, "  %s, %zu octets: %s after %s\n", what,
				n, status_name(st), status_name(prev));
			bad++;
		}
		prev = st;
		prev_len = len_r;
	}
	return bad;
}

/* Every valid header with each bit of each octet flipped in turn. */
static void test_monotonic(void)
{
	unsigned char buf[PROXY_PROTO_MAX + sizeof(AFTER)];
	size_t tried = 0, bad = 0;

	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];
		size_t total = c->len + sizeof(AFTER) - 1;

		memcpy(buf, c->buf, c->len);
		memcpy(buf + c->len, AFTER, sizeof(AFTER) - 1);
		for (size_t pos = 0; pos < c->len; pos++) {
			for (unsigned bit = 0; bit < 8; bit++) {
				char what[100];

				snprintf(what, sizeof(what),
					 "%s, octet %zu bit %u flipped",
					 c->what, pos, bit);
				buf[pos] ^= (unsigned char)(1U << bit);
				bad += count_reversals(buf, total, what);
				buf[pos] ^= (unsigned char)(1U << bit);
				tried++;
			}
		}
	}
	CHECK(bad == 0, "monotonic: %zu reversals in %zu flipped headers",
	      bad, tried);
}

int main(void)
{
	struct proxy_proto_result res;
	size_t len_r = 1;

	CHECK_STATUS(proxy_proto_parse((const unsigned char *)"", 0, &len_r,
				       &res), NEED, "empty");
	CHECK_INT(len_r, 0, "empty");
	test_ok_table();
	test_bad_table();
	test_v2_cap();
	test_v1_cap();
	test_v1_next_octet();
	test_monotonic();
	return test_done("test_proxy_proto");
}
