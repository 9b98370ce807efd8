/* The daemon's counters, and their rendering in the Prometheus text
 * exposition format (version 0.0.4) that [server] metrics_listen serves
 * (metrics_http.h). This module owns every name, help text and type;
 * the event sites call one verb each.
 *
 * Every counter is a relaxed atomic: serving threads add to them
 * without a lock, the main thread reads them when it renders. Label
 * values that are not known in advance (listeners, smarthosts) get a
 * slot at their first event, under a lock taken only then; after that
 * a look-up is a scan of the slots published so far. */
#ifndef AUTHRELAY_METRICS_H
#define AUTHRELAY_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "strbuf.h"

/* The result label of authrelay_auth_total. */
enum metrics_auth {
	METRICS_AUTH_OK,
	METRICS_AUTH_BAD_CREDENTIALS,
	METRICS_AUTH_NOT_IN_GROUP,
	METRICS_AUTH_TEMPFAIL,
	METRICS_AUTH_N
};

/* The reason label of authrelay_messages_refused_total: why a message
 * (a transaction from MAIL to the end of data) did not go through. */
enum metrics_refusal {
	METRICS_REFUSED_SENDER,		/* sender policy: MAIL or From: */
	METRICS_REFUSED_RATE_LIMIT,	/* [policy] user_rate and the like */
	METRICS_REFUSED_SIZE,		/* SIZE= or data past the limit */
	METRICS_REFUSED_NUL,
	METRICS_REFUSED_BARE_NEWLINE,
	METRICS_REFUSED_SMARTHOST,	/* the smarthost's own refusal */
	METRICS_REFUSED_SMARTHOST_UNAVAILABLE,	/* none reachable, or lost */
	METRICS_REFUSED_N
};

/* The limit label of authrelay_throttled_total. */
enum metrics_limit {
	METRICS_LIMIT_MAX_CONNECTIONS,
	METRICS_LIMIT_MAX_CONNECTIONS_PER_IP,
	METRICS_LIMIT_MESSAGE_RATE,
	METRICS_LIMIT_RECIPIENT_RATE,
	METRICS_LIMIT_AUTH_BLOCKED,	/* refused: the address is blocked */
	METRICS_LIMIT_N
};

enum metrics_smarthost {
	METRICS_SMARTHOST_CONNECT,	/* TCP connection established */
	METRICS_SMARTHOST_FAILURE,	/* given up for this attempt */
	METRICS_SMARTHOST_FAILOVER,	/* ready, but not the first choice */
	METRICS_SMARTHOST_N
};

/* A session accepted on the listener of that name (listen.h). */
void metrics_session(const char *listener);
/* Makes the listener's counter show (at 0) before its first session. */
void metrics_listener(const char *listener);
/* A TLS handshake that ended, with a mail client or with a smarthost. */
void metrics_tls_handshake(bool towards_smarthost, bool ok);
void metrics_auth(enum auth_backend backend, enum metrics_auth result);
/* A refused login, told apart by the reason the worker gave
 * (auth_proto.h: AUTH_REASON_NOT_IN_GROUP) or ours. */
void metrics_auth_refused(enum auth_backend backend, const char *reason);
/* From a request to the auth workers to its answer. */
void metrics_auth_duration(uint64_t usec);
/* A credential cache look-up: counts it, returns hit. */
bool metrics_auth_cached(bool hit);
/* A client address newly blocked after too many failed logins. */
void metrics_client_blocked(void);
void metrics_throttled(enum metrics_limit limit);
/* A message the smarthost accepted: its recipients, its size, and the
 * time from DATA to the smarthost's reply. */
void metrics_message_relayed(unsigned rcpts, uint64_t octets,
			     uint64_t usec);
void metrics_message_refused(enum metrics_refusal reason);
void metrics_smarthost(const char *host, enum metrics_smarthost ev);
void metrics_worker_spawned(void);
void metrics_worker_died(void);

/* Every metric, in the text format, into sb; -1 if it did not fit. */
int metrics_render(struct strbuf *sb);

#endif
