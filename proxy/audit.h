/* The audit trail: one record per event (connect, tls, auth-ok,
 * auth-failure, auth-tempfail, message, relay-failure, disconnect...).
 * Under systemd: a journal record with MESSAGE= and a field per value,
 * AUTHRELAY_EVENT=, AUTHRELAY_SESSION=, AUTHRELAY_CLIENT=,
 * AUTHRELAY_USER=, ... (keys upper-cased); elsewhere the same as one
 * line on stderr: "authrelay[PID]: LEVEL: EVENT key=value ...", values
 * with spaces or quotes in double quotes. Never give it a password. */
#ifndef AUTHRELAY_AUDIT_H
#define AUTHRELAY_AUDIT_H

#include <stddef.h>

#include "log.h"

struct audit_kv {
	const char *key;	/* lower case: "user", "client", ... */
	const char *value;	/* NULL: left out */
};

/* The most fields audit() takes; audit_event() takes any number, and a
 * key may come more than once (a message's to= fields): the journal
 * gets each as a field of that name, the text line each as key=value. */
#define AUDIT_MAX_FIELDS 24
/* The text line (and MESSAGE=) is at most this long: fields that do not
 * fit whole are left out of it and counted in a last "omitted=N"; the
 * journal fields still carry every one. */
#define AUDIT_LINE_MAX LOG_LINE_MAX
/* One journal field, "AUTHRELAY_KEY=value", is cut at this length. */
#define AUDIT_FIELD_MAX 2048

void audit_event(enum log_level level, const char *event,
		 const struct audit_kv *kv, size_t n);

/* audit(level, "auth-failure", "user", u, "client", ip, NULL) */
void audit(enum log_level level, const char *event, ...)
	__attribute__((sentinel));

#endif
