#include "autoconf.h"

#include <string.h>

#include "auth_cache.h"
#include "test.h"

static struct auth_reply ok_reply(const char *user, const char *addr)
{
	struct auth_reply r;

	memset(&r, 0, sizeof(r));
	r.result = AUTH_OK;
	snprintf(r.user, sizeof(r.user), "%s", user);
	if (addr != NULL) {
		snprintf(r.address[0], sizeof(r.address[0]), "%s", addr);
		r.n_address = 1;
	}
	return r;
}

static bool lookup(const char *login, const char *pw, uint64_t now,
		   struct auth_reply *rep)
{
	unsigned char h[AUTH_CACHE_HASH_LEN];

	if (auth_cache_hash(login, pw, h) < 0)
		return false;
	return auth_cache_lookup(login, h, now, rep);
}

static void store(const char *login, const char *pw, const char *user,
		  uint64_t now, uint64_t ttl)
{
	unsigned char h[AUTH_CACHE_HASH_LEN];
	struct auth_reply r = ok_reply(user, "alice@example.com");

	CHECK(auth_cache_hash(login, pw, h) == 0, "hash %s", login);
	auth_cache_store(login, h, &r, now, ttl);
}

int main(void)
{
	struct auth_reply rep;
	unsigned char h1[AUTH_CACHE_HASH_LEN], h2[AUTH_CACHE_HASH_LEN];

	CHECK(!lookup("alice", "pw", 0, &rep), "before init: no hit");
	CHECK_INT(auth_cache_init(), 0, "init");

	/* The hash binds login and password together. */
	auth_cache_hash("alice", "secret", h1);
	auth_cache_hash("alic", "esecret", h2);
	CHECK(memcmp(h1, h2, sizeof(h1)) != 0, "alice/secret != alic/esecret");

	store("alice", "secret", "Alice", 1000, 500);
	CHECK(lookup("alice", "secret", 1001, &rep), "hit within ttl");
	CHECK_STR(rep.user, "Alice", "canonical name from the cache");
	CHECK_INT(rep.n_address, 1, "addresses from the cache");
	CHECK_STR(rep.address[0], "alice@example.com", "address");
	CHECK_INT(rep.result, AUTH_OK, "result");
	CHECK(!lookup("alice", "Secret", 1001, &rep), "other password: miss");
	CHECK(!lookup("alice", "", 1001, &rep), "empty password: miss");
	CHECK(!lookup("bob", "secret", 1001, &rep), "other login: miss");
	CHECK(!lookup("alice", "secret", 1500, &rep), "at expiry: miss");
	CHECK_INT(auth_cache_size(), 0, "expired entry dropped on lookup");

	store("alice", "secret", "Alice", 2000, 500);
	auth_cache_forget("alice");
	CHECK(!lookup("alice", "secret", 2001, &rep), "forgotten: miss");

	/* A new password replaces the old entry. */
	store("alice", "old", "Alice", 3000, 500);
	store("alice", "new", "Alice", 3001, 500);
	CHECK(!lookup("alice", "old", 3002, &rep), "old password: miss");
	CHECK(lookup("alice", "new", 3002, &rep), "new password: hit");
	CHECK_INT(auth_cache_size(), 1, "one entry per login");

	for (int i = 0; i < 1000; i++) {
		char login[32];

		snprintf(login, sizeof(login), "user%d", i);
		store(login, "pw", login, 4000, 500);
	}
	CHECK_INT(auth_cache_size(), 1001, "1000 more entries");
	CHECK(lookup("user999", "pw", 4001, &rep), "user999 hit");
	auth_cache_clear();
	CHECK_INT(auth_cache_size(), 0, "cleared");
	CHECK(!lookup("user999", "pw", 4001, &rep), "cleared: miss");
	return test_done("test_auth_cache");
}
