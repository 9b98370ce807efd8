/* Idle smarthost connections kept per serving thread (relay_cache.h).
 * Everything here runs on the thread's own loop: no locks. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "relay.h"
#include "relay_cache.h"
#include "relay_int.h"
#include "settings.h"
#include "xalloc.h"

struct relay_cache {
	struct relay *idle_head, *idle_tail;	/* newest first */
	unsigned n_idle;
	unsigned n_open;		/* relays opened through the cache */
	bool stopping;
	void (*empty)(void *ctx);
	void *ctx;
};

struct relay_cache *relay_cache_new(void (*empty)(void *ctx), void *ctx)
{
	struct relay_cache *c = xcalloc(1, sizeof(*c));

	c->empty = empty;
	c->ctx = ctx;
	return c;
}

unsigned relay_cache_open_count(const struct relay_cache *c)
{
	return c != NULL ? c->n_open : 0;
}

static bool is_idle(const struct relay *r)
{
	return r->idle_prev != NULL || r->idle_next != NULL ||
	       r->cache->idle_head == r;
}

static void unlink_idle(struct relay *r)
{
	struct relay_cache *c = r->cache;

	if (r->idle_prev != NULL)
		r->idle_prev->idle_next = r->idle_next;
	else
		c->idle_head = r->idle_next;
	if (r->idle_next != NULL)
		r->idle_next->idle_prev = r->idle_prev;
	else
		c->idle_tail = r->idle_prev;
	r->idle_prev = r->idle_next = NULL;
	c->n_idle--;
}

void relay_cache_flush(struct relay_cache *c)
{
	/* Bounded: each turn takes one off the list. */
	while (c->idle_head != NULL) {
		struct relay *r = c->idle_head;

		unlink_idle(r);
		relay_quit(r);
	}
}

void relay_cache_stop(struct relay_cache *c)
{
	c->stopping = true;
	relay_cache_flush(c);
}

void relay_cache_free(struct relay_cache **cp)
{
	free(*cp);
	*cp = NULL;
}

/* The connection belongs to its settings' generation, to no user, and
 * is in the state a new session expects after RELAY_EV_READY. */
struct relay *relay_cache_take(struct relay_cache *c, struct settings *st,
			       const struct relay_identity *id,
			       relay_callback *cb, void *ctx)
{
	struct relay *r;

	for (r = c->idle_head; r != NULL; r = r->idle_next)
		if (r->st == st)
			break;
	if (r == NULL)
		return NULL;
	unlink_idle(r);
	relay_set_identity(r, id);
	r->cb = cb;
	r->ctx = ctx;
	r->state = R_READY;
	r->fail_reason[0] = '\0';
	r->fail_enh = NULL;
	r->retry_mail = xcalloc(1, sizeof(*r->retry_mail));
	conn_set_deadline(r->conn, 0);
	log_info("session=%s smarthost %s reused%s%s", r->session_id,
		 relay_host(r), conn_is_tls(r->conn) ? ", TLS" : "",
		 r->authenticated ? ", authenticated" : "");
	/* RELAY_EV_READY from the loop, as for a new connection. */
	sd_event_source_set_enabled(r->kick, SD_EVENT_ONESHOT);
	return r;
}

void relay_cache_adopt(struct relay_cache *c, struct relay *r)
{
	r->cache = c;
	if (c != NULL)
		c->n_open++;
}

/* Whether the upstream session may serve another user's session: not
 * when it carries an identity of its own (XCLIENT LOGIN=, the user's
 * own OAuth2 token). */
static bool cacheable(const struct relay *r)
{
	const struct config *cfg = r->cfg;
	struct settings *cur;
	bool current;

	if (r->cache == NULL || r->cache->stopping || r->conn == NULL ||
	    cfg->relay_cache_max == 0 || cfg->xclient || cfg->relay_auth_sender)
		return false;
	/* Made with settings a reload has replaced: no session would take
	 * it again. */
	cur = settings_get();
	current = cur == r->st;
	settings_put(&cur);
	return current;
}

bool relay_cache_park(struct relay *r)
{
	if (!cacheable(r))
		return false;
	/* RFC 5321 §4.1.1.5: whatever the last session left is cleared,
	 * and the answer shows the connection is still good. */
	relay_send_line(r, R_PARKING, r->cfg->command_timeout_usec, "RSET");
	return true;
}

void relay_cache_parked(struct relay *r)
{
	struct relay_cache *c = r->cache;

	if (r->reply.code != 250 || !cacheable(r)) {
		if (r->reply.code != 250)
			log_info("smarthost %s: RSET answered %d: not kept",
				 relay_host(r), r->reply.code);
		relay_quit(r);
		return;
	}
	r->state = R_IDLE;
	r->idle_prev = NULL;
	r->idle_next = c->idle_head;
	if (c->idle_head != NULL)
		c->idle_head->idle_prev = r;
	else
		c->idle_tail = r;
	c->idle_head = r;
	c->n_idle++;
	/* Input stays on: a close or anything sent while idle drops it
	 * (relay.c on_input). */
	conn_set_deadline(r->conn, r->cfg->relay_cache_idle_usec);
	log_info("smarthost %s: connection kept for the next session (%u idle)",
		 relay_host(r), c->n_idle);
	while (c->n_idle > r->cfg->relay_cache_max) {
		struct relay *old = c->idle_tail;

		unlink_idle(old);
		relay_quit(old);
	}
}

void relay_cache_expired(struct relay *r)
{
	unlink_idle(r);
	relay_quit(r);
}

void relay_cache_keep_mail(struct relay *r, const struct smtp_mail_args *m)
{
	if (r->retry_mail != NULL && r->retry_mail != m)
		*r->retry_mail = *m;
}

bool relay_cache_mail_failed(struct relay *r)
{
	bool failed = r->reply.code / 100 == 4;

	if (failed)
		relay_fail(r, "MAIL answered %d %s on a reused connection",
			   r->reply.code, r->reply.text);
	else {
		free(r->retry_mail);
		r->retry_mail = NULL;
	}
	return failed;
}

bool relay_cache_retry(struct relay *r)
{
	if (r->retry_mail == NULL || r->cb == NULL || r->setting_up)
		return false;
	log_info("session=%s smarthost %s: reused connection failed (%s), "
		 "trying a new one", r->session_id, relay_host(r),
		 r->fail_reason);
	/* A fresh start over the targets, as relay_open() makes. */
	r->target = 0;
	r->pass = 0;
	r->tried = 0;
	r->addr = 0;
	r->inflight = 0;
	r->authenticated = false;
	r->xclient_done = false;
	r->data_full = false;
	r->fail_reason[0] = '\0';
	r->fail_enh = NULL;
	r->setting_up = true;
	r->state = R_CONNECTING;
	relay_connect(r);
	return true;
}

bool relay_cache_resend(struct relay *r)
{
	struct smtp_mail_args m;
	struct relay_reply rep;

	if (r->retry_mail == NULL)
		return false;
	m = *r->retry_mail;
	free(r->retry_mail);
	r->retry_mail = NULL;
	if (relay_mail(r, &m, &rep) < 0)
		/* The new connection cannot take it as the old one did. */
		relay_report(r, RELAY_EV_REPLY, &rep);
	explicit_bzero(&m, sizeof(m));
	return true;
}

void relay_cache_forget(struct relay *r)
{
	struct relay_cache *c = r->cache;

	free(r->retry_mail);
	r->retry_mail = NULL;
	if (c == NULL)
		return;
	if (is_idle(r))
		unlink_idle(r);
	r->cache = NULL;
	if (--c->n_open == 0 && c->empty != NULL)
		c->empty(c->ctx);
}
