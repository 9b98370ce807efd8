#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "audit.h"
#include "auth_client.h"
#include "auth_throttle.h"
#include "client_addr.h"
#include "conn_limits.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "relay_cache.h"
#include "server.h"
#include "settings.h"
#include "shared_policy.h"
#include "smtp_session.h"
#include "xalloc.h"

/* Connections accepted per wake-up of one listener. */
#define ACCEPTS_PER_RUN 32
/* After EMFILE/ENFILE, stop accepting for this long. */
#define ACCEPT_PAUSE_USEC (100 * 1000)


struct listen_source {
	struct server_thread *thread;
	const struct listener *l;
	sd_event_source *src;
};

struct server_thread {
	unsigned index;
	pthread_t tid;
	sd_event *event;
	int ctl_fd;			/* eventfd: main thread pokes */
	sd_event_source *ctl_src;
	sd_event_source *pause_timer;	/* accept paused after EMFILE */
	sd_event_source *stop_timer;	/* shutdown_timeout */
	struct listen_source *listen;
	size_t n_listen;
	struct auth_pool *auth;
	struct shared_state *shared;	/* this thread's Redis connection */
	struct settings *shared_st;	/* what it was configured from */
	struct relay_cache *relay_cache;	/* idle smarthost connections */
	struct smtp_session *sessions;
	unsigned n_sessions;
	unsigned reload_seen;
	bool stopping;
	bool exited;
	sd_event_source *beat_timer;	/* proves the loop turns */
	atomic_ulong beats;
};

static struct server_thread *threads;
static unsigned n_threads;
static int threads_done_fd = -1;
static atomic_uint reload_generation;
static atomic_bool stop_requested;

static void set_accepting(struct server_thread *t, bool on)
{
	for (size_t i = 0; i < t->n_listen; i++)
		sd_event_source_set_enabled(t->listen[i].src,
					    on ? SD_EVENT_ON : SD_EVENT_OFF);
}

static void thread_maybe_exit(struct server_thread *t)
{
	/* The smarthost connections say QUIT before the loop ends. */
	if (t->stopping && t->n_sessions == 0 && !t->exited &&
	    relay_cache_open_count(t->relay_cache) == 0) {
		t->exited = true;
		sd_event_exit(t->event, 0);
	}
}

/* A session joins its thread's list at once and leaves it when freed. */
static void session_joined(struct smtp_session *s, void *ctx)
{
	struct server_thread *t = ctx;

	smtp_session_link(&t->sessions, s);
	t->n_sessions++;
}

static void relays_gone(void *ctx)
{
	thread_maybe_exit(ctx);
}

static void session_gone(struct smtp_session *s, void *ctx)
{
	struct server_thread *t = ctx;

	smtp_session_unlink(&t->sessions, s);
	t->n_sessions--;
	thread_maybe_exit(t);
}

/* Each loop ticks a counter; the main thread pings systemd's watchdog
 * only while every counter moves, so a stuck serving thread gets the
 * service restarted rather than hidden by a healthy main loop. */
#define HEARTBEAT_USEC (USEC_PER_SEC / 10)
#define TRIM_EVERY_BEATS 100	/* 10 s */

static int on_beat(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct server_thread *t = userdata;

	/* glibc keeps the memory freed between the objects that sessions
	 * keep (a TLS handshake leaves about 9 KiB of holes around every
	 * idle session's SSL object): whole free pages go back to the
	 * system now and then, from one thread (malloc_trim covers every
	 * arena). */
	if (atomic_fetch_add(&t->beats, 1) % TRIM_EVERY_BEATS == 0 &&
	    t->index == 0)
		(void)malloc_trim(0);
	sd_event_source_set_time_relative(src, HEARTBEAT_USEC);
	sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
	return 0;
}

bool servers_alive(void)
{
	static unsigned long *last;
	bool alive = true;

	if (last == NULL)
		last = xcalloc(n_threads ? n_threads : 1, sizeof(*last));
	for (unsigned i = 0; i < n_threads; i++) {
		unsigned long b = atomic_load(&threads[i].beats);

		if (b == last[i] && !threads[i].exited)
			alive = false;
		last[i] = b;
	}
	return alive;
}

static int on_pause_end(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct server_thread *t = userdata;

	if (!t->stopping)
		set_accepting(t, true);
	return 0;
}

/* A connection refused before it has a session: one record, with the
 * client's address, and the 421 where there is plaintext to speak. */
static void refuse(int fd, const struct listener *l,
		   const struct sockaddr_storage *ss, const char *hostname,
		   const char *reason, const char *text)
{
	char ip[INET6_ADDRSTRLEN], reply[256];
	int n = 0;

	(void)client_addr_format(ss, ip, sizeof(ip));
	/* On an implicit-TLS port there is no plaintext to speak. */
	if (l->mode == LISTEN_STARTTLS)
		n = snprintf(reply, sizeof(reply), "421 4.7.0 %s %s\r\n",
			     hostname, text);
	audit(LOG_LVL_NOTICE, "connection-refused", "client", ip,
	      "listener", l->name, "reason", reason,
	      "reply", n > 0 ? "421 4.7.0" : NULL, NULL);
	if (n > 0)
		(void)send(fd, reply, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents,
		     void *userdata)
{
	struct listen_source *ls = userdata;
	struct server_thread *t = ls->thread;

	for (int i = 0; i < ACCEPTS_PER_RUN && !t->stopping; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct settings *st;
		enum limits_verdict v;
		int cfd;

		cfd = accept4(fd, (struct sockaddr *)&ss, &len,
			      SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR || errno == ECONNABORTED)
				break;
			log_err("accept on %s: %s", ls->l->name,
				strerror(errno));
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				set_accepting(t, false);
				sd_event_source_set_time_relative(t->pause_timer,
								  ACCEPT_PAUSE_USEC);
				sd_event_source_set_enabled(t->pause_timer,
							    SD_EVENT_ONESHOT);
			}
			break;
		}
		/* From here on an IPv4 client on a dual-stack socket is
		 * its IPv4 address, for limits, logs and headers alike. */
		client_addr_normalize(&ss);
		st = settings_get();
		{
			uint64_t now = 0;

			sd_event_now(t->event, CLOCK_MONOTONIC, &now);
			if (auth_throttle_blocked(&ss, now)) {
				metrics_throttled(METRICS_LIMIT_AUTH_BLOCKED);
				refuse(cfd, ls->l, &ss, st->cfg->hostname,
				       "address blocked after failed logins",
				       "Too many authentication failures "
				       "from your address");
				settings_put(&st);
				continue;
			}
		}
		/* Behind a balancer every connection comes from its
		 * address: the per-address limit applies to the client the
		 * PROXY header names (smtp_session.c). */
		v = limits_connect(&ss, st->cfg->max_connections,
				   st->cfg->proxy_protocol ? UINT_MAX :
				   st->cfg->max_connections_per_ip);
		if (v != LIMITS_OK) {
			metrics_throttled(v == LIMITS_TOTAL ?
					  METRICS_LIMIT_MAX_CONNECTIONS :
					  METRICS_LIMIT_MAX_CONNECTIONS_PER_IP);
			refuse(cfd, ls->l, &ss, st->cfg->hostname,
			       v == LIMITS_TOTAL ? "max_connections reached"
			       : "max_connections_per_ip reached",
			       "Too many connections, try again later");
			settings_put(&st);
			continue;
		}
		struct smtp_session_host host = {
			.event = t->event,
			.auth = t->auth,
			.shared = t->shared,
			.relay_cache = t->relay_cache,
			.joined = session_joined,
			.gone = session_gone,
			.ctx = t,
		};

		metrics_session(ls->l->name);
		(void)smtp_session_new(&host, st, cfd, &ss, ls->l->mode);
	}
	return 0;
}

static int on_stop_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct server_thread *t = userdata;
	struct smtp_session *s, *next;

	log_notice("shutdown_timeout reached, closing %u session(s)",
		   t->n_sessions);
	for (s = t->sessions; s != NULL; s = next) {
		next = smtp_session_next(s);
		smtp_session_abort(s);
	}
	return 0;
}

static void thread_stop(struct server_thread *t)
{
	struct smtp_session *s, *next;
	struct settings *st;

	if (t->stopping)
		return;
	t->stopping = true;
	set_accepting(t, false);
	relay_cache_stop(t->relay_cache);
	for (s = t->sessions; s != NULL; s = next) {
		next = smtp_session_next(s);
		smtp_session_stop(s);
	}
	st = settings_get();
	sd_event_source_set_time_relative(t->stop_timer,
					  st->cfg->shutdown_timeout_usec);
	sd_event_source_set_enabled(t->stop_timer, SD_EVENT_ONESHOT);
	settings_put(&st);
	thread_maybe_exit(t);
}

/* Connect to the Redis the current settings name (or keep the
 * connection when they name the same). */
static void thread_shared_configure(struct server_thread *t)
{
	struct settings *st = settings_get();

	shared_state_configure(t->shared, st != NULL ? st->shared : NULL);
	settings_put(&t->shared_st);
	t->shared_st = st;
}

static int on_ctl(sd_event_source *src, int fd, uint32_t revents,
		  void *userdata)
{
	struct server_thread *t = userdata;
	uint64_t v;
	unsigned gen;

	(void)read(fd, &v, sizeof(v));
	gen = atomic_load(&reload_generation);
	if (gen != t->reload_seen) {
		t->reload_seen = gen;
		auth_pool_recycle(t->auth);
		relay_cache_flush(t->relay_cache);
		thread_shared_configure(t);
		/* One thread tells the other nodes: their cached
		 * credentials go too. */
		if (t->index == 0)
			shared_policy_evict_all(t->shared, t->shared_st);
	}
	if (atomic_load(&stop_requested))
		thread_stop(t);
	return 0;
}

static void *thread_main(void *arg)
{
	struct server_thread *t = arg;
	uint64_t one = 1;
	int r;

	r = sd_event_loop(t->event);
	if (r < 0)
		log_err("event loop of thread %u: %s", t->index, strerror(-r));
	(void)write(threads_done_fd, &one, sizeof(one));
	return NULL;
}

static int thread_setup(struct server_thread *t, unsigned index,
			unsigned workers, const struct listener *ls,
			size_t n_ls)
{
	t->index = index;
	if (sd_event_new(&t->event) < 0)
		return -1;
	t->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->ctl_fd < 0 ||
	    sd_event_add_io(t->event, &t->ctl_src, t->ctl_fd, EPOLLIN, on_ctl,
			    t) < 0 ||
	    sd_event_add_time_relative(t->event, &t->pause_timer,
				       CLOCK_MONOTONIC, UINT64_MAX / 2, 0,
				       on_pause_end, t) < 0 ||
	    sd_event_add_time_relative(t->event, &t->stop_timer,
				       CLOCK_MONOTONIC, UINT64_MAX / 2, 0,
				       on_stop_timeout, t) < 0 ||
	    sd_event_add_time_relative(t->event, &t->beat_timer,
				       CLOCK_MONOTONIC, HEARTBEAT_USEC, 0,
				       on_beat, t) < 0)
		return -1;
	sd_event_source_set_enabled(t->beat_timer, SD_EVENT_ONESHOT);
	sd_event_source_set_enabled(t->pause_timer, SD_EVENT_OFF);
	sd_event_source_set_enabled(t->stop_timer, SD_EVENT_OFF);
	t->listen = xcalloc(n_ls, sizeof(*t->listen));
	t->n_listen = n_ls;
	for (size_t i = 0; i < n_ls; i++) {
		t->listen[i].thread = t;
		t->listen[i].l = &ls[i];
		if (sd_event_add_io(t->event, &t->listen[i].src, ls[i].fd,
				    EPOLLIN, on_accept, &t->listen[i]) < 0)
			return -1;
	}
	t->auth = auth_pool_new(t->event, workers);
	t->shared = shared_state_new(t->event);
	t->relay_cache = relay_cache_new(relays_gone, t);
	if (t->shared == NULL)
		return -1;
	thread_shared_configure(t);
	return 0;
}

int servers_start(unsigned n, const struct listener *ls, size_t n_ls,
		  int done_fd)
{
	struct settings *st = settings_get();
	unsigned total_workers = st->cfg->workers;
	sigset_t all, old;

	settings_put(&st);
	threads_done_fd = done_fd;
	threads = xcalloc(n, sizeof(*threads));
	n_threads = n;
	for (unsigned i = 0; i < n; i++) {
		/* The whole pool is shared out; each thread has at least one
		 * worker. */
		unsigned w = total_workers / n + (i < total_workers % n);

		if (thread_setup(&threads[i], i, w ? w : 1, ls, n_ls) < 0) {
			log_err("cannot set up serving thread %u", i);
			return -1;
		}
	}
	/* Signals are the main loop's: threads start with them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&threads[i].tid, NULL, thread_main,
				   &threads[i]) != 0) {
			log_err("cannot start thread %u", i);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return -1;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

static void poke_all(void)
{
	uint64_t one = 1;

	for (unsigned i = 0; i < n_threads; i++)
		(void)write(threads[i].ctl_fd, &one, sizeof(one));
}

void servers_reload(void)
{
	atomic_fetch_add(&reload_generation, 1);
	poke_all();
}

void servers_stop(void)
{
	atomic_store(&stop_requested, true);
	poke_all();
}

void servers_join(void)
{
	for (unsigned i = 0; i < n_threads; i++) {
		struct server_thread *t = &threads[i];

		pthread_join(t->tid, NULL);
		auth_pool_free(&t->auth);
		shared_state_free(&t->shared);
		relay_cache_free(&t->relay_cache);
		settings_put(&t->shared_st);
		for (size_t j = 0; j < t->n_listen; j++)
			sd_event_source_disable_unref(t->listen[j].src);
		free(t->listen);
		sd_event_source_disable_unref(t->ctl_src);
		sd_event_source_disable_unref(t->pause_timer);
		sd_event_source_disable_unref(t->stop_timer);
		sd_event_source_disable_unref(t->beat_timer);
		close(t->ctl_fd);
		sd_event_unref(t->event);
	}
	free(threads);
	threads = NULL;
	n_threads = 0;
}
