/* The control channel between the supervisor and the network process:
 * a SOCK_SEQPACKET socketpair, one text datagram per message (at most
 * CTL_MSG_MAX octets, printable ASCII and spaces, newlines only inside
 * NOTIFY), carrying at most one file descriptor (SCM_RIGHTS).
 *
 *   network -> supervisor
 *     SPAWN <id>        + the worker's end of a new socketpair: start an
 *                         auth worker on it (id: 1..2^32-1, chosen by
 *                         the network process, unique while it runs)
 *     KILL <id>         the worker id hangs: SIGKILL it
 *     NOTIFY <text>     sd_notify(text) on the network process's behalf
 *                         (READY=1, RELOADING=1, STOPPING=1, STATUS=...,
 *                         WATCHDOG=1 only)
 *     RELOAD            as SIGHUP to the supervisor
 *     TOKEN-REQUEST <mailbox>   fetch an OAuth2 token (token_fetch.h)
 *   supervisor -> network
 *     SETTINGS          + a bundle memfd (common/bundle.h): the first
 *                         one to start with, later ones for new sessions
 *     RELOAD-FAILED     a reload found errors (logged by the supervisor):
 *                         the running settings stay
 *     TOKEN <mailbox> <expires_in> <token>   an OAuth2 access token
 *
 * The supervisor trusts nothing the network process sends: a malformed
 * message is logged and ignored, never acted on. There are no replies: a
 * worker that cannot be started closes its socket, which the network
 * process sees as a worker that died (454 for the request). */
#ifndef AUTHRELAY_CTL_H
#define AUTHRELAY_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CTL_MSG_MAX 12288	/* an access token fits (relay_token.h) */

/* Send one message (printf format) with fd attached when fd >= 0.
 * Never blocks: -1 (errno EAGAIN) if the peer is not reading. */
int ctl_send(int sock, int fd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Receive one message into msg (NUL-terminated): its length, 0 at end of
 * file, -1 with errno (EAGAIN: nothing waiting; EPROTO: truncated,
 * holding NUL, or carrying more than one descriptor or anything but
 * SCM_RIGHTS). *fd_r gets the passed descriptor (close-on-exec) or -1. */
ssize_t ctl_recv(int sock, char *msg, size_t size, int *fd_r);

/* The supervisor's parsers. ctl_parse_id: msg is exactly "WORD <id>",
 * id a decimal in 1..2^32-1 without sign or leading zero. ctl_notify_
 * allowed: text is one or more lines, each READY=1, RELOADING=1,
 * STOPPING=1, WATCHDOG=1 or STATUS= and printable ASCII. */
bool ctl_parse_id(const char *msg, const char *word, unsigned *id_r);
bool ctl_notify_allowed(const char *text);

/* The network process's side. ctl_client_set() once before the threads
 * start; the calls below are thread-safe. relay_notify: sd_notify goes
 * through the supervisor (it is systemd's main process: the supervisor
 * forked us); false when this process is the unit's main process itself
 * (authrelay.service with its supervisor in authrelay-supervisor@). */
void ctl_client_set(int sock, bool relay_notify);
int ctl_client_fd(void);
int ctl_spawn_worker(int worker_sock, uint32_t id);
void ctl_kill_worker(uint32_t id);
/* sd_notify through the supervisor (directly when there is none). */
void ctl_notify(const char *text);
void ctl_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
