#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "ctl.h"
#include "log.h"
#include "privsep.h"
#include "settings_load.h"
#include "supervisor.h"
#include "token_fetch.h"
#include "xalloc.h"

/* Workers alive at once, whatever the network process asks for. */
#define WORKERS_MAX 4096
/* Where an auth worker finds its socket and its bundle. */
#define WORKER_SOCK_FD 3
#define WORKER_BUNDLE_FD 4

struct worker_rec {
	unsigned id;
	pid_t pid;
};

struct supervisor {
	struct supervisor_params p;
	sd_event *event;
	pid_t net_pid;
	int ctl;
	int worker_bundle_fd;
	struct token_fetcher *tokens;
	struct worker_rec *workers;
	size_t n_workers;
	int status;		/* for main(), once the network is gone */
};

/* The config text alone, for authrelay-token. */
static int config_text_fd(const struct bundle *b)
{
	const unsigned char *text;
	const char *error = "no config text";
	size_t len;
	int fd = -1;

	if (bundle_get(b, BUNDLE_CONFIG, &text, &len)) {
		fd = memfd_create("authrelay.conf", MFD_CLOEXEC);
		if (fd >= 0 && write(fd, text, len) != (ssize_t)len) {
			close(fd);
			fd = -1;
		}
		if (fd < 0)
			error = strerror(errno);
	}
	if (fd < 0)
		log_err("oauth2: cannot pass the config on: %s", error);
	return fd;
}

static int bundle_fd(const struct bundle *b)
{
	const char *error;
	int fd = bundle_to_memfd(b, &error);

	if (fd < 0)
		log_err("cannot hand the configuration over: %s", error);
	return fd;
}

/* --- auth workers --- */

static struct worker_rec *worker_find(struct supervisor *sv, unsigned id)
{
	for (size_t i = 0; i < sv->n_workers; i++)
		if (sv->workers[i].id == id)
			return &sv->workers[i];
	return NULL;
}

static bool is_seqpacket_unix(int fd)
{
	int type = 0, domain = 0;
	socklen_t len = sizeof(type), dlen = sizeof(domain);

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
	       type == SOCK_SEQPACKET &&
	       getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 &&
	       domain == AF_UNIX;
}

/* In the child: fds 3 and 4, the worker's privileges, exec. */
static void __attribute__((noreturn))
worker_exec(const struct supervisor_params *p, int bundle_fd, pid_t parent,
	    int sock, const char *extra)
{
	const struct config *cfg = p->cfg;
	char *argv[] = { cfg->worker_path, (char *)"-b", (char *)"4",
			 (char *)extra, NULL };
	const char *error;
	sigset_t none;
	int a, b, exe;

	/* A worker never outlives its supervisor. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
	    getppid() != parent)
		_exit(1);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	a = fcntl(sock, F_DUPFD_CLOEXEC, 10);
	b = fcntl(bundle_fd, F_DUPFD_CLOEXEC, 10);
	if (a < 0 || b < 0 || dup2(a, WORKER_SOCK_FD) < 0 ||
	    dup2(b, WORKER_BUNDLE_FD) < 0)
		_exit(1);
	/* The program is opened while still root, so that a worker that
	 * drops privileges runs it wherever it lies (a directory only root
	 * may search, say): permission to execute is then checked on the
	 * file alone. */
	exe = open(cfg->worker_path, O_PATH | O_CLOEXEC);
	if (exe < 0) {
		log_err("cannot start auth worker %s: %s", cfg->worker_path,
			strerror(errno));
		_exit(127);
	}
	/* With LDAP the worker needs no privilege: the bind secret is in
	 * its bundle. PAM modules may need root (pam_unix and
	 * /etc/shadow), so PAM workers keep it. */
	if (cfg->backend == AUTH_BACKEND_LDAP && p->drop &&
	    privsep_drop(p->uid, p->gid, &error) < 0) {
		log_err("auth worker: cannot drop privileges: %s: %s", error,
			strerror(errno));
		_exit(1);
	}
	fexecve(exe, argv, environ);
	/* A script cannot be run from a close-on-exec descriptor: its
	 * interpreter would find the descriptor gone. */
	if (errno == ENOENT)
		execv(cfg->worker_path, argv);
	log_err("cannot start auth worker %s: %s", cfg->worker_path,
		strerror(errno));
	_exit(127);
}

pid_t supervisor_worker_start(const struct supervisor_params *p, int sock,
			      int bundle_fd, const char *extra)
{
	pid_t pid, self = getpid();

	pid = fork();
	if (pid == 0)
		worker_exec(p, bundle_fd, self, sock, extra);
	return pid;
}

static void worker_spawn(struct supervisor *sv, unsigned id, int sock)
{
	pid_t pid;

	if (!is_seqpacket_unix(sock)) {
		log_err("network process: SPAWN %u without a worker socket", id);
		return;
	}
	if (worker_find(sv, id) != NULL || sv->n_workers >= WORKERS_MAX) {
		log_err("network process: SPAWN %u refused (%s)", id,
			sv->n_workers >= WORKERS_MAX ? "too many workers" :
			"id in use");
		return;
	}
	pid = supervisor_worker_start(&sv->p, sock, sv->worker_bundle_fd,
				      NULL);
	if (pid < 0) {
		log_err("cannot fork an auth worker: %s", strerror(errno));
		return;
	}
	sv->workers = xreallocarray(sv->workers, sv->n_workers + 1,
				    sizeof(*sv->workers));
	sv->workers[sv->n_workers].id = id;
	sv->workers[sv->n_workers].pid = pid;
	sv->n_workers++;
	log_debug("auth worker %u started as pid %ld", id, (long)pid);
}

static void worker_kill(struct supervisor *sv, unsigned id)
{
	struct worker_rec *w = worker_find(sv, id);

	/* Gone already (it exited, or was killed before): nothing to do. */
	if (w != NULL)
		(void)kill(w->pid, SIGKILL);
}

static void workers_kill_all(struct supervisor *sv)
{
	for (size_t i = 0; i < sv->n_workers; i++)
		(void)kill(sv->workers[i].pid, SIGKILL);
}

/* --- OAuth2 tokens (token_fetch.h) --- */

static void tokens_configure(struct supervisor *sv, const struct bundle *b)
{
	int fd = config_text_fd(b);

	token_fetcher_configure(sv->tokens, sv->p.cfg, fd);
	if (fd >= 0)
		close(fd);
}

/* --- reload --- */

static void reload(struct supervisor *sv)
{
	struct config_errors errs = { NULL, 0 };
	struct bundle *net = NULL, *worker = NULL;
	struct config *cfg = NULL;
	int wfd, nfd;

	sd_notify(0, "RELOADING=1");
	log_notice("reloading %s", sv->p.config_path);
	if (settings_read(sv->p.config_path, &net, &worker, &cfg, &errs) < 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_err("%s", errs.msg[i]);
		log_err("reload failed: keeping the running configuration");
		goto failed;
	}
	if (strcmp(cfg->run_user, sv->p.cfg->run_user) != 0)
		log_warn("[server] user changed: it takes effect at the next "
			 "restart");
	wfd = bundle_fd(worker);
	nfd = wfd >= 0 ? bundle_fd(net) : -1;
	if (nfd < 0 || ctl_send(sv->ctl, nfd, "SETTINGS") < 0) {
		if (nfd >= 0)
			log_err("cannot hand the configuration over: %s",
				strerror(errno));
		if (wfd >= 0)
			close(wfd);
		if (nfd >= 0)
			close(nfd);
		log_err("reload failed: keeping the running configuration");
		goto failed;
	}
	close(nfd);
	/* Workers started from now on read the new config. */
	close(sv->worker_bundle_fd);
	sv->worker_bundle_fd = wfd;
	config_free(&sv->p.cfg);
	sv->p.cfg = cfg;
	cfg = NULL;
	tokens_configure(sv, worker);
	bundle_free(&net);
	bundle_free(&worker);
	config_errors_clear(&errs);
	return;		/* READY=1 comes from the network process */
failed:
	bundle_free(&net);
	bundle_free(&worker);
	config_free(&cfg);
	config_errors_clear(&errs);
	if (ctl_send(sv->ctl, -1, "RELOAD-FAILED") < 0)
		sd_notify(0, "READY=1");
}

/* --- messages from the network process --- */

static void handle_message(struct supervisor *sv, const char *msg, int fd)
{
	unsigned id;

	if (ctl_parse_id(msg, "SPAWN", &id) && fd >= 0) {
		worker_spawn(sv, id, fd);
	} else if (ctl_parse_id(msg, "KILL", &id) && fd < 0) {
		worker_kill(sv, id);
	} else if (strncmp(msg, "NOTIFY ", 7) == 0 && fd < 0 &&
		   ctl_notify_allowed(msg + 7)) {
		sd_notify(0, msg + 7);
	} else if (strcmp(msg, "RELOAD") == 0 && fd < 0) {
		reload(sv);
	} else if (strncmp(msg, "TOKEN-REQUEST ", 14) == 0 && fd < 0) {
		token_fetcher_request(sv->tokens, msg + 14);
	} else {
		log_err("network process: unexpected message (%zu octets) "
			"ignored", strlen(msg));
	}
	if (fd >= 0)
		close(fd);
}

static int on_ctl(sd_event_source *src, int fd, uint32_t revents, void *ud)
{
	struct supervisor *sv = ud;
	char msg[CTL_MSG_MAX + 1];
	int passed;

	/* A bounded batch per turn: signals are served in between. */
	for (int i = 0; i < 64; i++) {
		ssize_t n = ctl_recv(fd, msg, sizeof(msg), &passed);

		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0 && errno == EPROTO) {
			log_err("network process: malformed message ignored");
			continue;
		}
		if (n <= 0) {
			sd_event_source_set_enabled(src, SD_EVENT_OFF);
			if (sv->net_pid == 0) {
				/* Not our child: the connection is all we
				 * know of it. */
				log_debug("network process disconnected");
				workers_kill_all(sv);
				sd_event_exit(sv->event, 0);
			}
			/* Our child is exiting; SIGCHLD tells the rest. */
			return 0;
		}
		handle_message(sv, msg, passed);
	}
	return 0;
}

/* --- signals --- */

static int on_sigchld(sd_event_source *src, const struct signalfd_siginfo *si,
		      void *ud)
{
	struct supervisor *sv = ud;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == sv->net_pid) {
			if (WIFEXITED(status)) {
				sv->status = WEXITSTATUS(status);
				if (sv->status != 0)
					log_err("network process exited with "
						"status %d", sv->status);
			} else {
				sv->status = 1;
				log_err("network process killed by signal %d",
					WIFSIGNALED(status) ?
					WTERMSIG(status) : 0);
			}
			sv->net_pid = 0;
			workers_kill_all(sv);
			sd_event_exit(sv->event, 0);
			continue;
		}
		for (size_t i = 0; i < sv->n_workers; i++) {
			if (sv->workers[i].pid == pid) {
				log_debug("auth worker %u (pid %ld) ended",
					  sv->workers[i].id, (long)pid);
				sv->workers[i] =
					sv->workers[--sv->n_workers];
				break;
			}
		}
	}
	return 0;
}

static int on_sigterm(sd_event_source *src, const struct signalfd_siginfo *si,
		      void *ud)
{
	struct supervisor *sv = ud;

	if (sv->net_pid > 0) {
		(void)kill(sv->net_pid, SIGTERM);
	} else {
		workers_kill_all(sv);
		sd_event_exit(sv->event, 0);
	}
	return 0;
}

static int on_sighup(sd_event_source *src, const struct signalfd_siginfo *si,
		     void *ud)
{
	reload(ud);
	return 0;
}

int supervisor_run(pid_t net_pid, int ctl, struct supervisor_params *p)
{
	struct supervisor sv = { .p = *p, .net_pid = net_pid, .ctl = ctl };
	int r;

	sv.worker_bundle_fd = bundle_fd(p->worker_bundle);
	if (sv.worker_bundle_fd < 0) {
		bundle_free(&p->worker_bundle);
		(void)kill(net_pid, SIGKILL);
		return 1;
	}
	r = sd_event_new(&sv.event);
	if (r >= 0) {
		sv.tokens = token_fetcher_new(sv.event, ctl);
		tokens_configure(&sv, p->worker_bundle);
	}
	bundle_free(&p->worker_bundle);
	sv.p.worker_bundle = NULL;
	if (r < 0 ||
	    sd_event_add_signal(sv.event, NULL, SIGCHLD, on_sigchld, &sv) < 0 ||
	    sd_event_add_signal(sv.event, NULL, SIGTERM, on_sigterm, &sv) < 0 ||
	    sd_event_add_signal(sv.event, NULL, SIGINT, on_sigterm, &sv) < 0 ||
	    sd_event_add_signal(sv.event, NULL, SIGHUP, on_sighup, &sv) < 0 ||
	    sd_event_add_io(sv.event, NULL, ctl, EPOLLIN, on_ctl, &sv) < 0) {
		log_err("supervisor: cannot set up the event loop");
		(void)kill(net_pid, SIGKILL);
		return 1;
	}
	/* The network process may have died before the loop started. */
	if (net_pid > 0)
		on_sigchld(NULL, NULL, &sv);
	if (net_pid == 0 || sv.net_pid > 0)
		sd_event_loop(sv.event);
	token_fetcher_free(&sv.tokens);
	sd_event_unref(sv.event);
	close(ctl);
	close(sv.worker_bundle_fd);
	free(sv.workers);
	config_free(&sv.p.cfg);
	return sv.status;
}
