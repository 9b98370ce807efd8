#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "addr_key.h"
#include "auth_proto.h"
#include "rate_limit.h"
#include "xalloc.h"

#define RATE_BUCKETS 4096
#define RATE_MAX_ENTRIES 200000

struct rate_entry {
	struct rate_entry *next;
	enum rate_kind kind;
	char *user;
	uint64_t window;	/* the window length these counts are for */
	uint64_t start;		/* start of the current fixed window */
	uint64_t cur, prev;	/* counts of the current and previous one */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rate_entry *buckets[RATE_BUCKETS];
static unsigned n_entries;

static unsigned hash_of(enum rate_kind kind, const char *user)
{
	return fnv1a_str(FNV1A_INIT ^ (uint32_t)kind, user) % RATE_BUCKETS;
}

static void sweep(uint64_t now)
{
	for (size_t b = 0; b < RATE_BUCKETS; b++) {
		struct rate_entry **pp = &buckets[b];

		while (*pp != NULL) {
			struct rate_entry *e = *pp;

			if (now >= e->start + 2 * e->window) {
				*pp = e->next;
				free(e->user);
				free(e);
				n_entries--;
			} else {
				pp = &e->next;
			}
		}
	}
}

static struct rate_entry *find(enum rate_kind kind, const char *user,
			       uint64_t window, uint64_t now, bool create)
{
	unsigned b = hash_of(kind, user);
	struct rate_entry *e;

	for (e = buckets[b]; e != NULL; e = e->next)
		if (e->kind == kind && strcmp(e->user, user) == 0)
			break;
	if (e == NULL) {
		if (!create)
			return NULL;
		if (n_entries >= RATE_MAX_ENTRIES)
			sweep(now);
		e = xcalloc(1, sizeof(*e));
		e->kind = kind;
		e->user = xstrndup(user, AUTH_USER_MAX);
		e->window = window;
		e->start = now;
		e->next = buckets[b];
		buckets[b] = e;
		n_entries++;
	}
	if (e->window != window) {
		/* The limit changed on reload: start afresh. */
		e->window = window;
		e->start = now;
		e->cur = e->prev = 0;
	}
	/* Move the fixed windows along to now. */
	if (now >= e->start + 2 * window) {
		e->prev = 0;
		e->cur = 0;
		e->start = now;
	} else if (now >= e->start + window) {
		e->prev = e->cur;
		e->cur = 0;
		e->start += window;
	}
	return e;
}

/* Events in the sliding window ending at now. */
static uint64_t sliding(const struct rate_entry *e, uint64_t now)
{
	uint64_t into = now - e->start;
	/* share of the previous window still inside the sliding one,
	 * rounded up so a limit is never exceeded by rounding */
	uint64_t prev = (e->prev * (e->window - into) + e->window - 1) /
			e->window;

	return e->cur + prev;
}

bool rate_limit_exceeded(enum rate_kind kind, const struct config_rate *rate,
			 const char *user, unsigned n, uint64_t now)
{
	struct rate_entry *e;
	bool r = false;

	if (rate->count == 0)
		return false;
	pthread_mutex_lock(&lock);
	e = find(kind, user, rate->window_usec, now, false);
	if (e != NULL)
		r = sliding(e, now) + n > rate->count;
	else
		r = n > rate->count;
	pthread_mutex_unlock(&lock);
	return r;
}

void rate_limit_add(enum rate_kind kind, const struct config_rate *rate,
		    const char *user, unsigned n, uint64_t now)
{
	struct rate_entry *e;

	if (rate->count == 0)
		return;
	pthread_mutex_lock(&lock);
	e = find(kind, user, rate->window_usec, now, true);
	e->cur += n;
	pthread_mutex_unlock(&lock);
}

bool rate_limit_take(enum rate_kind kind, const struct config_rate *rate,
		     const char *user, unsigned n, uint64_t now)
{
	struct rate_entry *e;
	bool ok;

	if (rate->count == 0)
		return true;
	pthread_mutex_lock(&lock);
	e = find(kind, user, rate->window_usec, now, true);
	ok = sliding(e, now) + n <= rate->count;
	if (ok)
		e->cur += n;
	pthread_mutex_unlock(&lock);
	return ok;
}

void rate_limit_clear(void)
{
	pthread_mutex_lock(&lock);
	for (size_t b = 0; b < RATE_BUCKETS; b++) {
		while (buckets[b] != NULL) {
			struct rate_entry *e = buckets[b];

			buckets[b] = e->next;
			free(e->user);
			free(e);
		}
	}
	n_entries = 0;
	pthread_mutex_unlock(&lock);
}
