#include "autoconf.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr_key.h"
#include "conn_limits.h"
#include "xalloc.h"

#define LIMITS_BUCKETS 4096

struct ip_count {
	struct ip_count *next;
	unsigned char addr[16];		/* IPv4 as v4-mapped IPv6 */
	unsigned count;
};

static pthread_mutex_t limits_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ip_count *buckets[LIMITS_BUCKETS];
static unsigned total;

static unsigned addr_hash(const unsigned char key[16])
{
	return fnv1a(FNV1A_INIT, key, 16) % LIMITS_BUCKETS;
}

static struct ip_count **find(const unsigned char key[16])
{
	struct ip_count **pp = &buckets[addr_hash(key)];

	while (*pp != NULL && memcmp((*pp)->addr, key, 16) != 0)
		pp = &(*pp)->next;
	return pp;
}

enum limits_verdict limits_connect(const struct sockaddr_storage *addr,
				   unsigned max_total, unsigned max_per_ip)
{
	enum limits_verdict v = LIMITS_OK;
	unsigned char key[16];
	struct ip_count **pp;

	addr_key(addr, key);
	pthread_mutex_lock(&limits_lock);
	pp = find(key);
	if (total >= max_total) {
		v = LIMITS_TOTAL;
	} else if (*pp != NULL && (*pp)->count >= max_per_ip) {
		v = LIMITS_PER_IP;
	} else {
		if (*pp == NULL) {
			*pp = xcalloc(1, sizeof(**pp));
			memcpy((*pp)->addr, key, 16);
		}
		(*pp)->count++;
		total++;
	}
	pthread_mutex_unlock(&limits_lock);
	return v;
}

void limits_disconnect(const struct sockaddr_storage *addr)
{
	unsigned char key[16];
	struct ip_count **pp, *e;

	addr_key(addr, key);
	pthread_mutex_lock(&limits_lock);
	pp = find(key);
	e = *pp;
	if (e != NULL) {
		if (--e->count == 0) {
			*pp = e->next;
			free(e);
		}
		total--;
	}
	pthread_mutex_unlock(&limits_lock);
}

unsigned limits_total(void)
{
	unsigned n;

	pthread_mutex_lock(&limits_lock);
	n = total;
	pthread_mutex_unlock(&limits_lock);
	return n;
}
