#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "client_addr.h"

void client_addr_normalize(struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	struct sockaddr_in sin = { .sin_family = AF_INET };

	if (ss->ss_family != AF_INET6 ||
	    !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		return;
	/* RFC 4291 §2.5.5.2: the IPv4 address is the low-order 32 bits. */
	memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
	sin.sin_port = sin6->sin6_port;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &sin, sizeof(sin));
}

unsigned client_addr_format(const struct sockaddr_storage *ss, char *buf,
			    size_t size)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		if (inet_ntop(AF_INET, &sin->sin_addr, buf,
			      (socklen_t)size) != NULL)
			return ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		if (inet_ntop(AF_INET6, &sin6->sin6_addr, buf,
			      (socklen_t)size) != NULL)
			return ntohs(sin6->sin6_port);
	}
	snprintf(buf, size, "unknown");
	return 0;
}
