/* Keys for the shared tables (connection counts, login throttling, rate
 * limits, credential cache): a client address as 16 octets (IPv4 as
 * v4-mapped IPv6) and an FNV-1a hash that only spreads entries over
 * buckets (it decides nothing: entries are compared in full). */
#ifndef AUTHRELAY_ADDR_KEY_H
#define AUTHRELAY_ADDR_KEY_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define FNV1A_INIT 2166136261u

static inline uint32_t fnv1a(uint32_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static inline uint32_t fnv1a_str(uint32_t h, const char *s)
{
	return fnv1a(h, s, strlen(s));
}

static inline void addr_key(const struct sockaddr_storage *ss,
			    unsigned char key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		key[10] = key[11] = 0xff;
		memcpy(key + 12, &sin->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		memcpy(key, &sin6->sin6_addr, 16);
	}
}

#endif
