#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "listen.h"
#include "log.h"
#include "xalloc.h"

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

static int from_systemd(int n, char **names, struct listener *ls,
			struct config_errors *errs)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		const char *name = names != NULL ? names[i] : "unknown";

		ls[i].fd = fd;
		snprintf(ls[i].name, sizeof(ls[i].name), "%s", name);
		if (strcmp(name, "submission") == 0) {
			ls[i].mode = LISTEN_STARTTLS;
		} else if (strcmp(name, "submissions") == 0) {
			ls[i].mode = LISTEN_TLS;
		} else {
			config_errors_add(errs,
					  "passed socket %d is named \"%s\": "
					  "set FileDescriptorName=submission "
					  "(STARTTLS) or submissions (TLS)",
					  fd, name);
			bad = 1;
			continue;
		}
		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			config_errors_add(errs, "passed fd %d (%s) is not a "
					  "listening stream socket", fd, name);
			bad = 1;
			continue;
		}
		if (set_nonblock(fd) < 0) {
			config_errors_add(errs, "fd %d: %s", fd,
					  strerror(errno));
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

int listen_socket(const char *host, const char *port, const char **error_r)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL;
	int r, fd, one = 1;

	r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (r != 0) {
		*error_r = gai_strerror(r);
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0)
		goto fail;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::]:587 and 0.0.0.0:587 are separate entries, as written. */
	if (res->ai_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				 sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
	    listen(fd, SOMAXCONN) < 0)
		goto fail;
	freeaddrinfo(res);
	return fd;
fail:
	*error_r = strerror(errno);
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

static int bind_one(const struct config *cfg, const struct config_listen *l,
		    struct listener *out, struct config_errors *errs)
{
	const char *error;
	int fd = listen_socket(l->host, l->port, &error);

	if (fd < 0) {
		config_errors_add(errs, "%s:%u: listen %s:%s: %s", cfg->path,
				  l->line, l->host, l->port, error);
		return -1;
	}
	out->fd = fd;
	out->mode = l->mode;
	snprintf(out->name, sizeof(out->name), "%s%s%s:%s",
		 strchr(l->host, ':') ? "[" : "", l->host,
		 strchr(l->host, ':') ? "]" : "", l->port);
	return 0;
}

int listeners_open(const struct config *cfg, struct listener **ls_r,
		   size_t *n_r, bool *activated_r, struct config_errors *errs)
{
	char **names = NULL;
	struct listener *ls;
	int n, r = 0;
	size_t count = 0;

	/* unset_environment: auth workers must not think they were
	 * socket-activated. */
	n = sd_listen_fds_with_names(1, &names);
	if (n < 0) {
		config_errors_add(errs, "LISTEN_FDS: %s", strerror(-n));
		return -1;
	}
	if (n > 0) {
		ls = xcalloc((size_t)n, sizeof(*ls));
		r = from_systemd(n, names, ls, errs);
		count = (size_t)n;
		for (int i = 0; names != NULL && i < n; i++)
			free(names[i]);
		free(names);
		*activated_r = true;
	} else {
		*activated_r = false;
		if (cfg->n_listen == 0) {
			config_errors_add(errs, "%s: no [server] listen entry "
					  "and no sockets passed by systemd",
					  cfg->path);
			return -1;
		}
		ls = xcalloc(cfg->n_listen, sizeof(*ls));
		for (size_t i = 0; i < cfg->n_listen; i++) {
			ls[count].fd = -1;
			if (bind_one(cfg, &cfg->listen[i], &ls[count], errs) < 0)
				r = -1;
			else
				count++;
		}
	}
	if (r < 0) {
		listeners_close(&ls, count);
		return -1;
	}
	*ls_r = ls;
	*n_r = count;
	return 0;
}

void listeners_close(struct listener **lsp, size_t n)
{
	struct listener *ls = *lsp;

	if (ls == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		if (ls[i].fd >= 0)
			close(ls[i].fd);
	free(ls);
	*lsp = NULL;
}
