#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth_client.h"
#include "ctl.h"
#include "log.h"
#include "metrics.h"
#include "settings.h"
#include "xalloc.h"

/* Lookups waiting for a free worker, per pool; past this they get
 * AUTH_TEMPFAIL at once instead of queueing without bound. */
#define AUTH_QUEUE_MAX 1024

struct auth_worker;

struct auth_lookup {
	struct auth_lookup *next;	/* queue */
	struct auth_pool *pool;
	struct auth_worker *worker;	/* while in flight */
	struct auth_request req;
	auth_callback *cb;		/* NULL once cancelled */
	void *ctx;
	bool failed;			/* answer TEMPFAIL from the queue */
	uint64_t start_usec;		/* when asked (metrics) */
};

struct auth_worker {
	struct auth_pool *pool;
	unsigned id;			/* the supervisor's name for it */
	int fd;
	sd_event_source *io, *timer;
	struct auth_lookup *busy;
	unsigned requests;
	unsigned max_requests;
	uint64_t timeout_usec;
	bool retire;			/* close when idle */
};

struct auth_pool {
	sd_event *event;
	struct auth_worker **workers;
	unsigned n_workers, max_workers;
	struct auth_lookup *head, **tail;
	unsigned queue_len;
	sd_event_source *dispatch;
	uint32_t next_id;
};

static uint64_t pool_now(struct auth_pool *p)
{
	uint64_t now = 0;

	sd_event_now(p->event, CLOCK_MONOTONIC, &now);
	return now;
}

static void pool_schedule(struct auth_pool *p)
{
	sd_event_source_set_enabled(p->dispatch, SD_EVENT_ONESHOT);
}

static void lookup_free(struct auth_lookup *l)
{
	free_secret(l, sizeof(*l));
}

static void lookup_finish(struct auth_lookup *l, const struct auth_reply *rep)
{
	metrics_auth_duration(pool_now(l->pool) - l->start_usec);
	if (l->cb != NULL)
		l->cb(rep, l->ctx);
	lookup_free(l);
}

static void lookup_tempfail(struct auth_lookup *l, const char *reason)
{
	struct auth_reply rep;

	memset(&rep, 0, sizeof(rep));
	rep.id = l->req.id;
	rep.result = AUTH_TEMPFAIL;
	snprintf(rep.reason, sizeof(rep.reason), "%s", reason);
	lookup_finish(l, &rep);
}

static void worker_remove(struct auth_worker *w)
{
	struct auth_pool *p = w->pool;

	for (unsigned i = 0; i < p->n_workers; i++) {
		if (p->workers[i] == w) {
			p->workers[i] = p->workers[--p->n_workers];
			break;
		}
	}
	sd_event_source_disable_unref(w->io);
	sd_event_source_disable_unref(w->timer);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

/* The worker is gone or must go: whatever it was doing fails
 * temporarily. */
static void worker_kill(struct auth_worker *w, const char *why)
{
	struct auth_lookup *l = w->busy;
	struct auth_pool *p = w->pool;

	if (l != NULL)
		log_warn("auth worker %u: %s; request failed temporarily",
			 w->id, why);
	else
		log_debug("auth worker %u: %s", w->id, why);
	/* The supervisor kills it (it may be stuck in a PAM module and
	 * never see its socket close). */
	ctl_kill_worker(w->id);
	metrics_worker_died();
	w->busy = NULL;
	worker_remove(w);
	if (l != NULL)
		lookup_tempfail(l, why);
	pool_schedule(p);
}

/* A worker we stop using: closing its socket makes it exit. */
static void worker_retire(struct auth_worker *w)
{
	log_debug("auth worker %u retired after %u requests", w->id,
		  w->requests);
	worker_remove(w);
}

static int on_worker_io(sd_event_source *src, int fd, uint32_t revents,
			void *userdata)
{
	struct auth_worker *w = userdata;
	unsigned char buf[AUTH_PROTO_MAX];
	struct auth_pool *p = w->pool;
	struct auth_reply rep;
	struct auth_lookup *l;
	ssize_t n;

	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		worker_kill(w, n == 0 ? "exited" : strerror(errno));
		return 0;
	}
	if ((size_t)n > sizeof(buf) || w->busy == NULL ||
	    auth_reply_decode(buf, (size_t)n, &rep) < 0 ||
	    rep.id != w->busy->req.id) {
		explicit_bzero(buf, sizeof(buf));
		worker_kill(w, "invalid reply");
		return 0;
	}
	explicit_bzero(buf, sizeof(buf));
	l = w->busy;
	w->busy = NULL;
	sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
	if (w->retire || w->requests >= w->max_requests)
		worker_retire(w);
	lookup_finish(l, &rep);
	explicit_bzero(&rep, sizeof(rep));
	pool_schedule(p);
	return 0;
}

static int on_worker_timeout(sd_event_source *src, uint64_t usec,
			     void *userdata)
{
	worker_kill(userdata, "timed out");
	return 0;
}

/* Ids of workers, unique in this process: the supervisor knows them by
 * these (the network process cannot see or signal their pids). */
static atomic_uint next_worker_id;

/* A new worker: a socketpair whose other end goes to the supervisor,
 * which starts authrelay-auth on it (ctl.h). Requests may be sent at once:
 * they wait in the socket until the worker reads them. A worker that
 * cannot be started shows as one that died (EOF on the socket). */
static struct auth_worker *worker_spawn(struct auth_pool *p)
{
	struct settings *st = settings_get();
	const struct config *cfg = st->cfg;
	struct auth_worker *w;
	unsigned id;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_err("auth worker socketpair: %s", strerror(errno));
		settings_put(&st);
		return NULL;
	}
	do
		id = atomic_fetch_add(&next_worker_id, 1) + 1;
	while (id == 0);
	if (ctl_spawn_worker(sv[1], id) < 0) {
		log_err("cannot ask the supervisor for an auth worker: %s",
			strerror(errno));
		close(sv[0]);
		close(sv[1]);
		settings_put(&st);
		return NULL;
	}
	close(sv[1]);
	metrics_worker_spawned();
	w = xcalloc(1, sizeof(*w));
	w->pool = p;
	w->id = id;
	w->fd = sv[0];
	w->max_requests = cfg->worker_max_requests;
	w->timeout_usec = cfg->worker_timeout_usec;
	if (sd_event_add_io(p->event, &w->io, w->fd, EPOLLIN, on_worker_io,
			    w) < 0 ||
	    sd_event_add_time_relative(p->event, &w->timer, CLOCK_MONOTONIC,
				       cfg->worker_timeout_usec, 0,
				       on_worker_timeout, w) < 0) {
		settings_put(&st);
		worker_kill(w, "cannot watch");
		return NULL;
	}
	sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
	settings_put(&st);
	log_debug("auth worker %u requested", id);
	return w;
}

static int worker_send(struct auth_worker *w, struct auth_lookup *l)
{
	unsigned char buf[AUTH_PROTO_MAX];
	ssize_t len = auth_request_encode(&l->req, buf, sizeof(buf));
	ssize_t n = -1;

	/* The password is not needed past this point. */
	explicit_bzero(l->req.password, sizeof(l->req.password));
	if (len > 0)
		n = send(w->fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	explicit_bzero(buf, sizeof(buf));
	if (len <= 0 || n != len)
		return -1;
	w->busy = l;
	l->worker = w;
	w->requests++;
	sd_event_source_set_time_relative(w->timer, w->timeout_usec);
	sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
	return 0;
}

static struct auth_lookup *queue_pop(struct auth_pool *p)
{
	struct auth_lookup *l = p->head;

	if (l == NULL)
		return NULL;
	p->head = l->next;
	if (p->head == NULL)
		p->tail = &p->head;
	l->next = NULL;
	p->queue_len--;
	return l;
}

static struct auth_worker *idle_worker(struct auth_pool *p)
{
	for (unsigned i = 0; i < p->n_workers; i++)
		if (p->workers[i]->busy == NULL && !p->workers[i]->retire)
			return p->workers[i];
	if (p->n_workers >= p->max_workers)
		return NULL;
	struct auth_worker *w = worker_spawn(p);
	if (w != NULL)
		p->workers[p->n_workers++] = w;
	return w;
}

static int on_dispatch(sd_event_source *src, void *userdata)
{
	struct auth_pool *p = userdata;
	struct auth_lookup *l;

	while (p->head != NULL) {
		struct auth_worker *w;

		if (p->head->failed) {
			l = queue_pop(p);
			lookup_tempfail(l, "too many pending requests");
			continue;
		}
		w = idle_worker(p);
		if (w == NULL) {
			if (p->n_workers > 0)
				break;	/* all busy: wait for a reply */
			/* No worker can be started: answer now rather than
			 * leave clients hanging. */
			l = queue_pop(p);
			lookup_tempfail(l, "no auth worker available");
			continue;
		}
		l = queue_pop(p);
		if (l->cb == NULL) {
			lookup_free(l);
			continue;
		}
		if (worker_send(w, l) < 0) {
			worker_kill(w, "cannot send request");
			lookup_tempfail(l, "auth worker unreachable");
		}
	}
	return 0;
}

struct auth_pool *auth_pool_new(sd_event *event, unsigned max_workers)
{
	struct auth_pool *p = xcalloc(1, sizeof(*p));

	p->event = sd_event_ref(event);
	p->max_workers = max_workers ? max_workers : 1;
	p->workers = xcalloc(p->max_workers, sizeof(*p->workers));
	p->tail = &p->head;
	if (sd_event_add_defer(event, &p->dispatch, on_dispatch, p) < 0)
		abort();	/* ENOMEM only */
	sd_event_source_set_enabled(p->dispatch, SD_EVENT_OFF);
	return p;
}

void auth_pool_free(struct auth_pool **pp)
{
	struct auth_pool *p = *pp;
	struct auth_lookup *l;

	if (p == NULL)
		return;
	*pp = NULL;
	while ((l = queue_pop(p)) != NULL)
		lookup_free(l);
	while (p->n_workers > 0) {
		struct auth_worker *w = p->workers[0];

		if (w->busy != NULL) {
			lookup_free(w->busy);
			w->busy = NULL;
		}
		ctl_kill_worker(w->id);
		worker_remove(w);
	}
	free(p->workers);
	sd_event_source_disable_unref(p->dispatch);
	sd_event_unref(p->event);
	free(p);
}

void auth_pool_recycle(struct auth_pool *p)
{
	for (unsigned i = 0; i < p->n_workers;) {
		struct auth_worker *w = p->workers[i];

		w->retire = true;
		if (w->busy == NULL)
			worker_retire(w);	/* moves the last one here */
		else
			i++;
	}
}

unsigned auth_pool_workers(const struct auth_pool *p)
{
	return p->n_workers;
}

struct auth_lookup *auth_pool_lookup(struct auth_pool *p, const char *user,
				     const char *password,
				     const char *client_ip,
				     auth_callback *cb, void *ctx)
{
	struct auth_lookup *l = xcalloc(1, sizeof(*l));

	l->pool = p;
	l->cb = cb;
	l->ctx = ctx;
	l->req.id = ++p->next_id;
	l->start_usec = pool_now(p);
	snprintf(l->req.user, sizeof(l->req.user), "%s", user);
	snprintf(l->req.password, sizeof(l->req.password), "%s", password);
	snprintf(l->req.client_ip, sizeof(l->req.client_ip), "%s", client_ip);
	l->failed = p->queue_len >= AUTH_QUEUE_MAX;
	*p->tail = l;
	p->tail = &l->next;
	p->queue_len++;
	pool_schedule(p);
	return l;
}

void auth_lookup_cancel(struct auth_lookup **lp)
{
	struct auth_lookup *l = *lp;

	if (l == NULL)
		return;
	*lp = NULL;
	/* Queued or in flight: freed when its turn or its reply comes. */
	l->cb = NULL;
	l->ctx = NULL;
}
