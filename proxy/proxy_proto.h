/* HAProxy PROXY protocol, versions 1 (text) and 2 (binary), receiving
 * side (haproxy.org/download/2.9/doc/proxy-protocol.txt). Pure: the
 * caller buffers the first octets of a connection and asks whether a
 * complete, valid header is there. */
#ifndef AUTHRELAY_PROXY_PROTO_H
#define AUTHRELAY_PROXY_PROTO_H

#include <stddef.h>
#include <sys/socket.h>

/* v1 is at most 107 octets; v2 is 16 + a length we cap (TLVs included). */
#define PROXY_PROTO_MAX 536

enum proxy_proto_status {
	PROXY_PROTO_NEED_MORE,	/* valid so far, incomplete */
	PROXY_PROTO_OK,		/* header complete: *len_r octets */
	PROXY_PROTO_INVALID,	/* not a valid header: close */
};

struct proxy_proto_result {
	/* The original client (source) address. For v1 "UNKNOWN" and v2
	 * LOCAL or AF_UNSPEC, has_addr is 0: keep the connection's own. */
	int has_addr;
	struct sockaddr_storage src;
	struct sockaddr_storage dst;
};

/* buf holds the first len octets received. On OK, *len_r is the header's
 * length (the rest of buf is the client's first data). Rules: v1 starts
 * "PROXY " and ends CRLF within 107 octets, "TCP4"/"TCP6"/"UNKNOWN",
 * addresses must parse as the family says, ports 0..65535 without
 * leading zeros or signs; v2 has the 12-octet signature, version 2,
 * command LOCAL or PROXY, family/protocol AF_INET/AF_INET6 + STREAM (or
 * UNSPEC), a length large enough for the addresses and at most
 * PROXY_PROTO_MAX - 16. Anything else is INVALID, as is a prefix that
 * can no longer become valid. */
enum proxy_proto_status proxy_proto_parse(const unsigned char *buf,
					  size_t len, size_t *len_r,
					  struct proxy_proto_result *res);

#endif
