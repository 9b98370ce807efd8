/* proxy/relay_token.c: the per-mailbox token table the supervisor
 * fills. Lookups hand out unexpired tokens only; a miss or a refused
 * token asks for a fetch through the hook (a miss at most once a second
 * per mailbox, a refusal at once but once); threads may look up while
 * another sets. */

#include "autoconf.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "relay_token.h"
#include "test.h"

static char requested[16][64];
static int n_requested;

static void hook(const char *mailbox, void *ctx)
{
	(void)ctx;
	if (n_requested < 16)
		snprintf(requested[n_requested], 64, "%s", mailbox);
	n_requested++;
}

static uint64_t now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

#define HOUR (3600ULL * 1000000ULL)

static void test_table(void)
{
	char buf[RELAY_TOKEN_MAX + 1];

	relay_token_clear();
	n_requested = 0;
	relay_token_set_request_hook(hook, NULL);
	CHECK_INT(relay_token_lookup("a@example.com", buf, sizeof(buf)), -1,
		  "lookup before any set");
	CHECK_STR(buf, "", "buf on a miss");
	CHECK_INT(n_requested, 1, "hook calls after a miss");
	CHECK_STR(requested[0], "a@example.com", "requested mailbox");
	relay_token_lookup("a@example.com", buf, sizeof(buf));
	CHECK_INT(n_requested, 1, "hook calls after a second miss at once");

	CHECK_INT(relay_token_set("a@example.com", "tok.1", now() + HOUR), 0,
		  "set");
	CHECK_INT(relay_token_lookup("A@Example.COM", buf, sizeof(buf)), 0,
		  "lookup, other case");
	CHECK_STR(buf, "tok.1", "token");
	CHECK_INT(relay_token_lookup("a@example.com", buf, 5), -1,
		  "buffer too small");

	/* Within the margin of its expiry a token is not handed out. */
	relay_token_set("b@example.com", "tok.2",
			now() + RELAY_TOKEN_MARGIN_USEC / 2);
	CHECK_INT(relay_token_lookup("b@example.com", buf, sizeof(buf)), -1,
		  "token about to expire");

	/* Refused: dropped, and a fetch asked for at once, once. */
	n_requested = 0;
	relay_token_invalidate("a@example.com");
	CHECK_INT(n_requested, 1, "hook calls after invalidate");
	CHECK_INT(relay_token_lookup("a@example.com", buf, sizeof(buf)), -1,
		  "lookup after invalidate");
	relay_token_invalidate("a@example.com");
	CHECK_INT(n_requested, 1, "hook calls after a second invalidate");

	CHECK_INT(relay_token_set("bad mailbox", "t", now() + HOUR), -1,
		  "mailbox with a space");
	CHECK_INT(relay_token_set("c@example.com", "t\r\nQUIT", now() + HOUR),
		  -1, "token with CR LF");
	CHECK_INT(relay_token_set("c@example.com", "", now() + HOUR), -1,
		  "empty token");

	/* A full table makes room. */
	for (int i = 0; i < RELAY_TOKEN_SLOTS + 10; i++) {
		char m[64];

		snprintf(m, sizeof(m), "u%d@example.com", i);
		relay_token_set(m, "t", now() + HOUR + (uint64_t)i);
	}
	CHECK_INT(relay_token_lookup("u1033@example.com", buf, sizeof(buf)), 0,
		  "newest entry of a full table");
	relay_token_set_request_hook(NULL, NULL);
	relay_token_clear();
	CHECK_INT(relay_token_lookup("u1033@example.com", buf, sizeof(buf)),
		  -1, "after clear");
}

static void *reader(void *arg)
{
	char buf[RELAY_TOKEN_MAX + 1];
	long bad = 0;

	for (int i = 0; i < 20000; i++)
		if (relay_token_lookup("t@example.com", buf, sizeof(buf)) == 0 &&
		    strcmp(buf, "tok.A") != 0 && strcmp(buf, "tok.BBBBBBBB") != 0)
			bad++;
	*(long *)arg = bad;
	return NULL;
}

static void test_threads(void)
{
	pthread_t th[2];
	long bad[2] = { 0, 0 };

	relay_token_set("t@example.com", "tok.A", now() + HOUR);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader, &bad[i]);
	for (int i = 0; i < 20000; i++)
		relay_token_set("t@example.com", i % 2 ? "tok.A" : "tok.BBBBBBBB",
				now() + HOUR);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_INT(bad[0] + bad[1], 0, "torn tokens seen by readers");
	relay_token_clear();
}

int main(void)
{
	test_table();
	test_threads();
	return test_done("test_relay_token");
}
