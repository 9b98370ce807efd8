/* authrelay-auth: one auth worker. authrelay's supervisor spawns them,
 * when its network process asks, as `authrelay-auth -b 4`: fd 3 is this
 * worker's end of a SOCK_SEQPACKET socketpair whose other end the network
 * process holds, fd 4 a bundle (common/bundle.h) with the config text and
 * the secrets this backend needs; with backend = ldap the worker already
 * runs as the unprivileged service user. `-c CONFIG_FILE` instead of -b
 * reads the config from a file (tests, debugging). One request at a time: receive, authenticate
 * (PAM modules block, leak and are not all thread-safe), reply with the
 * same id. Exits 0 after worker_max_requests requests or when the daemon
 * closes its end; exits 1 on anything it does not understand. The daemon
 * respawns it and answers 454 for a request in flight.
 *
 * `authrelay-auth -b 4 --check` (started by authrelay --check the same
 * way) serves no request: with backend = ldap it checks the directory
 * (ldap_backend_check: one ok/warn/FAIL line each on standard output)
 * and exits 1 if anything failed. */

#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "auth_proto.h"
#include "bundle.h"
#include "config.h"
#include "ldap_backend.h"
#include "log.h"
#include "pam_backend.h"
#include "xalloc.h"

#define WORKER_FD 3

static void usage(FILE *out)
{
	fprintf(out,
		"usage: authrelay-auth -c CONFIG_FILE | -b BUNDLE_FD\n"
		"The auth worker of authrelay, spawned by its supervisor with\n"
		"fd %d a SOCK_SEQPACKET socket and the config and secrets in\n"
		"a bundle (-b); not meant to be run by hand. --check: the\n"
		"directory part of authrelay --check.\n",
		WORKER_FD);
}

/* authrelay blocks the signals sd-event handles and may ignore SIGPIPE
 * or SIGCHLD; both survive exec. pam_unix waits for its helper
 * (unix_chkpwd) and fails if SIGCHLD is ignored; a blocked SIGTERM
 * would make the worker unkillable. Start from the defaults. */
static void reset_signals(void)
{
	static const int sigs[] = { SIGCHLD, SIGPIPE, SIGTERM, SIGINT,
				    SIGHUP, SIGALRM, SIGUSR1, SIGUSR2 };
	sigset_t none;

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void check_socket(int fd)
{
	struct stat st;
	int type = 0;
	socklen_t len = sizeof(type);

	if (fstat(fd, &st) < 0)
		fatal("fd %d: %s (authrelay-auth is spawned by authrelay)",
		      fd, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		fatal("fd %d is not a socket", fd);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		fatal("fd %d: SO_TYPE: %s", fd, strerror(errno));
	if (type != SOCK_SEQPACKET)
		fatal("fd %d is not a SOCK_SEQPACKET socket", fd);
	/* Helpers that PAM modules exec must not inherit it. */
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		fatal("fd %d: FD_CLOEXEC: %s", fd, strerror(errno));
}

/* A file of the bundle as a memfd this process can name as a path
 * (/proc/self/fd/N): libldap reads its CA file by path, and an
 * unprivileged worker may not be able to open the original. NULL when
 * the bundle does not hold it. */
static char *bundle_file_path(const struct bundle *b, const char *name)
{
	const unsigned char *data;
	size_t len, off = 0;
	int fd;

	if (name == NULL || !bundle_get(b, name, &data, &len))
		return NULL;
	fd = memfd_create("authrelay-ca", 0);
	if (fd < 0)
		fatal("memfd_create: %s", strerror(errno));
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fatal("memfd write: %s", strerror(errno));
		off += (size_t)n;
	}
	return xasprintf("/proc/self/fd/%d", fd);
}

/* The config and secrets handed over by the supervisor on fd. */
static struct config *load_bundle(int fd, struct bundle **bundle_r)
{
	struct config_errors errs = { NULL, 0 };
	const unsigned char *text, *path;
	size_t text_len, path_len;
	const char *error;
	struct bundle *b;
	struct config *cfg;

	b = bundle_from_fd(fd, &error);
	if (b == NULL)
		fatal("fd %d: %s", fd, error);
	close(fd);
	if (!bundle_get(b, BUNDLE_CONFIG, &text, &text_len) ||
	    !bundle_get(b, BUNDLE_CONFIG_PATH, &path, &path_len))
		fatal("fd %d: the bundle holds no config", fd);
	cfg = config_load_mem((const char *)path, text, text_len, false,
			      &errs);
	for (size_t i = 0; i < errs.n; i++)
		log_err("%s", errs.msg[i]);
	config_errors_clear(&errs);
	if (cfg == NULL)
		fatal("%s: invalid configuration", (const char *)path);
	*bundle_r = b;
	return cfg;
}

static struct config *load_config(const char *path)
{
	struct config_errors errs = { NULL, 0 };
	struct config *cfg;

	cfg = config_load(path, false, &errs);
	for (size_t i = 0; i < errs.n; i++)
		log_err("%s", errs.msg[i]);
	config_errors_clear(&errs);
	if (cfg == NULL)
		fatal("%s: invalid configuration", path);
	return cfg;
}

/* One datagram: its length, 0 at end of file, -1 on error. */
static ssize_t recv_request(int fd, unsigned char *buf, size_t size,
			    bool *truncated_r)
{
	struct iovec iov = { buf, size };
	struct msghdr mh;
	ssize_t n;

	do {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		n = recvmsg(fd, &mh, 0);
	} while (n < 0 && errno == EINTR);
	*truncated_r = n > 0 && (mh.msg_flags & MSG_TRUNC) != 0;
	return n;
}

static int send_reply(int fd, const struct auth_reply *rep)
{
	unsigned char buf[AUTH_PROTO_MAX];
	struct auth_reply fallback;
	ssize_t len, n;

	len = auth_reply_encode(rep, buf, sizeof(buf));
	if (len < 0) {
		/* A bug here: still answer, with a 454, rather than leave
		 * the daemon waiting for its timeout. */
		log_err("request %u: reply does not encode", rep->id);
		memset(&fallback, 0, sizeof(fallback));
		fallback.id = rep->id;
		fallback.result = AUTH_TEMPFAIL;
		snprintf(fallback.reason, sizeof(fallback.reason),
			 "reply does not encode");
		len = auth_reply_encode(&fallback, buf, sizeof(buf));
		if (len < 0)
			return -1;
	}
	do
		n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		log_err("send reply: %s", strerror(errno));
		return -1;
	}
	if (n != len) {
		log_err("send reply: %zd of %zd octets sent", n, len);
		return -1;
	}
	return 0;
}

static void authenticate(const struct config *cfg,
			 const struct pam_backend *pb, struct ldap_backend *lb,
			 const struct auth_request *req, struct auth_reply *rep)
{
	switch (cfg->backend) {
	case AUTH_BACKEND_PAM:
		pam_backend_auth(pb, req, rep);
		return;
	case AUTH_BACKEND_LDAP:
		ldap_backend_auth(lb, req, rep);
		return;
	}
	/* Not reached: config.c knows no other backend. Never a fake
	 * success, never a 535 that blames the password. */
	rep->result = AUTH_TEMPFAIL;
	snprintf(rep->reason, sizeof(rep->reason), "unknown backend");
}

/* Returns the exit status. */
static int serve(int fd, const struct config *cfg,
		 const struct pam_backend *pb, struct ldap_backend *lb)
{
	unsigned char buf[AUTH_PROTO_MAX];
	struct auth_request req;
	struct auth_reply rep;
	bool truncated;
	ssize_t len;
	int ret;

	for (unsigned n = 0; n < cfg->worker_max_requests; n++) {
		len = recv_request(fd, buf, sizeof(buf), &truncated);
		if (len == 0) {
			log_debug("daemon closed the socket after %u "
				  "requests", n);
			return 0;
		}
		if (len < 0) {
			log_err("receive request: %s", strerror(errno));
			return 1;
		}
		if (truncated) {
			explicit_bzero(buf, sizeof(buf));
			log_err("request over %d octets", AUTH_PROTO_MAX);
			return 1;
		}
		ret = auth_request_decode(buf, (size_t)len, &req);
		explicit_bzero(buf, (size_t)len);
		if (ret < 0) {
			log_err("invalid request (%zd octets)", len);
			return 1;
		}

		memset(&rep, 0, sizeof(rep));
		rep.id = req.id;
		authenticate(cfg, pb, lb, &req, &rep);
		log_debug("request %u: user %s from %s: %s%s%s", req.id,
			  req.user, req.client_ip,
			  rep.result == AUTH_OK ? "ok" :
			  rep.result == AUTH_PERMFAIL ? "permfail" : "tempfail",
			  rep.reason[0] != '\0' ? ": " : "", rep.reason);
		explicit_bzero(&req, sizeof(req));
		if (send_reply(fd, &rep) < 0)
			return 1;
	}
	log_debug("recycled after %u requests", cfg->worker_max_requests);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "bundle-fd", required_argument, NULL, 'b' },
		{ "check", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	bool check = false;
	struct bundle *bundle = NULL;
	int bundle_fd = -1;
	struct pam_backend *pb = NULL;
	struct ldap_backend *lb = NULL;
	struct config *cfg;
	int c, ret;

	log_init("authrelay-auth");
	while ((c = getopt_long(argc, argv, "b:c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'b':
			bundle_fd = atoi(optarg);
			if (bundle_fd <= WORKER_FD) {
				usage(stderr);
				return 1;
			}
			break;
		case 'C':
			check = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc || (path == NULL) == (bundle_fd < 0)) {
		usage(stderr);
		return 1;
	}

	/* Passwords live in this process: no core dumps, no ptrace by
	 * other processes of the same user. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		log_warn("PR_SET_DUMPABLE: %s", strerror(errno));
	reset_signals();
	check_socket(WORKER_FD);
	cfg = bundle_fd >= 0 ? load_bundle(bundle_fd, &bundle) :
			       load_config(path);

	if (cfg->backend == AUTH_BACKEND_PAM)
		pb = pam_backend_new(cfg->pam_service, cfg->require_group,
				     cfg->n_require_group,
				     cfg->address_domain, cfg->send_as,
				     cfg->n_send_as, cfg);
	else if (cfg->backend == AUTH_BACKEND_LDAP) {
		lb = ldap_backend_new(cfg);
		if (bundle != NULL) {
			const unsigned char *pw = NULL;
			size_t pw_len = 0;
			char *ca = bundle_file_path(bundle, cfg->ldap_ca_file);

			if (cfg->ldap_bind_password_file != NULL &&
			    !bundle_get(bundle, cfg->ldap_bind_password_file,
					&pw, &pw_len))
				fatal("the bundle holds no %s",
				      cfg->ldap_bind_password_file);
			ldap_backend_set_secrets(lb, pw, pw_len, ca);
			free(ca);
		}
	}
	bundle_free(&bundle);
	if (check)
		ret = lb != NULL && ldap_backend_check(lb) > 0 ? 1 : 0;
	else
		ret = serve(WORKER_FD, cfg, pb, lb);
	ldap_backend_free(&lb);
	pam_backend_free(&pb);
	config_free(&cfg);
	return ret;
}
