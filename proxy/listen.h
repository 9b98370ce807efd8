/* Listening sockets: those passed by systemd (LISTEN_FDS, matched by
 * name: "submission" speaks STARTTLS, "submissions" implicit TLS, in any
 * order), or else the config's listen entries, bound here. */
#ifndef AUTHRELAY_LISTEN_H
#define AUTHRELAY_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct listener {
	int fd;
	enum listen_mode mode;
	char name[80];		/* "127.0.0.1:587" or the systemd name */
};

/* Returns 0 with the listeners, or -1 with errors added. */
int listeners_open(const struct config *cfg, struct listener **ls_r,
		   size_t *n_r, bool *activated_r, struct config_errors *errs);
void listeners_close(struct listener **ls, size_t n);
/* A non-blocking listening TCP socket on host:port ("" for any
 * address), or -1 with *error_r. */
int listen_socket(const char *host, const char *port, const char **error_r);

#endif
