/* Inside the relay client: the state shared by relay.c (connection,
 * session set-up, commands) and relay_auth.c (our AUTH at the smarthost:
 * PLAIN, LOGIN, XOAUTH2, OAUTHBEARER). Nothing else includes this
 * header. */
#ifndef AUTHRELAY_RELAY_INT_H
#define AUTHRELAY_RELAY_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "conn.h"
#include "relay.h"
#include "smtp_reply.h"

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
/* The next set-up step after EHLO (STARTTLS, AUTH, XCLIENT) or READY. */
void relay_after_ehlo(struct relay *r);

/* relay_auth.c */
/* Send our AUTH with the configured mechanism, or fail the relay. */
void relay_auth_start(struct relay *r);
/* A complete reply in one of the R_AUTH* states. */
void relay_auth_reply(struct relay *r);

#endif
