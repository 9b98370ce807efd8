#include "autoconf.h"

#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth_cache.h"
#include "log.h"
#include "redis_uri.h"
#include "shared_state.h"
#include "xalloc.h"

#define RECONNECT_MIN_USEC (100 * 1000ULL)
#define RECONNECT_MAX_USEC (5 * USEC_PER_SEC)
#define PASSWORD_MAX 512

/* --- parameters --- */

static char *first_line(const unsigned char *data, size_t len)
{
	size_t n = 0;
	char *s;

	while (n < len && data[n] != '\r' && data[n] != '\n')
		n++;
	s = xmalloc(n + 1);
	memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

/* A numeric address for host, resolved here (the loops must not block
 * in getaddrinfo). */
static char *resolve(const char *host, const char **error_r)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char buf[NI_MAXHOST];
	int r = getaddrinfo(host, NULL, &hints, &res);

	if (r != 0) {
		*error_r = gai_strerror(r);
		return NULL;
	}
	r = getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof(buf), NULL,
			0, NI_NUMERICHOST);
	freeaddrinfo(res);
	if (r != 0) {
		*error_r = gai_strerror(r);
		return NULL;
	}
	return xstrdup(buf);
}

static void derive_key(struct shared_params *p, const char *secret)
{
	static const char label[] = "authrelay shared_state names";
	unsigned len = 0;

	HMAC(EVP_sha256(), secret, (int)strlen(secret),
	     (const unsigned char *)label, sizeof(label) - 1, p->key, &len);
}

struct shared_params *shared_params_new(const struct config *cfg,
					const struct bundle *b,
					struct config_errors *errs)
{
	struct shared_params *p;
	struct redis_uri u;
	const char *error = NULL;
	const unsigned char *data;
	size_t len;

	if (cfg->shared_state == NULL)
		return NULL;
	if (redis_uri_parse(cfg->shared_state, &u, &error) < 0) {
		config_errors_add(errs, "%s: [policy] shared_state: %s",
				  cfg->path, error);
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->display = xstrdup(cfg->shared_state);
	p->port = u.port;
	p->db = u.db;
	if (u.user[0] != '\0')
		p->user = xstrdup(u.user);
	if (u.host[0] == '\0') {
		p->path = xstrdup(u.path);
	} else if ((p->host = resolve(u.host, &error)) == NULL) {
		config_errors_add(errs, "%s: [policy] shared_state: %s: %s",
				  cfg->path, u.host, error);
		shared_params_free(&p);
		return NULL;
	}
	if (cfg->shared_state_password_file != NULL) {
		if (!bundle_get(b, cfg->shared_state_password_file, &data,
				&len)) {
			config_errors_add(errs, "%s: [policy] shared_state_"
					  "password_file %s: not handed over",
					  cfg->path,
					  cfg->shared_state_password_file);
			shared_params_free(&p);
			return NULL;
		}
		p->password = first_line(data, len);
		if (p->password[0] == '\0' ||
		    strlen(p->password) > PASSWORD_MAX) {
			config_errors_add(errs, "%s: [policy] shared_state_"
					  "password_file %s: first line empty "
					  "or longer than %d octets", cfg->path,
					  cfg->shared_state_password_file,
					  PASSWORD_MAX);
			shared_params_free(&p);
			return NULL;
		}
	}
	derive_key(p, p->password != NULL ? p->password :
		   cfg->shared_state_prefix);
	return p;
}

void shared_params_free(struct shared_params **pp)
{
	struct shared_params *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	free(p->host);
	free(p->path);
	free(p->user);
	if (p->password != NULL)
		free_secret(p->password, strlen(p->password) + 1);
	free(p->display);
	explicit_bzero(p, sizeof(*p));
	free(p);
}

static bool str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool params_equal(const struct shared_params *a,
			 const struct shared_params *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return str_eq(a->host, b->host) && a->port == b->port &&
	       str_eq(a->path, b->path) && str_eq(a->user, b->user) &&
	       str_eq(a->password, b->password) && a->db == b->db;
}

/* --- the connection --- */

enum conn_state { SS_OFF, SS_DOWN, SS_CONNECTING, SS_UP };

struct shared_state {
	sd_event *event;
	const struct shared_params *params;
	redisAsyncContext *ac;
	enum conn_state state;
	bool counted_down;		/* in n_down */
	bool want_read, want_write;
	sd_event_source *io;
	sd_event_source *retry;		/* back-off timer */
	uint64_t backoff;
};

struct shared_call {
	struct shared_state *ss;
	struct shared_call **slot;
	shared_state_cb *cb;
	void *ctx;
	void (*ctx_free)(void *ctx);
	sd_event_source *timer;
	bool answered;		/* cb has run or will not */
};

static char script_sha[SHARED_N_SCRIPTS][41];
static atomic_uint n_down;		/* threads without a connection */
static atomic_bool outage_logged;
static atomic_ullong password_logged_at;

static void script_shas(void)
{
	for (size_t i = 0; i < SHARED_N_SCRIPTS; i++) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned len = 0;

		EVP_Digest(shared_script_text[i], strlen(shared_script_text[i]),
			   md, &len, EVP_sha1(), NULL);
		for (unsigned j = 0; j < len && j < 20; j++)
			snprintf(script_sha[i] + 2 * j, 3, "%02x", md[j]);
	}
}

static uint64_t now_usec(struct shared_state *ss)
{
	uint64_t now = 0;

	sd_event_now(ss->event, CLOCK_MONOTONIC, &now);
	return now;
}

static void mark_down(struct shared_state *ss, const char *why)
{
	if (ss->counted_down)
		return;
	ss->counted_down = true;
	atomic_fetch_add(&n_down, 1);
	if (!atomic_exchange(&outage_logged, true))
		log_warn("shared state %s unavailable (%s): limits and blocks "
			 "are checked %s until it is back",
			 ss->params->display, why,
			 "as [policy] shared_state_failure says");
}

static void mark_up(struct shared_state *ss)
{
	ss->backoff = 0;
	if (!ss->counted_down)
		return;
	ss->counted_down = false;
	if (atomic_fetch_sub(&n_down, 1) != 1)
		return;
	if (atomic_exchange(&outage_logged, false)) {
		/* Evictions made while we could not see them, or lost with a
		 * Redis that restarted empty (its generation starting over):
		 * trust no cached credential from before. */
		auth_cache_clear();
		log_notice("shared state %s available again",
			   ss->params->display);
	}
	else
		log_notice("shared state %s connected", ss->params->display);
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *d);

static void io_update(struct shared_state *ss)
{
	uint32_t events = (ss->want_read ? EPOLLIN : 0) |
			  (ss->want_write ? EPOLLOUT : 0);

	if (ss->ac == NULL)
		return;
	if (ss->io == NULL) {
		if (events == 0)
			return;
		if (sd_event_add_io(ss->event, &ss->io, ss->ac->c.fd, events,
				    on_io, ss) < 0)
			ss->io = NULL;
		return;
	}
	sd_event_source_set_io_events(ss->io, events);
	sd_event_source_set_enabled(ss->io, events ? SD_EVENT_ON :
				    SD_EVENT_OFF);
}

/* hiredis' event hooks (async.h: "should be idempotent") */
static void ev_add_read(void *d) { struct shared_state *ss = d; ss->want_read = true; io_update(ss); }
static void ev_del_read(void *d) { struct shared_state *ss = d; ss->want_read = false; io_update(ss); }
static void ev_add_write(void *d) { struct shared_state *ss = d; ss->want_write = true; io_update(ss); }
static void ev_del_write(void *d) { struct shared_state *ss = d; ss->want_write = false; io_update(ss); }

static void ev_cleanup(void *d)
{
	struct shared_state *ss = d;

	ss->want_read = ss->want_write = false;
	sd_event_source_disable_unref(ss->io);
	ss->io = NULL;
}

static void schedule_retry(struct shared_state *ss)
{
	ss->backoff = ss->backoff == 0 ? RECONNECT_MIN_USEC :
		      ss->backoff * 2;
	if (ss->backoff > RECONNECT_MAX_USEC)
		ss->backoff = RECONNECT_MAX_USEC;
	sd_event_source_set_time(ss->retry, now_usec(ss) + ss->backoff);
	sd_event_source_set_enabled(ss->retry, SD_EVENT_ONESHOT);
}

/* Drop the connection (its pending calls are answered unavailable, by
 * hiredis calling their callbacks with no reply) and try again later. */
static void conn_reset(struct shared_state *ss, const char *why)
{
	redisAsyncContext *ac = ss->ac;

	if (ss->state == SS_OFF)
		return;
	ss->ac = NULL;
	ss->state = SS_DOWN;
	mark_down(ss, why);
	if (ac != NULL)
		redisAsyncFree(ac);
	schedule_retry(ss);
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *d)
{
	struct shared_state *ss = d;
	redisAsyncContext *ac = ss->ac;

	if (ac == NULL)
		return 0;
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
		redisAsyncHandleRead(ac);
	if (ss->ac == ac && (revents & EPOLLOUT))
		redisAsyncHandleWrite(ac);
	return 0;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct shared_state *ss = ac->data;

	if (ss == NULL || ss->ac != ac)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees ac after this returns. */
		ss->ac = NULL;
		ss->state = SS_DOWN;
		mark_down(ss, ac->errstr[0] ? ac->errstr : "connect failed");
		schedule_retry(ss);
		return;
	}
	ss->state = SS_UP;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct shared_state *ss = ac->data;

	(void)status;
	if (ss == NULL || ss->ac != ac)
		return;		/* our own conn_reset() */
	ss->ac = NULL;
	ss->state = SS_DOWN;
	mark_down(ss, ac->errstr[0] ? ac->errstr : "connection closed");
	schedule_retry(ss);
}

static bool is_auth_error(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR &&
	       (strncmp(r->str, "WRONGPASS", 9) == 0 ||
		strncmp(r->str, "NOAUTH", 6) == 0 ||
		strstr(r->str, "invalid password") != NULL ||
		strstr(r->str, "invalid username-password") != NULL);
}

/* The answer to a set-up command (AUTH, SELECT, SCRIPT LOAD): anything
 * but success drops the connection. */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct shared_state *ss = ac->data;
	const redisReply *r = reply;
	const char *what = priv;

	if (r == NULL || ss == NULL || ss->ac != ac)
		return;
	if (r->type != REDIS_REPLY_ERROR) {
		if (strcmp(what, "last") == 0)
			mark_up(ss);
		return;
	}
	if (is_auth_error(r)) {
		uint64_t now = now_usec(ss);
		unsigned long long last = atomic_load(&password_logged_at);

		/* Once per reconnect interval for the whole process. */
		if ((last == 0 || now - last >= RECONNECT_MAX_USEC) &&
		    atomic_compare_exchange_strong(&password_logged_at, &last,
						   now))
			log_err("shared state %s refused the password of "
				"[policy] shared_state_password_file: %s",
				ss->params->display, r->str);
		conn_reset(ss, "authentication refused");
		return;
	}
	log_err("shared state %s: %s: %s", ss->params->display, what, r->str);
	conn_reset(ss, "set-up command refused");
}

static void setup_command(struct shared_state *ss, const char *what,
			  int argc, const char **argv)
{
	redisAsyncCommandArgv(ss->ac, on_setup_reply, (void *)what, argc,
			      argv, NULL);
}

static void conn_start(struct shared_state *ss)
{
	const struct shared_params *p = ss->params;
	redisAsyncContext *ac;
	char db[8];

	ac = p->path != NULL ? redisAsyncConnectUnix(p->path) :
	     redisAsyncConnect(p->host, (int)p->port);
	if (ac == NULL || ac->err) {
		ss->state = SS_DOWN;
		mark_down(ss, ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		schedule_retry(ss);
		return;
	}
	ac->data = ss;
	ac->ev.data = ss;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	ss->ac = ac;
	ss->state = SS_CONNECTING;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* Queued before any call, answered before any call. */
	if (p->password != NULL) {
		const char *argv[] = { "AUTH", p->user ? p->user : p->password,
				       p->password };

		setup_command(ss, "AUTH", p->user ? 3 : 2, argv);
	}
	snprintf(db, sizeof(db), "%u", p->db);
	setup_command(ss, "SELECT", 2, (const char *[]){ "SELECT", db });
	for (size_t i = 0; i < SHARED_N_SCRIPTS; i++)
		setup_command(ss, i + 1 == SHARED_N_SCRIPTS ? "last" :
			      "SCRIPT LOAD", 3, (const char *[]){
				      "SCRIPT", "LOAD", shared_script_text[i] });
}

static int on_retry(sd_event_source *src, uint64_t usec, void *d)
{
	struct shared_state *ss = d;

	if (ss->state == SS_DOWN)
		conn_start(ss);
	return 0;
}

struct shared_state *shared_state_new(sd_event *event)
{
	struct shared_state *ss = xcalloc(1, sizeof(*ss));

	if (script_sha[0][0] == '\0')
		script_shas();
	ss->event = event;
	if (sd_event_add_time(event, &ss->retry, CLOCK_MONOTONIC, UINT64_MAX,
			      0, on_retry, ss) < 0) {
		free(ss);
		return NULL;
	}
	sd_event_source_set_enabled(ss->retry, SD_EVENT_OFF);
	return ss;
}

static void conn_stop(struct shared_state *ss)
{
	redisAsyncContext *ac = ss->ac;

	if (ss->counted_down) {
		ss->counted_down = false;
		atomic_fetch_sub(&n_down, 1);
	}
	ss->ac = NULL;
	ss->state = SS_OFF;
	sd_event_source_set_enabled(ss->retry, SD_EVENT_OFF);
	if (ac != NULL)
		redisAsyncFree(ac);
}

void shared_state_configure(struct shared_state *ss,
			    const struct shared_params *p)
{
	if (ss->state != SS_OFF && params_equal(ss->params, p)) {
		ss->params = p;
		return;
	}
	conn_stop(ss);
	ss->params = p;
	ss->backoff = 0;
	if (p == NULL)
		return;
	/* Down until the set-up commands are answered. */
	ss->counted_down = true;
	atomic_fetch_add(&n_down, 1);
	conn_start(ss);
}

void shared_state_free(struct shared_state **ssp)
{
	struct shared_state *ss = *ssp;

	if (ss == NULL)
		return;
	*ssp = NULL;
	conn_stop(ss);
	sd_event_source_disable_unref(ss->retry);
	free(ss);
}

bool shared_state_enabled(const struct shared_state *ss)
{
	return ss != NULL && ss->state != SS_OFF;
}

/* --- calls --- */

static void call_finish(struct shared_call *c, const long long *v, size_t n)
{
	if (c->answered)
		return;
	c->answered = true;
	sd_event_source_disable_unref(c->timer);
	c->timer = NULL;
	if (c->slot != NULL)
		*c->slot = NULL;
	c->slot = NULL;
	if (c->cb != NULL)
		c->cb(v, n, c->ctx);
	if (c->ctx_free != NULL)
		c->ctx_free(c->ctx);
	c->ctx = NULL;
}

/* An array of integers (nil: 0), or a single integer. */
static size_t reply_ints(const redisReply *r, long long *v)
{
	size_t n = 0;

	if (r->type == REDIS_REPLY_INTEGER) {
		v[0] = r->integer;
		return 1;
	}
	if (r->type != REDIS_REPLY_ARRAY)
		return 0;
	for (size_t i = 0; i < r->elements && n < SHARED_RESULT_MAX; i++) {
		const redisReply *e = r->element[i];

		if (e->type == REDIS_REPLY_INTEGER)
			v[n++] = e->integer;
		else if (e->type == REDIS_REPLY_NIL)
			v[n++] = 0;
		else if (e->type == REDIS_REPLY_STRING)
			v[n++] = strtoll(e->str, NULL, 10);
		else
			return 0;
	}
	return n;
}

static void on_call_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct shared_call *c = priv;
	struct shared_state *ss = c->ss;
	const redisReply *r = reply;
	long long v[SHARED_RESULT_MAX] = { 0 };
	size_t n = 0;

	if (r != NULL && r->type == REDIS_REPLY_ERROR) {
		if (!c->answered)
			log_warn("shared state: %s", r->str);
		if (strncmp(r->str, "NOSCRIPT", 8) == 0 && ss->ac == ac)
			/* Flushed under us: load them again. */
			conn_reset(ss, "scripts flushed");
	} else if (r != NULL) {
		n = reply_ints(r, v);
	}
	call_finish(c, n > 0 ? v : NULL, n);
	free(c);
}

static int on_call_timeout(sd_event_source *src, uint64_t usec, void *d)
{
	struct shared_call *c = d;

	/* No answer in time: Redis is too slow to wait for. Dropping the
	 * connection answers every call queued on it, this one included
	 * (on_call_reply without a reply frees it). */
	conn_reset(c->ss, "no answer within shared_state_timeout");
	return 0;
}

struct shared_call *shared_state_eval(struct shared_state *ss,
				      enum shared_script script,
				      const char *const *keys, size_t n_keys,
				      const char *const *args, size_t n_args,
				      uint64_t timeout_usec,
				      struct shared_call **slot,
				      shared_state_cb *cb, void *ctx,
				      void (*ctx_free)(void *ctx))
{
	const char *argv[3 + 2 * SHARED_ARG_MAX];
	char nk[8];
	size_t argc = 0;
	struct shared_call *c;

	if (ss == NULL || (ss->state != SS_UP && ss->state != SS_CONNECTING) ||
	    n_keys > SHARED_ARG_MAX || n_args > SHARED_ARG_MAX) {
		if (cb != NULL)
			cb(NULL, 0, ctx);
		if (ctx_free != NULL)
			ctx_free(ctx);
		return NULL;
	}
	snprintf(nk, sizeof(nk), "%zu", n_keys);
	argv[argc++] = "EVALSHA";
	argv[argc++] = script_sha[script];
	argv[argc++] = nk;
	for (size_t i = 0; i < n_keys; i++)
		argv[argc++] = keys[i];
	for (size_t i = 0; i < n_args; i++)
		argv[argc++] = args[i];
	c = xcalloc(1, sizeof(*c));
	c->ss = ss;
	c->cb = cb;
	c->ctx = ctx;
	c->ctx_free = ctx_free;
	if (sd_event_add_time(ss->event, &c->timer, CLOCK_MONOTONIC,
			      now_usec(ss) + timeout_usec, 0, on_call_timeout,
			      c) < 0 ||
	    redisAsyncCommandArgv(ss->ac, on_call_reply, c, (int)argc, argv,
				  NULL) != REDIS_OK) {
		sd_event_source_disable_unref(c->timer);
		c->timer = NULL;
		call_finish(c, NULL, 0);
		free(c);
		return NULL;
	}
	c->slot = slot;
	if (slot != NULL)
		*slot = c;
	return c;
}

void shared_call_cancel(struct shared_call **slot)
{
	struct shared_call *c = *slot;

	if (c == NULL)
		return;
	*slot = NULL;
	c->slot = NULL;
	c->cb = NULL;
}
