/* A client's address as the daemon keeps it: taken once, where it first
 * comes in (accept(2), or the PROXY protocol header), and from then on
 * the same for logs, journal fields, the Received header, XCLIENT, the
 * auth workers and every limit. Pure: no I/O. */
#ifndef AUTHRELAY_CLIENT_ADDR_H
#define AUTHRELAY_CLIENT_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* An IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2, ::ffff:a.b.c.d: an
 * IPv4 client on a dual-stack [::] socket) becomes the AF_INET address
 * it stands for, port kept; anything else is left as it is. */
void client_addr_normalize(struct sockaddr_storage *ss);

/* The address as text ("192.0.2.7", "2001:db8::1"; "unknown" for a
 * family that is neither) into buf (INET6_ADDRSTRLEN is enough); the
 * port comes back, 0 for "unknown". */
unsigned client_addr_format(const struct sockaddr_storage *ss, char *buf,
			    size_t size);

#endif
