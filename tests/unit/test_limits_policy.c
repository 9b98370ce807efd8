/* Per-address login throttling and per-user rate limits. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "auth_throttle.h"
#include "rate_limit.h"
#include "test.h"

#define S USEC_PER_SEC

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (void *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

static void test_throttle(void)
{
	struct config cfg;
	struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.2");
	bool blocked;
	uint64_t d;
	unsigned i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.max_failures_per_ip = 5;
	cfg.failure_window_usec = 60 * S;
	cfg.block_time_usec = 100 * S;
	cfg.failure_delay_usec = 1 * S;

	/* (address, login) back-off: 1s, 2s, 4s ... */
	d = auth_throttle_failure(&cfg, &a, "alice", 1 * S, &blocked);
	CHECK_INT(d, 1 * S, "first failure delay");
	d = auth_throttle_failure(&cfg, &a, "alice", 2 * S, &blocked);
	CHECK_INT(d, 2 * S, "second failure delay");
	d = auth_throttle_failure(&cfg, &a, "bob", 3 * S, &blocked);
	CHECK_INT(d, 1 * S, "other login: own back-off");
	auth_throttle_success(&a, "alice");
	d = auth_throttle_failure(&cfg, &a, "alice", 4 * S, &blocked);
	CHECK_INT(d, 1 * S, "success resets the pair's back-off");
	CHECK(!blocked && !auth_throttle_blocked(&a, 4 * S),
	      "4 failures: not blocked");

	/* Spraying: the 5th failure from one address (max_failures_per_ip
	 * = 5) blocks it: the attempt that reaches the limit is the last
	 * one whose password was checked. */
	auth_throttle_failure(&cfg, &a, "dave", 5 * S, &blocked);
	CHECK(blocked, "5th failure within the window (limit 5): got not "
	      "blocked, want blocked");
	CHECK(auth_throttle_blocked(&a, 6 * S), "blocked after");
	CHECK(!auth_throttle_blocked(&b, 6 * S), "another address is not");
	CHECK(auth_throttle_blocked(&a, 104 * S), "still blocked at 104s");
	CHECK(!auth_throttle_blocked(&a, 106 * S), "free after block_time");

	/* Failures spread over more than the window never block. */
	for (i = 0; i < 20; i++) {
		auth_throttle_failure(&cfg, &b, "eve", 1000 * S + i * 30 * S,
				      &blocked);
		CHECK(!blocked, "slow failures never block (%u)", i);
	}
	auth_throttle_clear();

	/* Blocks double. */
	for (i = 0; i < 6; i++)
		auth_throttle_failure(&cfg, &a, "x", 10000 * S, &blocked);
	CHECK(auth_throttle_blocked(&a, 10099 * S), "first block");
	for (i = 0; i < 6; i++)
		auth_throttle_failure(&cfg, &a, "x", 10101 * S, &blocked);
	CHECK(auth_throttle_blocked(&a, 10101 * S + 199 * S),
	      "second block lasts twice as long");
	CHECK(!auth_throttle_blocked(&a, 10101 * S + 201 * S),
	      "second block over");
	auth_throttle_clear();

	/* Limit 1: the first failure blocks. */
	cfg.max_failures_per_ip = 1;
	auth_throttle_failure(&cfg, &b, "z", 15000 * S, &blocked);
	CHECK(blocked && auth_throttle_blocked(&b, 15000 * S),
	      "limit 1: got the first failure not blocking, want it to");
	auth_throttle_clear();

	cfg.max_failures_per_ip = 0;
	for (i = 0; i < 100; i++)
		auth_throttle_failure(&cfg, &a, "y", 20000 * S, &blocked);
	CHECK(!auth_throttle_blocked(&a, 20000 * S),
	      "max_failures_per_ip = 0 never blocks");
	cfg.failure_delay_usec = 2 * S;
	d = auth_throttle_failure(&cfg, &a, "y", 20000 * S, &blocked);
	CHECK_INT(d, 60 * S, "back-off capped at 60s");
	auth_throttle_clear();
}

static void test_rate(void)
{
	struct config_rate r = { 3, 100 * S }, none = { 0, 0 };
	uint64_t t = 1000 * S;

	for (int i = 0; i < 3; i++) {
		CHECK(!rate_limit_exceeded(RATE_MESSAGES, &r, "alice", 1, t),
		      "message %d within the limit", i + 1);
		rate_limit_add(RATE_MESSAGES, &r, "alice", 1, t);
	}
	CHECK(rate_limit_exceeded(RATE_MESSAGES, &r, "alice", 1, t + 10 * S),
	      "4th message in the window");
	CHECK(!rate_limit_exceeded(RATE_MESSAGES, &r, "bob", 1, t + 10 * S),
	      "other user");
	CHECK(!rate_limit_exceeded(RATE_RECIPIENTS, &r, "alice", 1, t + 10 * S),
	      "other kind");
	CHECK(rate_limit_exceeded(RATE_MESSAGES, &r, "alice", 1, t + 99 * S),
	      "still at 99s");
	CHECK(!rate_limit_exceeded(RATE_MESSAGES, &r, "alice", 1, t + 200 * S),
	      "two windows later: free");
	CHECK(!rate_limit_exceeded(RATE_MESSAGES, &none, "alice", 1000000, t),
	      "count 0: no limit");
	CHECK(rate_limit_exceeded(RATE_RECIPIENTS, &r, "carol", 4, t),
	      "4 at once over 3");
	rate_limit_clear();
	CHECK(!rate_limit_exceeded(RATE_MESSAGES, &r, "alice", 1, t + 10 * S),
	      "cleared");

	/* take: check and count at once; a refusal counts nothing. */
	for (int i = 0; i < 3; i++)
		CHECK(rate_limit_take(RATE_MESSAGES, &r, "dave", 1, t),
		      "take %d within the limit", i + 1);
	CHECK(!rate_limit_take(RATE_MESSAGES, &r, "dave", 1, t),
	      "4th take refused");
	CHECK(!rate_limit_take(RATE_MESSAGES, &r, "dave", 1, t + 120 * S),
	      "a window later the previous one still weighs");
	CHECK(rate_limit_take(RATE_MESSAGES, &r, "dave", 1, t + 300 * S),
	      "free again later");
	CHECK(rate_limit_take(RATE_MESSAGES, &none, "dave", 1000000, t),
	      "count 0: take always succeeds");
	rate_limit_clear();
}

static void test_parse(void)
{
	struct config_rate r;

	CHECK_INT(config_parse_rate("500/1h", &r), 0, "500/1h");
	CHECK_INT(r.count, 500, "count");
	CHECK_INT(r.window_usec, 3600 * S, "window");
	CHECK_INT(config_parse_rate("0", &r), 0, "0");
	CHECK_INT(r.count, 0, "0 = none");
	CHECK_INT(config_parse_rate("", &r), 0, "empty");
	CHECK_INT(config_parse_rate("500", &r), -1, "no window");
	CHECK_INT(config_parse_rate("/1h", &r), -1, "no count");
	CHECK_INT(config_parse_rate("0/1h", &r), -1, "zero count");
	CHECK_INT(config_parse_rate("5/0", &r), -1, "zero window");
	CHECK_INT(config_parse_rate("5/1x", &r), -1, "bad unit");
	CHECK_INT(config_parse_rate("99999999999/1h", &r), -1, "huge");
	CHECK_INT(config_parse_rate("5/8d", &r), -1, "window over 7d");
}

int main(void)
{
	test_throttle();
	test_rate();
	test_parse();
	return test_done("test_limits_policy");
}
