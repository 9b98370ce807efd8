/* [policy] shared_state values (common/redis_uri.h). */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "redis_uri.h"
#include "test.h"

struct good {
	const char *in;
	const char *user, *host, *path;
	unsigned port, db;
};

static const struct good goods[] = {
	{ "redis://127.0.0.1:6379/0", "", "127.0.0.1", "", 6379, 0 },
	{ "redis://10.0.0.5", "", "10.0.0.5", "", 6379, 0 },
	{ "redis://redis.example.com:6380", "", "redis.example.com", "",
	  6380, 0 },
	{ "redis://redis.example.com/", "", "redis.example.com", "", 6379, 0 },
	{ "redis://authrelay@10.0.0.5:6379/3", "authrelay", "10.0.0.5", "",
	  6379, 3 },
	{ "redis://[::1]:7000/15", "", "::1", "", 7000, 15 },
	{ "redis://[2001:db8::5]", "", "2001:db8::5", "", 6379, 0 },
	{ "unix:/run/redis/redis-server.sock", "", "",
	  "/run/redis/redis-server.sock", 6379, 0 },
};

static const char *const bads[] = {
	"",
	"127.0.0.1:6379",			/* no scheme */
	"rediss://127.0.0.1",			/* TLS: not supported */
	"redis://",				/* no host */
	"redis://user:secret@10.0.0.5",		/* a password in the URI */
	"redis://@10.0.0.5",			/* empty user */
	"redis://10.0.0.5:0",
	"redis://10.0.0.5:65536",
	"redis://10.0.0.5:63a9",
	"redis://10.0.0.5/16",			/* databases 0..15 */
	"redis://10.0.0.5/x",
	"redis://10.0.0.5:6379/0/extra",
	"redis://[::1",				/* unclosed */
	"redis://[::1]x",
	"redis://host name",
	"redis://a_b.example.com",
	"unix:relative.sock",
	"unix:",
	"unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",	/* 110 octets */
};

static void test_good(void)
{
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		struct redis_uri u;
		const char *error = NULL;
		char what[160];

		snprintf(what, sizeof(what), "%s", g->in);
		CHECK(redis_uri_parse(g->in, &u, &error) == 0,
		      "%s: got error \"%s\", want success", what,
		      error ? error : "");
		CHECK_STR(u.user, g->user, what);
		CHECK_STR(u.host, g->host, what);
		CHECK_STR(u.path, g->path, what);
		CHECK_INT(u.port, g->port, what);
		CHECK_INT(u.db, g->db, what);
	}
}

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct redis_uri u;
		const char *error = NULL;
		int r = redis_uri_parse(bads[i], &u, &error);

		CHECK(r == -1 && error != NULL && error[0] != '\0',
		      "\"%s\": got %d (%s), want -1 with a message", bads[i],
		      r, error ? error : "no message");
	}
}

static void test_password_message(void)
{
	struct redis_uri u;
	const char *error = NULL;

	redis_uri_parse("redis://u:pw@h", &u, &error);
	CHECK(error != NULL && strstr(error, "shared_state_password_file"),
	      "a password in the URI: got \"%s\", want a message that names "
	      "shared_state_password_file", error ? error : "(null)");
}

int main(void)
{
	test_good();
	test_bad();
	test_password_message();
	return test_done("test_redis_uri");
}
