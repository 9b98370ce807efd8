#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "addr_key.h"
#include "auth_cache.h"
#include "xalloc.h"

#define CACHE_BUCKETS 4096
/* Past this many entries the expired ones are swept, and if that is not
 * enough new ones are not stored: memory stays bounded whatever logins
 * arrive. */
#define CACHE_MAX_ENTRIES 65536
#define HASH_LEN AUTH_CACHE_HASH_LEN

struct cache_entry {
	struct cache_entry *next;
	char *login;
	unsigned char hash[HASH_LEN];
	char *user;
	char **address;
	size_t n_address;
	char **group;
	size_t n_group;
	uint64_t expires;
	uint64_t gen;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry *buckets[CACHE_BUCKETS];
static unsigned n_entries;
static unsigned char hmac_key[32];
static bool ready;

int auth_cache_init(void)
{
	if (RAND_bytes(hmac_key, sizeof(hmac_key)) != 1)
		return -1;
	ready = true;
	return 0;
}

static unsigned bucket_of(const char *login)
{
	/* The bucket only spreads load, the HMAC decides. */
	return fnv1a_str(FNV1A_INIT, login) % CACHE_BUCKETS;
}

int auth_cache_hash(const char *login, const char *password,
		    unsigned char out[AUTH_CACHE_HASH_LEN])
{
	size_t ll = strlen(login), pl = strlen(password);
	unsigned char *buf = xmalloc(ll + 1 + pl);
	unsigned int len = 0;
	int r;

	/* login NUL password: names never contain NUL */
	memcpy(buf, login, ll);
	buf[ll] = '\0';
	memcpy(buf + ll + 1, password, pl);
	if (!ready) {
		free_secret(buf, ll + 1 + pl);
		return -1;
	}
	r = HMAC(EVP_sha256(), hmac_key, sizeof(hmac_key), buf, ll + 1 + pl,
		 out, &len) != NULL && len == HASH_LEN ? 0 : -1;
	free_secret(buf, ll + 1 + pl);
	return r;
}

static void entry_free(struct cache_entry *e)
{
	free(e->login);
	free(e->user);
	for (size_t i = 0; i < e->n_address; i++)
		free(e->address[i]);
	free(e->address);
	for (size_t i = 0; i < e->n_group; i++)
		free(e->group[i]);
	free(e->group);
	explicit_bzero(e, sizeof(*e));
	free(e);
}

/* Unlink the entry for login; caller holds the lock. */
static void remove_locked(const char *login)
{
	struct cache_entry **pp = &buckets[bucket_of(login)];

	while (*pp != NULL) {
		if (strcmp((*pp)->login, login) == 0) {
			struct cache_entry *e = *pp;

			*pp = e->next;
			entry_free(e);
			n_entries--;
			return;
		}
		pp = &(*pp)->next;
	}
}

static void sweep_locked(uint64_t now)
{
	for (size_t b = 0; b < CACHE_BUCKETS; b++) {
		struct cache_entry **pp = &buckets[b];

		while (*pp != NULL) {
			struct cache_entry *e = *pp;

			if (e->expires <= now) {
				*pp = e->next;
				entry_free(e);
				n_entries--;
			} else {
				pp = &e->next;
			}
		}
	}
}

bool auth_cache_lookup(const char *login,
		       const unsigned char hash[AUTH_CACHE_HASH_LEN],
		       uint64_t now, struct auth_reply *rep)
{
	struct cache_entry *e;
	bool hit = false;

	if (!ready)
		return false;
	pthread_mutex_lock(&cache_lock);
	for (e = buckets[bucket_of(login)]; e != NULL; e = e->next)
		if (strcmp(e->login, login) == 0)
			break;
	if (e != NULL && e->expires > now &&
	    CRYPTO_memcmp(e->hash, hash, HASH_LEN) == 0) {
		memset(rep, 0, sizeof(*rep));
		rep->result = AUTH_OK;
		snprintf(rep->user, sizeof(rep->user), "%s", e->user);
		snprintf(rep->reason, sizeof(rep->reason), "cached");
		for (size_t i = 0; i < e->n_address; i++)
			snprintf(rep->address[i], sizeof(rep->address[i]), "%s",
				 e->address[i]);
		rep->n_address = e->n_address;
		for (size_t i = 0; i < e->n_group; i++)
			snprintf(rep->group[i], sizeof(rep->group[i]), "%s",
				 e->group[i]);
		rep->n_group = e->n_group;
		hit = true;
	} else if (e != NULL && e->expires <= now) {
		remove_locked(login);
	}
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

void auth_cache_store(const char *login,
		      const unsigned char hash[AUTH_CACHE_HASH_LEN],
		      const struct auth_reply *rep, uint64_t now, uint64_t ttl)
{
	auth_cache_store_gen(login, hash, rep, now, ttl, 0);
}

void auth_cache_store_gen(const char *login,
			  const unsigned char hash[AUTH_CACHE_HASH_LEN],
			  const struct auth_reply *rep, uint64_t now,
			  uint64_t ttl, uint64_t gen)
{
	struct cache_entry *e;
	unsigned b;

	if (!ready || rep->result != AUTH_OK)
		return;
	e = xcalloc(1, sizeof(*e));
	memcpy(e->hash, hash, HASH_LEN);
	e->login = xstrdup(login);
	e->user = xstrdup(rep->user);
	e->n_address = rep->n_address;
	e->address = xcalloc(rep->n_address ? rep->n_address : 1,
			     sizeof(*e->address));
	for (size_t i = 0; i < rep->n_address; i++)
		e->address[i] = xstrdup(rep->address[i]);
	e->n_group = rep->n_group;
	e->group = xcalloc(rep->n_group ? rep->n_group : 1, sizeof(*e->group));
	for (size_t i = 0; i < rep->n_group; i++)
		e->group[i] = xstrdup(rep->group[i]);
	e->expires = now + ttl;
	e->gen = gen;
	b = bucket_of(login);
	pthread_mutex_lock(&cache_lock);
	remove_locked(login);
	if (n_entries >= CACHE_MAX_ENTRIES)
		sweep_locked(now);
	if (n_entries >= CACHE_MAX_ENTRIES) {
		/* Full of live entries: the cache is only a shortcut, so
		 * this login simply is not remembered. */
		pthread_mutex_unlock(&cache_lock);
		entry_free(e);
		return;
	}
	e->next = buckets[b];
	buckets[b] = e;
	n_entries++;
	pthread_mutex_unlock(&cache_lock);
}

void auth_cache_forget(const char *login)
{
	pthread_mutex_lock(&cache_lock);
	remove_locked(login);
	pthread_mutex_unlock(&cache_lock);
}

void auth_cache_forget_older(const char *login, uint64_t evicted)
{
	struct cache_entry *e;

	pthread_mutex_lock(&cache_lock);
	for (e = buckets[bucket_of(login)]; e != NULL; e = e->next)
		if (strcmp(e->login, login) == 0)
			break;
	/* Verified at gen, evicted at a later generation. */
	if (e != NULL && e->gen < evicted)
		remove_locked(login);
	pthread_mutex_unlock(&cache_lock);
}

void auth_cache_clear(void)
{
	pthread_mutex_lock(&cache_lock);
	sweep_locked(UINT64_MAX);
	pthread_mutex_unlock(&cache_lock);
}

unsigned auth_cache_size(void)
{
	unsigned n;

	pthread_mutex_lock(&cache_lock);
	n = n_entries;
	pthread_mutex_unlock(&cache_lock);
	return n;
}
