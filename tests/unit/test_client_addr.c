/* A client's address as the daemon keeps it: IPv4-mapped IPv6 (an IPv4
 * client on a dual-stack socket) becomes plain IPv4, port kept; every
 * other address stays as it is. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "client_addr.h"
#include "test.h"

static struct sockaddr_storage make(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (void *)&ss;

		sin6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &sin6->sin6_addr);
		sin6->sin6_port = htons((uint16_t)port);
	} else {
		struct sockaddr_in *sin = (void *)&ss;

		sin->sin_family = AF_INET;
		inet_pton(AF_INET, ip, &sin->sin_addr);
		sin->sin_port = htons((uint16_t)port);
	}
	return ss;
}

static const struct {
	const char *in;
	const char *want;
	int family;
} cases[] = {
	{ "::ffff:127.0.0.1", "127.0.0.1", AF_INET },
	{ "::ffff:192.0.2.7", "192.0.2.7", AF_INET },
	{ "::FFFF:c000:0207", "192.0.2.7", AF_INET },
	{ "::ffff:0.0.0.0", "0.0.0.0", AF_INET },
	{ "192.0.2.7", "192.0.2.7", AF_INET },
	{ "2001:db8::1", "2001:db8::1", AF_INET6 },
	{ "::1", "::1", AF_INET6 },
	/* IPv4-compatible (deprecated) and NAT64 are IPv6 addresses */
	{ "::192.0.2.7", "::192.0.2.7", AF_INET6 },
	{ "64:ff9b::c000:207", "64:ff9b::c000:207", AF_INET6 },
	{ "::fffe:192.0.2.7", "::fffe:c000:207", AF_INET6 },
};

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss = make(cases[i].in, 54321);
		char buf[INET6_ADDRSTRLEN];
		unsigned port;

		client_addr_normalize(&ss);
		CHECK_INT(ss.ss_family, cases[i].family, cases[i].in);
		port = client_addr_format(&ss, buf, sizeof(buf));
		CHECK_STR(buf, cases[i].want, cases[i].in);
		CHECK_INT(port, 54321, cases[i].in);
	}

	struct sockaddr_storage un;
	char buf[INET6_ADDRSTRLEN];

	memset(&un, 0, sizeof(un));
	un.ss_family = AF_UNIX;
	client_addr_normalize(&un);
	CHECK_INT(un.ss_family, AF_UNIX, "AF_UNIX untouched");
	CHECK_INT(client_addr_format(&un, buf, sizeof(buf)), 0, "AF_UNIX port");
	CHECK_STR(buf, "unknown", "AF_UNIX");
	return test_done("test_client_addr");
}
