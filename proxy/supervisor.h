/* The supervisor: the process authrelay starts as (root under systemd).
 *
 *   authrelay: supervisor (root)
 *     |-- authrelay: network (user authrelay, no capabilities,
 *     |     no_new_privs, seccomp): listeners, TLS, SMTP, relay, policy
 *     |-- authrelay-auth (root with backend = pam, user authrelay with
 *           backend = ldap): one per request slot, spawned on request
 *
 * It reads the config and every secret (settings_load.h), opens the
 * listeners, forks the network process and then does only this: start
 * auth workers when the network process asks (ctl.h), kill those it says
 * hang, reap them, relay its sd_notify messages, re-read everything on
 * SIGHUP and hand the result over, pass SIGTERM on, and exit with the
 * network process's status when it ends, killing every worker left. It
 * never reads a byte from a client or a smarthost. */
#ifndef AUTHRELAY_SUPERVISOR_H
#define AUTHRELAY_SUPERVISOR_H

#include <stdbool.h>
#include <sys/types.h>

#include "bundle.h"
#include "config.h"

struct supervisor_params {
	const char *config_path;
	struct config *cfg;		/* taken over */
	struct bundle *worker_bundle;	/* taken over */
	uid_t uid;			/* for workers with backend = ldap */
	gid_t gid;
	bool drop;			/* false when not started as root */
};

/* Run as the supervisor of net_pid, talking to it over ctl; returns the
 * exit status for main(). net_pid 0: the network process is not our
 * child but the peer of ctl (authrelay-supervisor@.service); we end when
 * it disconnects. SIGTERM, SIGINT, SIGHUP and SIGCHLD must be blocked. */
int supervisor_run(pid_t net_pid, int ctl, struct supervisor_params *p);

/* Start an auth worker as the supervisor does: `worker_path -b 4
 * [extra]` with sock as its fd 3 and bundle_fd (the workers' bundle as a
 * memfd) as its fd 4, signals unblocked, killed when this process dies,
 * and without privileges with backend = ldap when p->drop. authrelay
 * --check uses it for --check-user and (extra "--check") for the
 * directory checks. Returns the pid, or -1 with errno. */
pid_t supervisor_worker_start(const struct supervisor_params *p, int sock,
			      int bundle_fd, const char *extra);

#endif
