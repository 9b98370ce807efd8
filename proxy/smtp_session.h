/* One SMTP submission session (RFC 5321, RFC 6409): the state machine
 * between the client connection and the auth workers (and, later, the
 * relay to the smarthost). */
#ifndef AUTHRELAY_SMTP_SESSION_H
#define AUTHRELAY_SMTP_SESSION_H

#include <sys/socket.h>

#include "config.h"

struct server_thread;
struct settings;
struct smtp_session;

/* Takes ownership of fd and of the reference st. NULL if it could not be
 * set up (fd closed). */
struct smtp_session *smtp_session_new(struct server_thread *t,
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

#endif
