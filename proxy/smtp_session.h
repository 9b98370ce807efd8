/* One SMTP submission session (RFC 5321, RFC 6409): the state machine
 * between the client connection, the auth workers and the relay to the
 * smarthost. What it accepts in each state is one table, at the top of
 * smtp_session.c (smtp_commands[] below). */
#ifndef AUTHRELAY_SMTP_SESSION_H
#define AUTHRELAY_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "config.h"
#include "smtp_cmd.h"

struct auth_pool;
struct relay_cache;
struct settings;
struct shared_state;
struct smtp_session;

/* Where a session lives: its event loop, the auth workers it asks, and
 * who keeps the list of sessions (told when one joins and when it is
 * gone). */
struct smtp_session_host {
	sd_event *event;
	struct auth_pool *auth;
	struct shared_state *shared;	/* NULL: node-local limits only */
	struct relay_cache *relay_cache;	/* NULL: no smarthost connection
						 * outlives its session */
	void (*joined)(struct smtp_session *s, void *ctx);
	void (*gone)(struct smtp_session *s, void *ctx);
	void *ctx;
	/* Tests only: take a plain connection on a STARTTLS listener as if
	 * STARTTLS had been done (no certificate needed to drive the
	 * state machine). */
	bool assume_tls;
};

/* Takes ownership of fd and of the reference st. NULL if it could not be
 * set up (fd closed). */
struct smtp_session *smtp_session_new(const struct smtp_session_host *host,
				      struct settings *st, int fd,
				      const struct sockaddr_storage *addr,
				      enum listen_mode mode);
/* The server is stopping: close now if idle, else after the transaction. */
void smtp_session_stop(struct smtp_session *s);
/* shutdown_timeout passed: 421 and close, whatever the state. */
void smtp_session_abort(struct smtp_session *s);

/* Sessions of one thread are linked for shutdown. */
struct smtp_session *smtp_session_next(struct smtp_session *s);
void smtp_session_link(struct smtp_session **head, struct smtp_session *s);
void smtp_session_unlink(struct smtp_session **head, struct smtp_session *s);

/* The command table: what a command needs before it is taken. The
 * checks run in the order of the flags below; the first that fails
 * gives the reply. */
enum smtp_need {
	NEED_TLS = 1 << 0,	/* 530 5.7.0 on a STARTTLS listener before TLS */
	NEED_NO_TLS = 1 << 1,	/* 554 5.5.1: TLS already active */
	NEED_HELO = 1 << 2,	/* 503 5.5.1 Send EHLO first */
	NEED_AUTH = 1 << 3,	/* 530 5.7.0 Authentication required */
	NEED_NO_AUTH = 1 << 4,	/* 503 5.5.1 Already authenticated */
	NEED_TX = 1 << 5,	/* 503 5.5.1 Need MAIL command */
	NEED_NO_TX = 1 << 6,	/* 503 5.5.1 (the row's busy text) */
	NEED_RCPT = 1 << 7,	/* 503 5.5.1 Need RCPT / 554 5.5.1 none valid */
};

enum smtp_args {
	ARGS_ANY,		/* the command parses its own */
	ARGS_NONE,		/* anything after the verb: 501 5.5.4 */
	ARGS_REQUIRED,		/* nothing after the verb: 501 5.5.4 */
};

struct smtp_command {
	enum smtp_verb verb;
	const char *name;
	unsigned need;			/* enum smtp_need bits */
	enum smtp_args args;
	const char *syntax;		/* the 501 text for args */
	const char *busy;		/* the 503 text for NEED_NO_TX */
	/* NULL: 502 5.5.1 Command not implemented */
	void (*proceed)(struct smtp_session *s, const char *args);
};

/* Where the session stands, as the table's checks see it. */
struct smtp_gate_state {
	bool tls_required;	/* STARTTLS listener, no TLS yet */
	bool tls_active;	/* TLS on, or an implicit TLS listener */
	bool helo;
	bool authenticated;
	bool in_tx;
	unsigned n_rcpt, n_rcpt_tried;
};

extern const struct smtp_command smtp_commands[];
extern const size_t smtp_n_commands;

/* The row for verb; NULL for SMTP_VERB_UNKNOWN. */
const struct smtp_command *smtp_command_find(enum smtp_verb verb);
/* NULL if cmd may proceed in g with args, else the reply (without CRLF)
 * the table gives. */
const char *smtp_command_gate(const struct smtp_command *cmd,
			      const struct smtp_gate_state *g,
			      const char *args);

#endif
