#include "autoconf.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "addr_key.h"
#include "auth_throttle.h"
#include "auth_proto.h"
#include "xalloc.h"

#define THROTTLE_BUCKETS 4096
/* Entries are swept when there are this many; if sweeping frees none,
 * new addresses are still checked against blocks but not counted. */
#define THROTTLE_MAX_ENTRIES 200000
#define DELAY_MAX_USEC (60 * USEC_PER_SEC)
#define BLOCK_MAX_USEC (86400 * USEC_PER_SEC)

struct throttle_entry {
	struct throttle_entry *next;
	unsigned char addr[16];
	char *login;			/* NULL: the address as a whole */
	unsigned failures;		/* within the window */
	uint64_t window_start;
	uint64_t blocked_until;
	uint64_t block_len;		/* last block's length, for doubling */
	uint64_t last_seen;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct throttle_entry *buckets[THROTTLE_BUCKETS];
static unsigned n_entries;

static unsigned hash_of(const unsigned char key[16], const char *login)
{
	return fnv1a_str(fnv1a(FNV1A_INIT, key, 16), login ? login : "") %
	       THROTTLE_BUCKETS;
}

static struct throttle_entry *find(const unsigned char key[16],
				   const char *login, bool create,
				   uint64_t now)
{
	unsigned b = hash_of(key, login);
	struct throttle_entry *e;

	for (e = buckets[b]; e != NULL; e = e->next)
		if (memcmp(e->addr, key, 16) == 0 &&
		    ((e->login == NULL && login == NULL) ||
		     (e->login != NULL && login != NULL &&
		      strcmp(e->login, login) == 0)))
			return e;
	if (!create || n_entries >= THROTTLE_MAX_ENTRIES)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	memcpy(e->addr, key, 16);
	e->login = login ? xstrndup(login, AUTH_USER_MAX) : NULL;
	e->window_start = now;
	e->next = buckets[b];
	buckets[b] = e;
	n_entries++;
	return e;
}

static void sweep(uint64_t now, uint64_t window)
{
	for (size_t b = 0; b < THROTTLE_BUCKETS; b++) {
		struct throttle_entry **pp = &buckets[b];

		while (*pp != NULL) {
			struct throttle_entry *e = *pp;

			if (e->blocked_until <= now &&
			    e->last_seen + window <= now) {
				*pp = e->next;
				free(e->login);
				free(e);
				n_entries--;
			} else {
				pp = &e->next;
			}
		}
	}
}

bool auth_throttle_blocked(const struct sockaddr_storage *addr, uint64_t now)
{
	unsigned char key[16];
	struct throttle_entry *e;
	bool r;

	addr_key(addr, key);
	pthread_mutex_lock(&lock);
	e = find(key, NULL, false, now);
	r = e != NULL && e->blocked_until > now;
	pthread_mutex_unlock(&lock);
	return r;
}

/* One more failure in e's window; the window restarts once it is over. */
static unsigned count(struct throttle_entry *e, uint64_t now, uint64_t window)
{
	if (now - e->window_start >= window) {
		e->window_start = now;
		e->failures = 0;
	}
	e->last_seen = now;
	return ++e->failures;
}

uint64_t auth_throttle_failure(const struct config *cfg,
			       const struct sockaddr_storage *addr,
			       const char *login, uint64_t now,
			       bool *blocked_r)
{
	uint64_t window = cfg->failure_window_usec;
	unsigned char key[16];
	struct throttle_entry *ip, *pair;
	unsigned n_pair = 1;

	*blocked_r = false;
	addr_key(addr, key);
	pthread_mutex_lock(&lock);
	if (n_entries >= THROTTLE_MAX_ENTRIES)
		sweep(now, window);
	ip = find(key, NULL, true, now);
	/* The failure that reaches the limit blocks: that attempt was the
	 * last password checked from this address (the session answers it
	 * 421 and closes; the next AUTH or connection is refused before any
	 * check), so max_failures_per_ip is the number of guesses allowed. */
	if (ip != NULL && count(ip, now, window) >= cfg->max_failures_per_ip &&
	    cfg->max_failures_per_ip > 0) {
		ip->block_len = ip->block_len == 0 ? cfg->block_time_usec :
				ip->block_len * 2;
		if (ip->block_len > BLOCK_MAX_USEC)
			ip->block_len = BLOCK_MAX_USEC;
		ip->blocked_until = now + ip->block_len;
		ip->failures = 0;
		ip->window_start = now;
		*blocked_r = true;
	}
	pair = find(key, login, true, now);
	if (pair != NULL)
		n_pair = count(pair, now, window);
	pthread_mutex_unlock(&lock);

	return auth_throttle_delay(cfg, n_pair);
}

uint64_t auth_throttle_delay(const struct config *cfg, unsigned n_pair)
{
	uint64_t delay = cfg->failure_delay_usec;

	for (unsigned i = 1; i < n_pair && delay < DELAY_MAX_USEC; i++)
		delay *= 2;
	return delay < DELAY_MAX_USEC ? delay : DELAY_MAX_USEC;
}

void auth_throttle_success(const struct sockaddr_storage *addr,
			   const char *login)
{
	unsigned char key[16];
	struct throttle_entry *e;

	addr_key(addr, key);
	pthread_mutex_lock(&lock);
	e = find(key, login, false, 0);
	if (e != NULL)
		e->failures = 0;
	pthread_mutex_unlock(&lock);
}

void auth_throttle_clear(void)
{
	pthread_mutex_lock(&lock);
	sweep(UINT64_MAX, 0);
	pthread_mutex_unlock(&lock);
}
