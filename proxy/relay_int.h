/* Inside the relay client: the state shared by relay.c (connection,
 * session set-up, commands), relay_auth.c (our AUTH at the smarthost:
 * PLAIN, LOGIN, XOAUTH2, OAUTHBEARER) and relay_cache.c (idle
 * connections kept for the next session). Nothing else includes this
 * header, and it comes after relay.h, whose types it uses (it does not
 * include relay.h itself: relay.h and this are one module, not two that
 * include each other). */
#ifndef AUTHRELAY_RELAY_INT_H
#define AUTHRELAY_RELAY_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "conn.h"
#include "smtp_reply.h"

#ifndef AUTHRELAY_RELAY_H
#error "include relay.h before relay_int.h"
#endif

/* The longest relay credential (auth_password_file) we send. */
#define RELAY_SECRET_MAX 1024

enum relay_state {
	R_CONNECTING,
	R_HANDSHAKE,		/* implicit TLS, or after STARTTLS */
	R_GREETING,
	R_EHLO,
	R_STARTTLS,
	R_AUTH,			/* AUTH PLAIN sent, or LOGIN password sent */
	R_AUTH_LOGIN_USER,	/* AUTH LOGIN sent */
	R_AUTH_LOGIN_PASS,	/* user name sent */
	R_AUTH_OAUTH,		/* AUTH XOAUTH2 / OAUTHBEARER sent */
	R_AUTH_OAUTH_ERR,	/* the error challenge answered */
	R_XCLIENT,
	R_READY,
	R_CMD,			/* commands (inflight) wait for their replies */
	R_DATA,			/* streaming the message */
	R_DOT,			/* end of data sent */
	R_CLOSING,		/* detached, QUIT sent */
	R_PARKING,		/* detached, RSET sent: cached on 250 */
	R_IDLE,			/* in the thread's cache (relay_cache.c) */
	R_DEAD,
};

struct relay {
	sd_event *event;
	struct settings *st;
	const struct config *cfg;
	relay_callback *cb;		/* NULL once detached */
	void *ctx;
	char *login, *address, *client_ip, *session_id;

	size_t target;			/* index into the targets */
	int pass;			/* 0: live targets, 1: the others */
	uint64_t tried;			/* targets tried, a bit each */
	size_t addr;			/* address of the current target */
	int fd;
	sd_event_source *connect_io, *connect_timer, *kick;
	struct conn *conn;
	enum relay_state state;
	bool setting_up;		/* before READY: failures try the next */
	struct smtp_ehlo_caps caps;
	bool authenticated;		/* our AUTH at the smarthost succeeded */
	bool xclient_done;
	bool data_full;
	unsigned inflight;		/* R_CMD: commands sent, not answered */

	struct smtp_reply parse;	/* the reply being read */
	struct relay_reply reply;	/* the last whole reply */
	char fail_reason[RELAY_TEXT_MAX + 1];
	const char *fail_enh;		/* NULL: 4.4.1 */
	char oauth_error[120];		/* the error challenge, for the log */

	/* relay_cache.c */
	struct relay_cache *cache;	/* the serving thread's, or NULL */
	struct relay *idle_prev, *idle_next;	/* R_IDLE: in cache's list */
	/* Taken from the cache: the first MAIL, kept until answered so it
	 * can go again on a fresh connection (no pipelining until then). */
	struct smtp_mail_args *retry_mail;
};

/* relay.c */
const struct relay_target *relay_cur_target(const struct relay *r);
/* Drop the connection and try the next smarthost (while setting up) or
 * report the failure; safe from within a conn callback. */
void relay_fail(struct relay *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A command was written: wait for its reply in state next. */
void relay_sent(struct relay *r, enum relay_state next, uint64_t timeout);
/* Compose one command line (bounded), write it, then relay_sent(). */
void relay_send_line(struct relay *r, enum relay_state next,
		     uint64_t timeout, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* relay_cmd.c: xtext (RFC 3461 §4) of in, appended to sb. */
struct strbuf;
void relay_xtext(struct strbuf *sb, const char *in);
/* The next set-up step after EHLO (STARTTLS, AUTH, XCLIENT) or READY. */
void relay_after_ehlo(struct relay *r);
/* Whose session the relay serves now (the strings are copied). */
void relay_set_identity(struct relay *r, const struct relay_identity *id);
/* Connect to the current target's next address, or the next target. */
void relay_connect(struct relay *r);
/* Detached: QUIT, then close (R_CLOSING). */
void relay_quit(struct relay *r);
/* Give a reply to the session's callback (the last use of r). */
void relay_report(struct relay *r, enum relay_event ev,
		  const struct relay_reply *rep);

/* relay_auth.c */
/* Send our AUTH with the configured mechanism, or fail the relay. */
void relay_auth_start(struct relay *r);
/* A complete reply in one of the R_AUTH* states. */
void relay_auth_reply(struct relay *r);

/* relay_cache.c: the verbs relay.c calls at its transitions. */
/* relay_open(): an idle connection for these settings, taken over by
 * the new session (RELAY_EV_READY from the loop), or NULL. */
struct relay *relay_cache_take(struct relay_cache *c, struct settings *st,
			       const struct relay_identity *id,
			       relay_callback *cb, void *ctx);
/* relay_open() of a new connection: counted by c (may be NULL). */
void relay_cache_adopt(struct relay_cache *c, struct relay *r);
/* relay_close() of a READY relay: true when it went to be cached
 * (RSET sent), false when it should say QUIT. */
bool relay_cache_park(struct relay *r);
/* The reply to the parking RSET. */
void relay_cache_parked(struct relay *r);
/* The idle time passed. */
void relay_cache_expired(struct relay *r);
/* relay_mail() on a reused connection: keep m for a retry. */
void relay_cache_keep_mail(struct relay *r, const struct smtp_mail_args *m);
/* The reply to the MAIL kept: true when it is a failure of the reused
 * connection (4xx), which is then dropped for a retry. */
bool relay_cache_mail_failed(struct relay *r);
/* The connection was lost: true when a fresh one is being made for the
 * MAIL kept (once). */
bool relay_cache_retry(struct relay *r);
/* Set-up of the fresh connection done: true when the MAIL kept went
 * again (instead of RELAY_EV_READY). */
bool relay_cache_resend(struct relay *r);
/* relay_free(): out of the cache's list and counts. */
void relay_cache_forget(struct relay *r);

#endif
