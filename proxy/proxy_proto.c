#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "proxy_proto.h"

/* proxy-protocol.txt §2.1: "a receiver may reject an incomplete line
 * which does not contain the CRLF sequence in the first 107 characters" */
#define V1_MAX 107
/* §2.2: signature (12), ver_cmd, fam, len (2) */
#define V2_FIXED 16
#define V2_LEN_MAX (PROXY_PROTO_MAX - V2_FIXED)
#define V2_TLV_HEADER 3

/* §2.2: "\r\n\r\n\0\r\nQUIT\n" */
static const unsigned char v2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};

static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* --- v1 --- */

enum v1_proto { V1_TCP4, V1_TCP6, V1_UNKNOWN };

static const struct {
	const char *name;
	enum v1_proto proto;
} v1_protos[] = {
	{ "TCP4", V1_TCP4 },
	{ "TCP6", V1_TCP6 },
	{ "UNKNOWN", V1_UNKNOWN },
};

#define N_V1_PROTOS (sizeof(v1_protos) / sizeof(v1_protos[0]))

/* A v1 field (a run of octets up to a space or CR) that is either whole
 * (complete: its terminator follows) or cut by the end of the data so
 * far. The checks below accept a cut field when some continuation of it
 * is valid, so a header is refused as soon as it can no longer become
 * valid. */
struct field {
	const unsigned char *p;
	size_t len;
	bool complete;
};

static bool proto_ok(const struct field *f, enum v1_proto *proto_r)
{
	for (size_t i = 0; i < N_V1_PROTOS; i++) {
		size_t n = strlen(v1_protos[i].name);

		if (f->len > n || memcmp(f->p, v1_protos[i].name, f->len) != 0)
			continue;
		if (!f->complete)
			return true;
		if (f->len == n) {
			*proto_r = v1_protos[i].proto;
			return true;
		}
	}
	return false;
}

/* §2.1: "TCP4 ... 4 bytes in decimal (each between 0 and 255 inclusive)
 * and separated by a dot ... no leading zeroes" (inet_pton's rules too). */
static bool ipv4_prefix_ok(const struct field *f)
{
	unsigned parts = 1, value = 0, digits = 0;

	for (size_t i = 0; i < f->len; i++) {
		unsigned char c = f->p[i];

		if (c == '.') {
			if (digits == 0 || ++parts > 4)
				return false;
			value = digits = 0;
		} else if (is_digit(c)) {
			if (digits == 1 && value == 0)
				return false;
			value = value * 10 + (unsigned)(c - '0');
			if (++digits > 3 || value > 255)
				return false;
		} else {
			return false;
		}
	}
	return !f->complete || (parts == 4 && digits > 0);
}

/* The cut-field check for TCP6 is only the alphabet and the length; the
 * whole field goes through inet_pton. */
static bool ipv6_prefix_ok(const struct field *f)
{
	if (f->len >= INET6_ADDRSTRLEN)
		return false;
	for (size_t i = 0; i < f->len; i++)
		if (!is_hex(f->p[i]) && f->p[i] != ':' && f->p[i] != '.')
			return false;
	return true;
}

static bool addr_ok(const struct field *f, int family, void *addr)
{
	char text[INET6_ADDRSTRLEN];

	if (family == AF_INET ? !ipv4_prefix_ok(f) : !ipv6_prefix_ok(f))
		return false;
	if (!f->complete)
		return true;
	memcpy(text, f->p, f->len);
	text[f->len] = '\0';
	return inet_pton(family, text, addr) == 1;
}

/* §2.1: ports "in decimal ... between 0 and 65535 inclusive"; no leading
 * zero, sign or other text: "0", "25", "65535". */
static bool port_ok(const struct field *f, uint16_t *port_r)
{
	unsigned value = 0;

	if (f->len > 5 || (f->len > 1 && f->p[0] == '0'))
		return false;
	for (size_t i = 0; i < f->len; i++) {
		if (!is_digit(f->p[i]))
			return false;
		value = value * 10 + (unsigned)(f->p[i] - '0');
	}
	if (value > 65535)
		return false;
	if (f->complete && f->len == 0)
		return false;
	*port_r = (uint16_t)value;
	return true;
}

/* The field starting at *pos in buf[0..lim); moves *pos to its
 * terminator (or to lim when cut). */
static void next_field(const unsigned char *buf, size_t lim, size_t *pos,
		       struct field *f)
{
	size_t i = *pos;

	while (i < lim && buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n')
		i++;
	f->p = buf + *pos;
	f->len = i - *pos;
	f->complete = i < lim;
	*pos = i;
}

static void set_sockaddr(struct sockaddr_storage *ss, int family,
			 const void *addr, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in sin = { .sin_family = AF_INET };

		memcpy(&sin.sin_addr, addr, sizeof(sin.sin_addr));
		sin.sin_port = htons(port);
		memcpy(ss, &sin, sizeof(sin));
	} else {
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };

		memcpy(&sin6.sin6_addr, addr, sizeof(sin6.sin6_addr));
		sin6.sin6_port = htons(port);
		memcpy(ss, &sin6, sizeof(sin6));
	}
}

/* What to answer when the data ended (at lim) before the header did: the
 * header must end within V1_MAX octets. */
static enum proxy_proto_status v1_cut(size_t lim)
{
	return lim >= V1_MAX ? PROXY_PROTO_INVALID : PROXY_PROTO_NEED_MORE;
}

/* Expects the CR LF that ends the line at *pos. */
static enum proxy_proto_status v1_crlf(const unsigned char *buf, size_t lim,
				       size_t pos, size_t *len_r)
{
	if (pos >= lim)
		return v1_cut(lim);
	if (buf[pos] != '\r')
		return PROXY_PROTO_INVALID;
	if (++pos >= lim)
		return v1_cut(lim);
	if (buf[pos] != '\n')
		return PROXY_PROTO_INVALID;
	*len_r = pos + 1;
	return PROXY_PROTO_OK;
}

static enum proxy_proto_status v1_parse(const unsigned char *buf, size_t len,
					size_t *len_r,
					struct proxy_proto_result *res)
{
	size_t lim = min_size(len, V1_MAX), pos = V1_SIG_LEN;
	unsigned char src[sizeof(struct in6_addr)];
	unsigned char dst[sizeof(struct in6_addr)];
	uint16_t sport = 0, dport = 0;
	enum v1_proto proto = V1_UNKNOWN;
	enum proxy_proto_status st;
	struct field f;
	int family;

	if (memcmp(buf, v1_sig, min_size(len, V1_SIG_LEN)) != 0)
		return PROXY_PROTO_INVALID;
	if (len <= V1_SIG_LEN)
		return PROXY_PROTO_NEED_MORE;

	next_field(buf, lim, &pos, &f);
	if (!proto_ok(&f, &proto))
		return PROXY_PROTO_INVALID;
	if (!f.complete)
		return v1_cut(lim);

	if (proto == V1_UNKNOWN) {
		/* §2.1: "the receiver must ignore anything presented before
		 * the CRLF is found" */
		if (buf[pos] == ' ') {
			while (pos < lim && buf[pos] != '\r')
				pos++;
		}
		return v1_crlf(buf, lim, pos, len_r);
	}

	/* §2.1: exactly one space between fields */
	family = proto == V1_TCP4 ? AF_INET : AF_INET6;
	for (int i = 0; i < 4; i++) {
		if (buf[pos] != ' ')
			return PROXY_PROTO_INVALID;
		pos++;
		next_field(buf, lim, &pos, &f);
		switch (i) {
		case 0:
			if (!addr_ok(&f, family, src))
				return PROXY_PROTO_INVALID;
			break;
		case 1:
			if (!addr_ok(&f, family, dst))
				return PROXY_PROTO_INVALID;
			break;
		case 2:
			if (!port_ok(&f, &sport))
				return PROXY_PROTO_INVALID;
			break;
		default:
			if (!port_ok(&f, &dport))
				return PROXY_PROTO_INVALID;
			break;
		}
		if (!f.complete)
			return v1_cut(lim);
	}
	st = v1_crlf(buf, lim, pos, len_r);
	if (st != PROXY_PROTO_OK)
		return st;
	res->has_addr = 1;
	set_sockaddr(&res->src, family, src, sport);
	set_sockaddr(&res->dst, family, dst, dport);
	return PROXY_PROTO_OK;
}

/* --- v2 --- */

#define V2_VERSION 0x20
#define V2_CMD_LOCAL 0x00
#define V2_CMD_PROXY 0x01
#define V2_FAM_UNSPEC 0x00
#define V2_FAM_TCP4 0x11
#define V2_FAM_TCP6 0x21
#define V2_ADDR_LEN_TCP4 12
#define V2_ADDR_LEN_TCP6 36

static enum proxy_proto_status v2_parse(const unsigned char *buf, size_t len,
					size_t *len_r,
					struct proxy_proto_result *res)
{
	const unsigned char *a = buf + V2_FIXED;
	size_t need, total, pos, avail;
	unsigned char cmd, fam;

	if (memcmp(buf, v2_sig, min_size(len, sizeof(v2_sig))) != 0)
		return PROXY_PROTO_INVALID;
	if (len <= sizeof(v2_sig))
		return PROXY_PROTO_NEED_MORE;

	/* §2.2: "the highest four bits contains the version ... \x2";
	 * the lowest are the command, LOCAL or PROXY; others "must" be
	 * dropped. */
	if ((buf[12] & 0xF0) != V2_VERSION)
		return PROXY_PROTO_INVALID;
	cmd = buf[12] & 0x0F;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return PROXY_PROTO_INVALID;
	if (len <= 13)
		return PROXY_PROTO_NEED_MORE;

	/* Only what a submission listener can be behind: TCP over IPv4 or
	 * IPv6, or UNSPEC (health checks); UDP and unix sockets are not. */
	fam = buf[13];
	switch (fam) {
	case V2_FAM_UNSPEC:
		need = 0;
		break;
	case V2_FAM_TCP4:
		need = V2_ADDR_LEN_TCP4;
		break;
	case V2_FAM_TCP6:
		need = V2_ADDR_LEN_TCP6;
		break;
	default:
		return PROXY_PROTO_INVALID;
	}
	if (len < V2_FIXED)
		return PROXY_PROTO_NEED_MORE;

	total = (size_t)buf[14] << 8 | buf[15];
	if (total < need || total > V2_LEN_MAX)
		return PROXY_PROTO_INVALID;

	/* §2.2.7: the rest is TLVs (type, 16-bit length, value), which must
	 * tile it exactly, as HAProxy itself requires; their content is of
	 * no use here. Checked as far as the data goes. */
	avail = min_size(len - V2_FIXED, total);
	for (pos = need; pos < total;) {
		size_t tlv_len;

		if (total - pos < V2_TLV_HEADER)
			return PROXY_PROTO_INVALID;
		if (avail < pos + V2_TLV_HEADER)
			return PROXY_PROTO_NEED_MORE;
		tlv_len = (size_t)a[pos + 1] << 8 | a[pos + 2];
		if (tlv_len > total - pos - V2_TLV_HEADER)
			return PROXY_PROTO_INVALID;
		pos += V2_TLV_HEADER + tlv_len;
	}
	if (len - V2_FIXED < total)
		return PROXY_PROTO_NEED_MORE;

	*len_r = V2_FIXED + total;
	/* §2.2: LOCAL: "the receiver must ... use the real connection
	 * endpoints and discard the protocol block including the family" */
	if (cmd == V2_CMD_LOCAL || fam == V2_FAM_UNSPEC)
		return PROXY_PROTO_OK;

	res->has_addr = 1;
	if (fam == V2_FAM_TCP4) {
		set_sockaddr(&res->src, AF_INET, a,
			     (uint16_t)(a[8] << 8 | a[9]));
		set_sockaddr(&res->dst, AF_INET, a + 4,
			     (uint16_t)(a[10] << 8 | a[11]));
	} else {
		set_sockaddr(&res->src, AF_INET6, a,
			     (uint16_t)(a[32] << 8 | a[33]));
		set_sockaddr(&res->dst, AF_INET6, a + 16,
			     (uint16_t)(a[34] << 8 | a[35]));
	}
	return PROXY_PROTO_OK;
}

enum proxy_proto_status proxy_proto_parse(const unsigned char *buf,
					  size_t len, size_t *len_r,
					  struct proxy_proto_result *res)
{
	enum proxy_proto_status st;

	*len_r = 0;
	memset(res, 0, sizeof(*res));
	if (len == 0)
		return PROXY_PROTO_NEED_MORE;
	/* The two versions differ from the first octet on. */
	if (buf[0] == v1_sig[0])
		st = v1_parse(buf, len, len_r, res);
	else if (buf[0] == v2_sig[0])
		st = v2_parse(buf, len, len_r, res);
	else
		st = PROXY_PROTO_INVALID;
	if (st != PROXY_PROTO_OK) {
		*len_r = 0;
		memset(res, 0, sizeof(*res));
	}
	return st;
}
