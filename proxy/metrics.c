/* Counters and their text exposition (metrics.h). The format:
 * https://prometheus.io/docs/instrumenting/exposition_formats/ (text
 * format 0.0.4): "# HELP name text", "# TYPE name type", then one
 * sample a line, `name{label="value"} number`; a histogram's buckets
 * are cumulative, `le` ascending and ending at "+Inf", whose count
 * equals name_count. */
#include "autoconf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "auth_proto.h"
#include "metrics.h"
#include "settings.h"

typedef atomic_ulong counter;

static inline void inc(counter *c, unsigned long n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline unsigned long get(counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Upper bounds of the histogram buckets, in microseconds; +Inf
 * follows. From a cache-speed login to a slow smarthost's queue. */
static const uint64_t bucket_usec[] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};
#define N_BUCKETS (sizeof(bucket_usec) / sizeof(bucket_usec[0]))

struct histogram {
	counter bucket[N_BUCKETS + 1];	/* not cumulative; last: +Inf */
	counter sum_usec;
};

static void observe(struct histogram *h, uint64_t usec)
{
	size_t i = 0;

	while (i < N_BUCKETS && usec > bucket_usec[i])
		i++;
	inc(&h->bucket[i], 1);
	inc(&h->sum_usec, (unsigned long)usec);
}

/* Label values seen at run time: listeners and smarthosts, a handful
 * each. Past LABELS_MAX, events count under the last slot, "other". */
#define LABELS_MAX 64
#define LABEL_MAX 256

struct label_table {
	pthread_mutex_t lock;		/* taken to add a slot only */
	atomic_uint n;			/* slots published */
	char name[LABELS_MAX][LABEL_MAX];
	counter v[LABELS_MAX][METRICS_SMARTHOST_N];
};

static unsigned label_find(struct label_table *t, unsigned n,
			   const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(t->name[i], name) == 0)
			return i;
	return n;
}

static unsigned label_slot(struct label_table *t, const char *name)
{
	unsigned n = atomic_load_explicit(&t->n, memory_order_acquire);
	unsigned i = label_find(t, n, name);

	if (i < n)
		return i;
	pthread_mutex_lock(&t->lock);
	n = atomic_load_explicit(&t->n, memory_order_acquire);
	i = label_find(t, n, name);
	if (i == n) {
		if (n >= LABELS_MAX - 1 || strlen(name) >= LABEL_MAX)
			name = "other";
		i = label_find(t, n, name);
	}
	if (i == n) {
		snprintf(t->name[n], LABEL_MAX, "%s", name);
		/* The name is written before the slot is published. */
		atomic_store_explicit(&t->n, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&t->lock);
	return i;
}

static struct {
	struct label_table listeners;	/* v[i][0]: sessions */
	struct label_table smarthosts;	/* v[i][enum metrics_smarthost] */
	counter tls_ok[2], tls_failed[2];	/* [towards_smarthost] */
	counter auth[2][METRICS_AUTH_N];	/* [enum auth_backend] */
	struct histogram auth_duration;
	counter cache_hits, cache_misses;
	counter clients_blocked;
	counter throttled[METRICS_LIMIT_N];
	counter relayed, recipients, octets;
	struct histogram relay_duration;
	counter refused[METRICS_REFUSED_N];
	counter worker_spawns, worker_deaths;
} m = {
	.listeners = { .lock = PTHREAD_MUTEX_INITIALIZER },
	.smarthosts = { .lock = PTHREAD_MUTEX_INITIALIZER },
};

void metrics_session(const char *listener)
{
	inc(&m.listeners.v[label_slot(&m.listeners, listener)][0], 1);
}

void metrics_listener(const char *listener)
{
	(void)label_slot(&m.listeners, listener);
}

void metrics_tls_handshake(bool towards_smarthost, bool ok)
{
	inc(ok ? &m.tls_ok[towards_smarthost] : &m.tls_failed[towards_smarthost],
	    1);
}

void metrics_auth(enum auth_backend backend, enum metrics_auth result)
{
	if ((unsigned)backend < 2 && (unsigned)result < METRICS_AUTH_N)
		inc(&m.auth[backend][result], 1);
}

void metrics_auth_refused(enum auth_backend backend, const char *reason)
{
	metrics_auth(backend, reason != NULL &&
		     strcmp(reason, AUTH_REASON_NOT_IN_GROUP) == 0 ?
		     METRICS_AUTH_NOT_IN_GROUP : METRICS_AUTH_BAD_CREDENTIALS);
}

void metrics_auth_duration(uint64_t usec)
{
	observe(&m.auth_duration, usec);
}

bool metrics_auth_cached(bool hit)
{
	inc(hit ? &m.cache_hits : &m.cache_misses, 1);
	return hit;
}

void metrics_client_blocked(void)
{
	inc(&m.clients_blocked, 1);
}

void metrics_throttled(enum metrics_limit limit)
{
	if ((unsigned)limit < METRICS_LIMIT_N)
		inc(&m.throttled[limit], 1);
}

void metrics_message_relayed(unsigned rcpts, uint64_t octets, uint64_t usec)
{
	inc(&m.relayed, 1);
	inc(&m.recipients, rcpts);
	inc(&m.octets, (unsigned long)octets);
	observe(&m.relay_duration, usec);
}

void metrics_message_refused(enum metrics_refusal reason)
{
	if ((unsigned)reason < METRICS_REFUSED_N)
		inc(&m.refused[reason], 1);
}

void metrics_smarthost(const char *host, enum metrics_smarthost ev)
{
	if ((unsigned)ev < METRICS_SMARTHOST_N)
		inc(&m.smarthosts.v[label_slot(&m.smarthosts, host)][ev], 1);
}

void metrics_worker_spawned(void)
{
	inc(&m.worker_spawns, 1);
}

void metrics_worker_died(void)
{
	inc(&m.worker_deaths, 1);
}

/* Rendering */

static const char *const auth_backend_names[2] = { "pam", "ldap" };
static const char *const auth_result_names[METRICS_AUTH_N] = {
	"ok", "bad_credentials", "not_in_group", "tempfail",
};
static const char *const refusal_names[METRICS_REFUSED_N] = {
	"sender", "rate_limit", "size", "nul", "bare_newline", "smarthost",
	"smarthost_unavailable",
};
static const char *const limit_names[METRICS_LIMIT_N] = {
	"max_connections", "max_connections_per_ip", "message_rate",
	"recipient_rate", "auth_blocked",
};

static void family(struct strbuf *sb, const char *name, const char *type,
		   const char *help)
{
	strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
		      type);
}

static void sample(struct strbuf *sb, const char *name, unsigned long v)
{
	strbuf_printf(sb, "%s %lu\n", name, v);
}

/* A family of one sample without labels. */
static void one(struct strbuf *sb, const char *name, const char *type,
		const char *help, unsigned long v)
{
	family(sb, name, type, help);
	sample(sb, name, v);
}

/* A label value: backslash, double quote and line feed escaped. */
static void label_value(struct strbuf *sb, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			strbuf_addc(sb, '\\');
		if (*v == '\n')
			strbuf_add(sb, "\\n");
		else
			strbuf_addc(sb, *v);
	}
}

static void sample1(struct strbuf *sb, const char *name, const char *label,
		    const char *value, unsigned long v)
{
	strbuf_printf(sb, "%s{%s=\"", name, label);
	label_value(sb, value);
	strbuf_printf(sb, "\"} %lu\n", v);
}

static void render_table(struct strbuf *sb, struct label_table *t,
			 const char *name, const char *label, unsigned col)
{
	unsigned n = atomic_load_explicit(&t->n, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		sample1(sb, name, label, t->name[i], get(&t->v[i][col]));
}

static void render_histogram(struct strbuf *sb, const char *name,
			     const char *help, struct histogram *h)
{
	unsigned long cum = 0, sum = get(&h->sum_usec);

	family(sb, name, "histogram", help);
	for (size_t i = 0; i <= N_BUCKETS; i++) {
		cum += get(&h->bucket[i]);
		if (i < N_BUCKETS)
			strbuf_printf(sb, "%s_bucket{le=\"%llu.%06llu\"} %lu\n",
				      name,
				      (unsigned long long)bucket_usec[i] / 1000000,
				      (unsigned long long)bucket_usec[i] % 1000000,
				      cum);
		else
			strbuf_printf(sb, "%s_bucket{le=\"+Inf\"} %lu\n", name,
				      cum);
	}
	strbuf_printf(sb, "%s_sum %lu.%06lu\n%s_count %lu\n", name,
		      sum / 1000000, sum % 1000000, name, cum);
}

static void render_sessions(struct strbuf *sb)
{
	family(sb, "authrelay_sessions_active", "gauge",
	       "SMTP sessions open now.");
	sample(sb, "authrelay_sessions_active",
	       atomic_load(&stats.sessions_active));
	family(sb, "authrelay_sessions_total", "counter",
	       "SMTP sessions accepted, by listener.");
	render_table(sb, &m.listeners, "authrelay_sessions_total", "listener",
		     0);
	family(sb, "authrelay_tls_handshakes_total", "counter",
	       "TLS handshakes completed, with mail clients (peer=client) "
	       "and with smarthosts.");
	sample1(sb, "authrelay_tls_handshakes_total", "peer", "client",
		get(&m.tls_ok[0]));
	sample1(sb, "authrelay_tls_handshakes_total", "peer", "smarthost",
		get(&m.tls_ok[1]));
	family(sb, "authrelay_tls_handshake_failures_total", "counter",
	       "TLS handshakes that failed.");
	sample1(sb, "authrelay_tls_handshake_failures_total", "peer",
		"client", get(&m.tls_failed[0]));
	sample1(sb, "authrelay_tls_handshake_failures_total", "peer",
		"smarthost", get(&m.tls_failed[1]));
}

static void render_auth(struct strbuf *sb)
{
	family(sb, "authrelay_auth_total", "counter",
	       "Logins (SMTP AUTH), by backend and result.");
	for (unsigned b = 0; b < 2; b++)
		for (unsigned r = 0; r < METRICS_AUTH_N; r++)
			strbuf_printf(sb, "authrelay_auth_total{backend=\"%s\","
				      "result=\"%s\"} %lu\n",
				      auth_backend_names[b],
				      auth_result_names[r], get(&m.auth[b][r]));
	render_histogram(sb, "authrelay_auth_duration_seconds",
			 "Time from a login request to the auth workers to "
			 "its answer (credential cache hits do not ask them).",
			 &m.auth_duration);
	one(sb, "authrelay_auth_cache_hits_total", "counter",
	    "Logins answered from the credential cache.",
	    get(&m.cache_hits));
	one(sb, "authrelay_auth_cache_misses_total", "counter",
	    "Logins the credential cache could not answer.",
	    get(&m.cache_misses));
	one(sb, "authrelay_auth_worker_spawns_total", "counter",
	    "Auth workers requested from the supervisor.",
	    get(&m.worker_spawns));
	one(sb, "authrelay_auth_worker_deaths_total", "counter",
	    "Auth workers lost: exited, timed out or answered garbage.",
	    get(&m.worker_deaths));
	one(sb, "authrelay_clients_blocked_total", "counter",
	    "Client addresses blocked after too many failed logins.",
	    get(&m.clients_blocked));
	family(sb, "authrelay_throttled_total", "counter",
	       "Connections and commands refused by a limit.");
	for (unsigned i = 0; i < METRICS_LIMIT_N; i++)
		sample1(sb, "authrelay_throttled_total", "limit",
			limit_names[i], get(&m.throttled[i]));
}

static void render_messages(struct strbuf *sb)
{
	one(sb, "authrelay_messages_relayed_total", "counter",
	    "Messages the smarthost accepted.",
	    get(&m.relayed));
	family(sb, "authrelay_messages_refused_total", "counter",
	       "Messages refused, by reason.");
	for (unsigned i = 0; i < METRICS_REFUSED_N; i++)
		sample1(sb, "authrelay_messages_refused_total", "reason",
			refusal_names[i], get(&m.refused[i]));
	one(sb, "authrelay_recipients_total", "counter",
	    "Recipients of the messages relayed.",
	    get(&m.recipients));
	one(sb, "authrelay_message_bytes_total", "counter",
	    "Octets of the messages relayed, as the clients sent them.",
	    get(&m.octets));
	render_histogram(sb, "authrelay_relay_duration_seconds",
			 "Time from DATA to the smarthost's reply to the end "
			 "of a message it accepted.", &m.relay_duration);
	family(sb, "authrelay_smarthost_connections_total", "counter",
	       "TCP connections made to the smarthost.");
	render_table(sb, &m.smarthosts, "authrelay_smarthost_connections_total",
		     "host", METRICS_SMARTHOST_CONNECT);
	family(sb, "authrelay_smarthost_failures_total", "counter",
	       "Times the smarthost could not be used (connect, TLS, "
	       "EHLO, AUTH) and was marked down.");
	render_table(sb, &m.smarthosts, "authrelay_smarthost_failures_total",
		     "host", METRICS_SMARTHOST_FAILURE);
	family(sb, "authrelay_smarthost_failovers_total", "counter",
	       "Relay connections ready on this smarthost while an earlier "
	       "one in the list had failed or was marked down.");
	render_table(sb, &m.smarthosts, "authrelay_smarthost_failovers_total",
		     "host", METRICS_SMARTHOST_FAILOVER);
}

int metrics_render(struct strbuf *sb)
{
	render_sessions(sb);
	render_auth(sb);
	render_messages(sb);
	return strbuf_truncated(sb) ? -1 : 0;
}
