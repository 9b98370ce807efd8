/* The relay client: one SMTP connection to a smarthost per client
 * session, opened at the first MAIL FROM. It connects to the first
 * reachable [relay] smarthost (a failed one is skipped for a while), reads
 * the greeting, speaks EHLO, STARTTLS or implicit TLS with certificate
 * verification when configured (a failure is a failure, never a
 * plaintext fallback), AUTH PLAIN or LOGIN with the proxy's own
 * credential, and XCLIENT when configured and offered. Commands upstream
 * are rebuilt from parsed fields, pipelined when the smarthost offers
 * PIPELINING and the client pipelines; every reply is parsed
 * with hard limits (RFC 5321 §4.5.3.1.5: 512 octets a line; at most
 * RELAY_REPLY_LINES lines) and anything malformed fails the relay. */
#ifndef AUTHRELAY_RELAY_H
#define AUTHRELAY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "relay_targets.h"
#include "smtp_cmd.h"
#include "smtp_reply.h"

/* The reply parser's limits (smtp_reply.h). */
#define RELAY_REPLY_LINES SMTP_REPLY_LINES
#define RELAY_TEXT_MAX SMTP_REPLY_TEXT_MAX

struct relay;
struct settings;

struct relay_reply {
	int code;			/* 200..599 */
	char enhanced[16];		/* "2.1.5"; synthesized if absent */
	char text[RELAY_TEXT_MAX + 1];	/* first line, printable ASCII */
};

enum relay_event {
	RELAY_EV_READY,		/* connected, TLS and AUTH done */
	RELAY_EV_REPLY,		/* the reply to the pending command */
	RELAY_EV_DRAINED,	/* data output fell below the high mark */
	RELAY_EV_FAILED,	/* gone: connect, TLS, protocol or I/O */
};

/* rep is set for REPLY and, with the reason, for FAILED. */
typedef void relay_callback(struct relay *r, enum relay_event ev,
			    const struct relay_reply *rep, void *ctx);

struct relay_identity {
	const char *login;	/* the authenticated user */
	const char *address;	/* for MAIL AUTH=, NULL if none */
	const char *client_ip;
	const char *session_id;
};

/* Start connecting, or take an idle connection from cache (the serving
 * thread's, relay_cache.h; NULL for none); RELAY_EV_READY or
 * RELAY_EV_FAILED follows. The identity strings are copied. */
struct relay_cache;
struct relay *relay_open(sd_event *event, struct relay_cache *cache,
			 struct settings *st,
			 const struct relay_identity *id,
			 relay_callback *cb, void *ctx);
/* Drop the connection at once, without QUIT and without ending a DATA
 * in progress: the smarthost keeps nothing of an unfinished message. */
void relay_abort(struct relay **r);
/* Polite end, in the background; the callback is not called again.
 * Back to the cache (RSET) when it allows, else QUIT. */
void relay_close(struct relay **r);

/* Each command gets RELAY_EV_REPLY (or FAILED), in the order sent. A
 * 4xx/5xx reply is not a failure of the relay. One at a time, unless
 * relay_pipelining(): then MAIL, RCPTs and a last DATA may follow one
 * another before their replies (RFC 2920), and what is written in one
 * turn of the loop goes out in one write. */
bool relay_pipelining(const struct relay *r);
/* Returns 0, or -1 with *rep set when the command cannot be sent as asked
 * (e.g. SMTPUTF8 to a smarthost without it): then no command is sent. */
int relay_mail(struct relay *r, const struct smtp_mail_args *mail,
	       struct relay_reply *rep);
void relay_rcpt(struct relay *r, const struct smtp_rcpt_args *rcpt);
void relay_rset(struct relay *r);
/* DATA; on a 354 the relay streams. */
void relay_data(struct relay *r);
void relay_data_write(struct relay *r, const char *buf, size_t len);
/* True while the data not yet written to the smarthost is over the high
 * mark: stop feeding until RELAY_EV_DRAINED. */
bool relay_data_full(const struct relay *r);
/* Send the end of data; RELAY_EV_REPLY carries the smarthost's verdict. */
void relay_data_end(struct relay *r);

/* Names for logs and the Received header. */
const char *relay_host(const struct relay *r);

/* After RELAY_EV_READY, for authrelay --check: what the last EHLO
 * offered, the TLS version (NULL without TLS), and whether the
 * smarthost took our own credential. */
const struct smtp_ehlo_caps *relay_caps(const struct relay *r);
const char *relay_tls_version(const struct relay *r);
bool relay_authenticated(const struct relay *r);

#endif
