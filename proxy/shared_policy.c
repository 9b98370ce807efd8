#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "addr_key.h"
#include "auth_cache.h"
#include "auth_proto.h"
#include "auth_throttle.h"
#include "shared_policy.h"
#include "xalloc.h"

#define KEY_MAX 160

/* The scripts, in enum shared_script order. Time is Redis' own (TIME),
 * so the nodes' clocks never need to agree; every key a script writes
 * expires. */
const char *const shared_script_text[SHARED_N_SCRIPTS] = {
	/* RATE_TAKE: KEYS[1] the user's counter base; ARGV limit,
	 * window_ms, n. The sliding window over two fixed ones, as
	 * rate_limit.c: the previous window's count weighted by how much
	 * of it still overlaps, rounded up. -> {taken 0/1, count} */
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local w = tonumber(ARGV[2])\n"
	"local idx = math.floor(now / w)\n"
	"local ck = KEYS[1] .. ':' .. idx\n"
	"local cur = tonumber(redis.call('GET', ck) or '0')\n"
	"local prev = tonumber(redis.call('GET', KEYS[1] .. ':' .. (idx - 1)) or '0')\n"
	"local into = now - idx * w\n"
	"local used = cur + math.floor((prev * (w - into) + w - 1) / w)\n"
	"local n = tonumber(ARGV[3])\n"
	"if used + n > tonumber(ARGV[1]) then return {0, used} end\n"
	"redis.call('INCRBY', ck, n)\n"
	"redis.call('PEXPIRE', ck, 2 * w)\n"
	"return {1, used + n}\n",
	/* BLOCKED: KEYS[1] the address' block mark. -> {blocked 0/1} */
	"return {redis.call('EXISTS', KEYS[1])}\n",
	/* AUTH_FAILURE: KEYS the address' failures, its last block length,
	 * its block mark, the (address, login) failures, the cache
	 * generation, the login's eviction mark; ARGV max_failures_per_ip,
	 * failure_window_ms, block_time_ms, the longest block (ms), how
	 * long an eviction mark lives (ms). As auth_throttle.c: the
	 * failure that reaches the limit blocks, for block_time doubled at
	 * each new block. -> {blocked 0/1, pair failures} */
	"local w = tonumber(ARGV[2])\n"
	"local n = redis.call('INCR', KEYS[1])\n"
	"if n == 1 then redis.call('PEXPIRE', KEYS[1], w) end\n"
	"local blocked = 0\n"
	"local max = tonumber(ARGV[1])\n"
	"if max > 0 and n >= max then\n"
	"  local len = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
	"  if len == 0 then len = tonumber(ARGV[3]) else len = len * 2 end\n"
	"  if len > tonumber(ARGV[4]) then len = tonumber(ARGV[4]) end\n"
	"  redis.call('SET', KEYS[2], len, 'PX', len + w)\n"
	"  redis.call('SET', KEYS[3], 1, 'PX', len)\n"
	"  redis.call('DEL', KEYS[1])\n"
	"  blocked = 1\n"
	"end\n"
	"local p = redis.call('INCR', KEYS[4])\n"
	"if p == 1 then redis.call('PEXPIRE', KEYS[4], w) end\n"
	"local g = redis.call('INCR', KEYS[5])\n"
	"redis.call('SET', KEYS[6], g, 'PX', ARGV[5])\n"
	"return {blocked, p}\n",
	/* AUTH_SUCCESS: KEYS[1] the pair's failures. -> {1} */
	"redis.call('DEL', KEYS[1])\nreturn {1}\n",
	/* EVICT: KEYS the cache generation, the eviction mark; ARGV how
	 * long the mark lives (ms). -> {generation} */
	"local g = redis.call('INCR', KEYS[1])\n"
	"redis.call('SET', KEYS[2], g, 'PX', ARGV[1])\n"
	"return {g}\n",
	/* AUTH_CHECK: KEYS the cache generation, the login's eviction
	 * mark, the reload mark, the address' block mark.
	 * -> {generation, evicted, all evicted, blocked 0/1} */
	"return {tonumber(redis.call('GET', KEYS[1]) or '0'),\n"
	"        tonumber(redis.call('GET', KEYS[2]) or '0'),\n"
	"        tonumber(redis.call('GET', KEYS[3]) or '0'),\n"
	"        redis.call('EXISTS', KEYS[4])}\n",
};

void shared_policy_key(const struct settings *st, const char *kind,
		       const void *name, size_t len, char *buf, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	char hex[33];

	HMAC(EVP_sha256(), st->shared->key, SHARED_KEY_LEN, name, len, md,
	     &md_len);
	for (unsigned i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(buf, size, "%s%s:%s", st->cfg->shared_state_prefix, kind,
		 hex);
}

static void plain_key(const struct settings *st, const char *kind,
		      char *buf, size_t size)
{
	snprintf(buf, size, "%s%s", st->cfg->shared_state_prefix, kind);
}

/* (address, login) as one name: 16 octets, then the login. */
static size_t pair_name(const struct sockaddr_storage *addr,
			const char *login, unsigned char *buf)
{
	size_t n = strnlen(login, AUTH_USER_MAX);

	addr_key(addr, buf);
	memcpy(buf + 16, login, n);
	return 16 + n;
}

static bool fail_open(const struct settings *st)
{
	return st->cfg->shared_state_failure == SHARED_FAILURE_OPEN;
}

static uint64_t ms(uint64_t usec)
{
	return (usec + 999) / 1000;
}

/* What a pending call needs to finish: its caller, and what the
 * node-local fallback takes. Owned by the call (ctx_free). */
struct pending {
	struct settings *st;	/* referenced */
	policy_cb *cb;
	policy_failure_cb *fail_cb;
	policy_auth_cb *auth_cb;
	void *ctx;
	enum rate_kind kind;
	struct config_rate rate;
	struct sockaddr_storage addr;
	uint64_t now;
	bool local_blocked;
	uint64_t local_delay;
	char name[AUTH_USER_MAX + 1];
};

static struct pending *pending_new(struct settings *st, void *ctx)
{
	struct pending *p = xcalloc(1, sizeof(*p));

	atomic_fetch_add(&st->refs, 1);
	p->st = st;
	p->ctx = ctx;
	return p;
}

static void pending_free(void *d)
{
	struct pending *p = d;

	settings_put(&p->st);
	explicit_bzero(p, sizeof(*p));
	free(p);
}

/* --- rates --- */

static void on_rate(const long long *v, size_t n, void *d)
{
	struct pending *p = d;

	if (v != NULL && n >= 1) {
		if (v[0] == 1)
			/* Counted here too, for when Redis is gone. */
			rate_limit_add(p->kind, &p->rate, p->name, 1, p->now);
		p->cb(p->ctx, v[0] == 1 ? POLICY_OK : POLICY_REFUSED);
	} else if (fail_open(p->st)) {
		p->cb(p->ctx, rate_limit_take(p->kind, &p->rate, p->name, 1,
					      p->now) ? POLICY_OK :
			      POLICY_REFUSED);
	} else {
		p->cb(p->ctx, POLICY_UNAVAILABLE);
	}
}

void shared_policy_rate_take(struct shared_state *ss, struct settings *st,
			     enum rate_kind kind,
			     const struct config_rate *rate, const char *user,
			     uint64_t now, struct shared_call **slot,
			     policy_cb *cb, void *ctx)
{
	char key[KEY_MAX], limit[16], window[24];
	const char *keys[1] = { key }, *args[3] = { limit, window, "1" };
	struct pending *p;

	if (rate->count == 0 || !shared_state_enabled(ss) ||
	    st->shared == NULL) {
		cb(ctx, rate_limit_take(kind, rate, user, 1, now) ?
		   POLICY_OK : POLICY_REFUSED);
		return;
	}
	shared_policy_key(st, kind == RATE_MESSAGES ? "rate:msg" : "rate:rcpt",
			  user, strlen(user), key, sizeof(key));
	/* One counter per window length: a changed limit starts afresh. */
	snprintf(key + strlen(key), sizeof(key) - strlen(key), ":%llu",
		 (unsigned long long)ms(rate->window_usec));
	snprintf(limit, sizeof(limit), "%u", rate->count);
	snprintf(window, sizeof(window), "%llu",
		 (unsigned long long)ms(rate->window_usec));
	p = pending_new(st, ctx);
	p->cb = cb;
	p->kind = kind;
	p->rate = *rate;
	p->now = now;
	snprintf(p->name, sizeof(p->name), "%s", user);
	shared_state_eval(ss, SHARED_RATE_TAKE, keys, 1, args, 3,
			  st->cfg->shared_state_timeout_usec, slot, on_rate, p,
			  pending_free);
}

/* --- blocks --- */

static void on_blocked(const long long *v, size_t n, void *d)
{
	struct pending *p = d;

	if (v != NULL && n >= 1)
		p->cb(p->ctx, v[0] ? POLICY_REFUSED : POLICY_OK);
	else
		/* Open: the node-local table, already asked, said no. */
		p->cb(p->ctx, fail_open(p->st) ? POLICY_OK :
		      POLICY_UNAVAILABLE);
}

void shared_policy_blocked(struct shared_state *ss, struct settings *st,
			   const struct sockaddr_storage *addr, uint64_t now,
			   struct shared_call **slot, policy_cb *cb,
			   void *ctx)
{
	unsigned char name[16];
	char key[KEY_MAX];
	const char *keys[1] = { key };
	struct pending *p;

	if (auth_throttle_blocked(addr, now)) {
		cb(ctx, POLICY_REFUSED);
		return;
	}
	if (!shared_state_enabled(ss) || st->shared == NULL) {
		cb(ctx, POLICY_OK);
		return;
	}
	addr_key(addr, name);
	shared_policy_key(st, "block", name, sizeof(name), key, sizeof(key));
	p = pending_new(st, ctx);
	p->cb = cb;
	shared_state_eval(ss, SHARED_BLOCKED, keys, 1, NULL, 0,
			  st->cfg->shared_state_timeout_usec, slot, on_blocked,
			  p, pending_free);
}

/* --- failed and successful logins --- */

static uint64_t evict_mark_ms(const struct config *cfg)
{
	/* An entry lives at most cache_ttl; a mark a little longer. */
	return ms(cfg->cache_ttl_usec) + 60 * 1000;
}

static void on_failure(const long long *v, size_t n, void *d)
{
	struct pending *p = d;
	bool blocked = p->local_blocked;
	uint64_t delay = p->local_delay;

	if (v != NULL && n >= 2) {
		uint64_t shared_delay = auth_throttle_delay(p->st->cfg,
							    (unsigned)v[1]);

		blocked = blocked || v[0] == 1;
		if (shared_delay > delay)
			delay = shared_delay;
	}
	p->fail_cb(p->ctx, blocked, delay);
}

void shared_policy_auth_failure(struct shared_state *ss, struct settings *st,
				const struct sockaddr_storage *addr,
				const char *login, uint64_t now,
				struct shared_call **slot,
				policy_failure_cb *cb, void *ctx)
{
	const struct config *cfg = st->cfg;
	unsigned char addr_name[16], pair[16 + AUTH_USER_MAX];
	char k[6][KEY_MAX], a[5][24];
	const char *keys[6] = { k[0], k[1], k[2], k[3], k[4], k[5] };
	const char *args[5] = { a[0], a[1], a[2], a[3], a[4] };
	struct pending *p;
	bool blocked;
	uint64_t delay;

	/* Counted here in any case: the fallback when Redis is gone. */
	delay = auth_throttle_failure(cfg, addr, login, now, &blocked);
	if (!shared_state_enabled(ss) || st->shared == NULL) {
		cb(ctx, blocked, delay);
		return;
	}
	addr_key(addr, addr_name);
	shared_policy_key(st, "fail", addr_name, 16, k[0], KEY_MAX);
	shared_policy_key(st, "blocklen", addr_name, 16, k[1], KEY_MAX);
	shared_policy_key(st, "block", addr_name, 16, k[2], KEY_MAX);
	shared_policy_key(st, "fail", pair, pair_name(addr, login, pair), k[3],
			  KEY_MAX);
	plain_key(st, "cache:gen", k[4], KEY_MAX);
	shared_policy_key(st, "cache:evict", login, strlen(login), k[5],
			  KEY_MAX);
	snprintf(a[0], 24, "%u", cfg->max_failures_per_ip);
	snprintf(a[1], 24, "%llu",
		 (unsigned long long)ms(cfg->failure_window_usec));
	snprintf(a[2], 24, "%llu",
		 (unsigned long long)ms(cfg->block_time_usec));
	snprintf(a[3], 24, "%llu",
		 (unsigned long long)ms(AUTH_THROTTLE_BLOCK_MAX_USEC));
	snprintf(a[4], 24, "%llu", (unsigned long long)evict_mark_ms(cfg));
	p = pending_new(st, ctx);
	p->fail_cb = cb;
	p->local_blocked = blocked;
	p->local_delay = delay;
	shared_state_eval(ss, SHARED_AUTH_FAILURE, keys, 6, args, 5,
			  cfg->shared_state_timeout_usec, slot, on_failure, p,
			  pending_free);
}

void shared_policy_auth_success(struct shared_state *ss, struct settings *st,
				const struct sockaddr_storage *addr,
				const char *login)
{
	unsigned char pair[16 + AUTH_USER_MAX];
	char key[KEY_MAX];
	const char *keys[1] = { key };

	auth_throttle_success(addr, login);
	if (!shared_state_enabled(ss) || st->shared == NULL)
		return;
	shared_policy_key(st, "fail", pair, pair_name(addr, login, pair), key,
			  sizeof(key));
	shared_state_eval(ss, SHARED_AUTH_SUCCESS, keys, 1, NULL, 0,
			  st->cfg->shared_state_timeout_usec, NULL, NULL, NULL,
			  NULL);
}

/* --- the credential cache --- */

static void on_auth_check(const long long *v, size_t n, void *d)
{
	struct pending *p = d;

	if (v != NULL && n >= 4) {
		uint64_t evicted = (uint64_t)(v[1] > v[2] ? v[1] : v[2]);

		if (v[3] != 0) {
			p->auth_cb(p->ctx, POLICY_REFUSED, 0);
			return;
		}
		auth_cache_forget_older(p->name, evicted);
		p->auth_cb(p->ctx, POLICY_OK, (uint64_t)v[0]);
		return;
	}
	/* Open: the node-local block table (asked already) and cache. */
	p->auth_cb(p->ctx, fail_open(p->st) ? POLICY_OK : POLICY_UNAVAILABLE,
		   0);
}

void shared_policy_auth_check(struct shared_state *ss, struct settings *st,
			      const struct sockaddr_storage *addr,
			      const char *login, uint64_t now,
			      struct shared_call **slot, policy_auth_cb *cb,
			      void *ctx)
{
	unsigned char addr_name[16];
	char k[4][KEY_MAX];
	const char *keys[4] = { k[0], k[1], k[2], k[3] };
	struct pending *p;

	if (auth_throttle_blocked(addr, now)) {
		cb(ctx, POLICY_REFUSED, 0);
		return;
	}
	if (!shared_state_enabled(ss) || st->shared == NULL) {
		cb(ctx, POLICY_OK, 0);
		return;
	}
	plain_key(st, "cache:gen", k[0], KEY_MAX);
	shared_policy_key(st, "cache:evict", login, strlen(login), k[1],
			  KEY_MAX);
	plain_key(st, "cache:evict-all", k[2], KEY_MAX);
	addr_key(addr, addr_name);
	shared_policy_key(st, "block", addr_name, 16, k[3], KEY_MAX);
	p = pending_new(st, ctx);
	p->auth_cb = cb;
	snprintf(p->name, sizeof(p->name), "%s", login);
	shared_state_eval(ss, SHARED_AUTH_CHECK, keys, 4, NULL, 0,
			  st->cfg->shared_state_timeout_usec, slot,
			  on_auth_check, p, pending_free);
}

void shared_policy_evict_all(struct shared_state *ss, struct settings *st)
{
	char k[2][KEY_MAX], a[24];
	const char *keys[2] = { k[0], k[1] }, *args[1] = { a };

	if (!shared_state_enabled(ss) || st->shared == NULL)
		return;
	plain_key(st, "cache:gen", k[0], KEY_MAX);
	plain_key(st, "cache:evict-all", k[1], KEY_MAX);
	snprintf(a, sizeof(a), "%llu",
		 (unsigned long long)evict_mark_ms(st->cfg));
	shared_state_eval(ss, SHARED_EVICT, keys, 2, args, 1,
			  st->cfg->shared_state_timeout_usec, NULL, NULL, NULL,
			  NULL);
}
