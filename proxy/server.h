/* The serving threads: each runs its own sd-event loop on the same
 * listening sockets, with its own auth worker pool, and the sessions
 * it accepted (settings.h: what they share). */
#ifndef AUTHRELAY_SERVER_H
#define AUTHRELAY_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <openssl/ssl.h>
#include <systemd/sd-event.h>

#include "listen.h"
#include "settings.h"

/* Start n serving threads on the listeners. done_fd (an eventfd) is
 * written once by each thread when it has finished. */
int servers_start(unsigned n, const struct listener *ls, size_t n_ls,
		  int done_fd);
/* Tell every thread to reload (recycle auth workers) or to stop
 * (stop accepting, close idle sessions, the rest within
 * shutdown_timeout). */
void servers_reload(void);
void servers_stop(void);
void servers_join(void);
/* True if every serving loop has turned since the last call. */
bool servers_alive(void);

#endif
