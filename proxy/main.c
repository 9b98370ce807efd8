#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <systemd/sd-journal.h>

#include "config.h"
#include "config_check.h"
#include "auth_cache.h"
#include "autoconfig.h"
#include "bundle.h"
#include "ctl.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "relay.h"
#include "preflight.h"
#include "privsep.h"
#include "relay_token.h"
#include "server.h"
#include "settings_load.h"
#include "supervisor.h"
#include "xalloc.h"

#define STATUS_INTERVAL_USEC (5 * USEC_PER_SEC)
/* How long the network process waits for its first settings. */
#define SUPERVISOR_WAIT_MS (60 * 1000)

/* Long options without a short form. */
enum { OPT_CHECK = 256, OPT_CHECK_USER, OPT_FROM, OPT_AUTOCONFIG, OPT_DOMAIN,
       OPT_IMAP, OPT_LOGIN };

static const char *config_path = DEFAULT_CONFIG_PATH;
static uint64_t watchdog_usec;
static sd_event_source *ctl_src;
static struct listener *listeners;
static size_t n_listeners;
static struct metrics_http *metrics_http;
static unsigned n_threads;
static unsigned threads_done;
static bool stopping;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: authrelay [-c FILE] [-t] [-d] [-V] [-h]\n"
		"SMTP submission proxy: TLS, SMTP AUTH through PAM or LDAP, relay\n"
		"to a smarthost.\n\n"
		"  -c, --config FILE    configuration file (default %s)\n"
		"  -t, --check-config   check the configuration and exit\n"
		"      --check [--check-user NAME [--from ADDRESS]]\n"
		"                       pre-flight: contact what the configuration\n"
		"                       names (certificates, smarthosts, directory,\n"
		"                       PAM; a login with the password on standard\n"
		"                       input), one ok/warn/FAIL line per check\n"
		"      --autoconfig DIR --domain DOMAIN [--imap HOST[:PORT]]\n"
		"                       [--login address|localpart]\n"
		"                       write mail client autoconfiguration files\n"
		"  -d, --debug          log debug messages\n"
		"      --supervisor     serve one network process connected on\n"
		"                       fd 3 (authrelay-supervisor@.service)\n"
		"      --supervisor-socket PATH\n"
		"                       run as the network process only, with\n"
		"                       the supervisor at PATH (authrelay.service)\n"
		"  -V, --version        print the version and exit\n"
		"  -h, --help           print this help and exit\n",
		DEFAULT_CONFIG_PATH);
}

static void journal_sink(enum log_level level, const char *msg)
{
	sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", (int)level,
			"SYSLOG_IDENTIFIER=authrelay", NULL);
}

static void print_errors(struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		fprintf(stderr, "%s\n", errs->msg[i]);
}

static void log_errors(struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		log_err("%s", errs->msg[i]);
}

static void notify_status(void)
{
	ctl_notifyf("STATUS=%lu session(s), %lu served; auth %lu ok, "
		   "%lu failed, %lu temporary failures",
		   atomic_load(&stats.sessions_active),
		   atomic_load(&stats.sessions_total),
		   atomic_load(&stats.auth_ok),
		   atomic_load(&stats.auth_failed),
		   atomic_load(&stats.auth_tempfail));
}

static int on_status_timer(sd_event_source *src, uint64_t usec, void *ud)
{
	notify_status();
	sd_event_source_set_time_relative(src, STATUS_INTERVAL_USEC);
	sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
	return 0;
}

static bool listen_changed(const struct config *a, const struct config *b)
{
	if (a->n_listen != b->n_listen)
		return true;
	for (size_t i = 0; i < a->n_listen; i++)
		if (strcmp(a->listen[i].host, b->listen[i].host) != 0 ||
		    strcmp(a->listen[i].port, b->listen[i].port) != 0 ||
		    a->listen[i].mode != b->listen[i].mode)
			return true;
	/* [server] metrics_listen: NULL host when off. */
	if ((a->metrics_listen.host == NULL) !=
	    (b->metrics_listen.host == NULL))
		return true;
	return a->metrics_listen.host != NULL &&
	       (strcmp(a->metrics_listen.host, b->metrics_listen.host) != 0 ||
		strcmp(a->metrics_listen.port, b->metrics_listen.port) != 0);
}

/* New settings from the supervisor (after SIGHUP): new sessions use
 * them; sessions in progress keep theirs. */
static void apply_settings(int fd)
{
	struct config_errors errs = { 0 };
	struct settings *st, *old;
	struct bundle *b;
	const char *error;

	b = bundle_from_fd(fd, &error);
	if (b == NULL) {
		log_err("reload: the supervisor sent no settings: %s", error);
		ctl_notify("READY=1");
		return;
	}
	st = settings_from_bundle(b, &errs);
	bundle_free(&b);
	if (st == NULL) {
		log_errors(&errs);
		log_err("reload failed: keeping the running configuration");
	} else {
		old = settings_get();
		if (listen_changed(old->cfg, st->cfg))
			log_warn("listen entries changed: they take effect at "
				 "the next restart");
		settings_put(&old);
		settings_publish(st);
		/* Groups, backends or the directory may have changed. */
		auth_cache_clear();
		servers_reload();
		log_notice("configuration reloaded");
	}
	config_errors_clear(&errs);
	ctl_notify("READY=1");
	notify_status();
}

static void stop(void)
{
	if (stopping)
		return;
	stopping = true;
	log_notice("stopping: finishing sessions in progress");
	ctl_notify("STOPPING=1");
	servers_stop();
}

/* "<mailbox> <expires_in> <token>" from the supervisor. */
static void take_token(char *args)
{
	char *mailbox = args, *secs, *token, *end;
	unsigned long v;
	uint64_t now = 0;

	secs = strchr(mailbox, ' ');
	token = secs != NULL ? strchr(secs + 1, ' ') : NULL;
	if (token == NULL) {
		log_err("supervisor: malformed token message ignored");
		return;
	}
	*secs++ = '\0';
	*token++ = '\0';
	errno = 0;
	v = strtoul(secs, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > 7 * 86400) {
		log_err("supervisor: malformed token message ignored");
		return;
	}
	sd_event_now(sd_event_source_get_event(ctl_src), CLOCK_MONOTONIC,
		     &now);
	if (relay_token_set(mailbox, token, now + v * USEC_PER_SEC) < 0)
		log_err("supervisor: token for %s not taken", mailbox);
}

/* relay_token.h: a miss, or a token the smarthost refused. */
static void request_token(const char *mailbox, void *ctx)
{
	if (ctl_send(ctl_client_fd(), -1, "TOKEN-REQUEST %s", mailbox) < 0)
		log_err("cannot ask the supervisor for a token for %s: %s",
			mailbox, strerror(errno));
}

static int on_ctl(sd_event_source *src, int fd, uint32_t revents, void *ud)
{
	char msg[CTL_MSG_MAX + 1];
	int passed;
	ssize_t n;

	n = ctl_recv(fd, msg, sizeof(msg), &passed);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n > 0 && strcmp(msg, "SETTINGS") == 0 && passed >= 0) {
		apply_settings(passed);
		close(passed);
		return 0;
	}
	if (n > 0 && strcmp(msg, "RELOAD-FAILED") == 0 && passed < 0) {
		ctl_notify("READY=1");
		return 0;
	}
	if (n > 0 && strncmp(msg, "TOKEN ", 6) == 0 && passed < 0) {
		take_token(msg + 6);
		explicit_bzero(msg, (size_t)n);
		return 0;
	}
	if (passed >= 0)
		close(passed);
	if (n > 0 || (n < 0 && errno == EPROTO)) {
		log_err("supervisor: unexpected message ignored");
		return 0;
	}
	/* The supervisor is gone: nobody can start workers any more. */
	log_err("the supervisor has gone: stopping");
	sd_event_source_set_enabled(src, SD_EVENT_OFF);
	ctl_client_set(-1, false);
	stop();
	return 0;
}

static int on_sighup(sd_event_source *src, const struct signalfd_siginfo *si,
		     void *ud)
{
	/* Reloading is the supervisor's: it reads the files. */
	ctl_notify("RELOADING=1");
	if (ctl_send(ctl_client_fd(), -1, "RELOAD") < 0)
		log_err("cannot ask the supervisor to reload: %s",
			strerror(errno));
	return 0;
}

static int on_sigterm(sd_event_source *src, const struct signalfd_siginfo *si,
		      void *ud)
{
	stop();
	return 0;
}

static int on_watchdog(sd_event_source *src, uint64_t usec, void *ud)
{
	if (servers_alive())
		ctl_notify("WATCHDOG=1");
	else
		log_err("a serving thread has stopped turning: no WATCHDOG=1");
	sd_event_source_set_time_relative(src, watchdog_usec / 2);
	sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
	return 0;
}

static int on_thread_done(sd_event_source *src, int fd, uint32_t revents,
			  void *ud)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) == sizeof(v))
		threads_done += (unsigned)v;
	if (threads_done >= n_threads)
		sd_event_exit(sd_event_source_get_event(src), 0);
	return 0;
}

static void log_listeners(bool activated)
{
	for (size_t i = 0; i < n_listeners; i++)
		log_info("listening on %s (%s)%s", listeners[i].name,
			 listeners[i].mode == LISTEN_TLS ? "implicit TLS"
			 : "STARTTLS", activated ? ", passed by systemd" : "");
}

/* Give up every privilege this process may hold (all of them when
 * started as root: uid and gid become the service user's), then install
 * the system call filter. Before a byte from a client is read. */
static void network_drop_privileges(uid_t uid, gid_t gid, bool switch_user)
{
	const char *error;

	if (privsep_drop(switch_user ? uid : getuid(),
			 switch_user ? gid : getgid(), &error) < 0)
		fatal("cannot drop privileges: %s: %s", error,
		      strerror(errno));
#ifdef SANITIZED_BUILD
	/* LeakSanitizer attaches to this process with ptrace. */
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	if (privsep_seccomp(&error) < 0)
		fatal("cannot install the system call filter: %s", error);
}

/* [server] metrics_listen: opened here, by the network process on its
 * main loop (metrics_http.h), never by the supervisor. */
static void start_metrics(sd_event *event)
{
	struct settings *st = settings_get();
	const struct config_hostport *ml = &st->cfg->metrics_listen;
	const char *error;

	if (ml->host != NULL) {
		metrics_http = metrics_http_new(event, ml->host, ml->port,
						&error);
		if (metrics_http == NULL)
			fatal("%s:%u: metrics_listen %s:%s: %s", st->cfg->path,
			      ml->line, ml->host, ml->port, error);
		log_info("metrics on http://%s%s%s:%s/metrics",
			 strchr(ml->host, ':') ? "[" : "", ml->host,
			 strchr(ml->host, ':') ? "]" : "", ml->port);
	}
	settings_put(&st);
}

/* The network process, privileges gone: load the settings it was handed,
 * open the listeners unless the supervisor did, serve. relay_notify: see
 * ctl_client_set(). Returns the exit status. */
static int network_main(int ctl, struct bundle *net, bool relay_notify)
{
	struct config_errors errs = { 0 };
	sd_event *event = NULL;
	sd_event_source *status_src = NULL;
	struct settings *st;
	bool activated = false;
	sigset_t chld;
	int done_fd, r;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &chld, NULL);
	ctl_client_set(ctl, relay_notify);

	st = settings_from_bundle(net, &errs);
	bundle_free(&net);
	if (st == NULL) {
		log_errors(&errs);
		fatal("invalid configuration, not starting");
	}
	settings_publish(st);
	if (listeners == NULL) {
		st = settings_get();
		r = listeners_open(st->cfg, &listeners, &n_listeners,
				   &activated, &errs);
		settings_put(&st);
		if (r < 0) {
			log_errors(&errs);
			fatal("cannot open listeners");
		}
		log_listeners(activated);
	}
	if (auth_cache_init() < 0)
		log_warn("no randomness for the credential cache key: "
			 "cache disabled");
	for (size_t i = 0; i < n_listeners; i++)
		metrics_listener(listeners[i].name);

	st = settings_get();
	n_threads = st->cfg->threads;
	if (n_threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		n_threads = n > 0 ? (unsigned)n : 1;
	}
	settings_put(&st);

	r = sd_event_default(&event);
	if (r < 0)
		fatal("event loop: %s", strerror(-r));
	done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (done_fd < 0)
		fatal("eventfd: %s", strerror(errno));
	if (sd_event_add_signal(event, NULL, SIGTERM, on_sigterm, NULL) < 0 ||
	    sd_event_add_signal(event, NULL, SIGINT, on_sigterm, NULL) < 0 ||
	    sd_event_add_signal(event, NULL, SIGHUP, on_sighup, NULL) < 0 ||
	    sd_event_add_io(event, &ctl_src, ctl, EPOLLIN, on_ctl, NULL) < 0 ||
	    sd_event_add_io(event, NULL, done_fd, EPOLLIN, on_thread_done,
			    NULL) < 0 ||
	    sd_event_add_time_relative(event, &status_src, CLOCK_MONOTONIC,
				       STATUS_INTERVAL_USEC, 0,
				       on_status_timer, NULL) < 0)
		fatal("cannot set up the event loop");
	/* WATCHDOG=1 at half of WatchdogSec=, when the unit sets it, and
	 * only while every serving loop turns (servers_alive). */
	if (watchdog_usec > 0 &&
	    sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC,
				       watchdog_usec / 2, 0, on_watchdog,
				       NULL) < 0)
		fatal("cannot set up the watchdog");

	start_metrics(event);
	relay_token_set_request_hook(request_token, NULL);
	if (servers_start(n_threads, listeners, n_listeners, done_fd) < 0)
		fatal("cannot start serving threads");
	log_notice("authrelay %s ready, %u thread(s), running as uid %ld",
		   PACKAGE_VERSION, n_threads, (long)getuid());
	ctl_notify("READY=1");
	notify_status();

	r = sd_event_loop(event);
	metrics_http_free(&metrics_http);
	servers_join();
	listeners_close(&listeners, n_listeners);
	sd_event_source_unref(status_src);
	sd_event_unref(event);
	close(done_fd);
	st = settings_get();
	settings_put(&st);
	settings_publish(NULL);
	relay_token_set_request_hook(NULL, NULL);
	relay_token_clear();
	log_notice("stopped");
	return r < 0 ? 1 : 0;
}

static void read_settings(struct supervisor_params *sp, struct bundle **net_r)
{
	struct config_errors errs = { 0 };

	if (settings_read(config_path, net_r, &sp->worker_bundle, &sp->cfg,
			  &errs) < 0) {
		log_errors(&errs);
		fatal("invalid configuration, not starting");
	}
	config_errors_clear(&errs);
	sp->config_path = config_path;
	sp->drop = geteuid() == 0;
	if (sp->drop) {
		const char *error;

		if (privsep_user_lookup(sp->cfg->run_user, &sp->uid, &sp->gid,
					&error) < 0)
			fatal("[server] user %s: %s", sp->cfg->run_user, error);
	}
}

static void block_signals(void)
{
	sigset_t mask;

	/* Served through sd-event; workers get the defaults back before
	 * exec. Writes to a closed peer are errors, not signals. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
}

/* authrelay: the supervisor forks the network process (one service, or
 * no systemd at all). */
static int run_forked(int argc, char **argv)
{
	struct config_errors errs = { 0 };
	struct supervisor_params sp = { 0 };
	struct bundle *net = NULL;
	bool activated = false;
	int ctl[2];
	pid_t pid;

	read_settings(&sp, &net);
	if (!sp.drop)
		log_notice("not started as root: every process runs as uid "
			   "%ld", (long)getuid());
	block_signals();
	if (listeners_open(sp.cfg, &listeners, &n_listeners, &activated,
			   &errs) < 0) {
		log_errors(&errs);
		fatal("cannot open listeners");
	}
	log_listeners(activated);
	/* Only the supervisor may talk to systemd's watchdog (MAINPID):
	 * the network process sends WATCHDOG=1 through it. */
	if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
		watchdog_usec = 0;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
		fatal("control socketpair: %s", strerror(errno));
	proctitle_init(argc, argv);
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		close(ctl[0]);
		proctitle_set("authrelay: network");
		/* Stop when the supervisor goes (it spawns our workers). */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 ||
		    getppid() == 1)
			fatal("the supervisor has gone");
		network_drop_privileges(sp.uid, sp.gid, sp.drop);
		/* The kernel cleared it on the credential change. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
			fatal("PR_SET_PDEATHSIG: %s", strerror(errno));
		/* Not this process's: the bind secret and the rest. */
		bundle_free(&sp.worker_bundle);
		config_free(&sp.cfg);
		return network_main(ctl[1], net, true);
	}
	close(ctl[1]);
	proctitle_set("authrelay: supervisor");
	bundle_free(&net);
	listeners_close(&listeners, n_listeners);
	return supervisor_run(pid, ctl[0], &sp);
}

/* authrelay --supervisor: one network process's supervisor, started by
 * authrelay-supervisor@.service with the network process's connection
 * (authrelay-supervisor.socket, Accept=yes) as fd 3. */
static int run_supervisor(void)
{
	struct supervisor_params sp = { 0 };
	struct bundle *net = NULL;
	const char *error;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd, nfd;

	if (sd_listen_fds(1) != 1)
		fatal("--supervisor: no connection passed (LISTEN_FDS)");
	fd = SD_LISTEN_FDS_START;
	if (sd_is_socket(fd, AF_UNIX, SOCK_SEQPACKET, 0) <= 0)
		fatal("--supervisor: fd %d is not a connected AF_UNIX "
		      "SOCK_SEQPACKET socket", fd);
	read_settings(&sp, &net);
	/* Only the service user (or root) gets secrets and workers. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		fatal("--supervisor: SO_PEERCRED: %s", strerror(errno));
	if (cred.uid != 0 && (!sp.drop || cred.uid != sp.uid))
		fatal("--supervisor: refusing a peer with uid %ld (want %s)",
		      (long)cred.uid, sp.cfg->run_user);
	block_signals();
	nfd = bundle_to_memfd(net, &error);
	bundle_free(&net);
	if (nfd < 0)
		fatal("cannot hand the configuration over: %s", error);
	if (ctl_send(fd, nfd, "SETTINGS") < 0)
		fatal("cannot hand the configuration over: %s",
		      strerror(errno));
	close(nfd);
	return supervisor_run(0, fd, &sp);
}

/* authrelay --supervisor-socket PATH: the network process alone, as
 * authrelay.service (User=authrelay): settings and workers come from the
 * supervisor at PATH. */
static int run_network(const char *path)
{
	char msg[CTL_MSG_MAX + 1];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pollfd pfd;
	struct bundle *net;
	const char *error;
	int fd, passed = -1;
	ssize_t n;

	if (strlen(path) >= sizeof(sa.sun_path))
		fatal("--supervisor-socket: path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	block_signals();
	if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
		watchdog_usec = 0;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fatal("cannot reach the supervisor at %s: %s", path,
		      strerror(errno));
	network_drop_privileges(0, 0, false);
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, SUPERVISOR_WAIT_MS) != 1)
		fatal("the supervisor at %s sent no configuration", path);
	n = ctl_recv(fd, msg, sizeof(msg), &passed);
	if (n <= 0 || strcmp(msg, "SETTINGS") != 0 || passed < 0)
		fatal("the supervisor at %s sent no configuration%s", path,
		      n == 0 ? " (it closed the connection: see its log)" :
		      "");
	net = bundle_from_fd(passed, &error);
	close(passed);
	if (net == NULL)
		fatal("the supervisor's configuration: %s", error);
	return network_main(fd, net, false);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 't' },
		{ "debug", no_argument, NULL, 'd' },
		{ "supervisor", no_argument, NULL, 'S' },
		{ "supervisor-socket", required_argument, NULL, 's' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "check-user", required_argument, NULL, OPT_CHECK_USER },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "autoconfig", required_argument, NULL, OPT_AUTOCONFIG },
		{ "domain", required_argument, NULL, OPT_DOMAIN },
		{ "imap", required_argument, NULL, OPT_IMAP },
		{ "login", required_argument, NULL, OPT_LOGIN },
		{ NULL, 0, NULL, 0 },
	};
	struct preflight_opts po = { 0 };
	struct autoconfig_opts ao = { 0 };
	bool preflight = false;
	struct config_errors errs = { 0 };
	struct supervisor_params sp = { 0 };
	struct bundle *net = NULL;
	const char *supervisor_socket = NULL;
	bool check_only = false, supervisor = false;
	int c;

	while ((c = getopt_long(argc, argv, "c:tdVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'd':
			log_set_debug(true);
			break;
		case 'S':
			supervisor = true;
			break;
		case 's':
			supervisor_socket = optarg;
			break;
		case OPT_CHECK:
			preflight = true;
			break;
		case OPT_CHECK_USER:
			po.check_user = optarg;
			break;
		case OPT_FROM:
			po.from = optarg;
			break;
		case OPT_AUTOCONFIG:
			ao.dir = optarg;
			break;
		case OPT_DOMAIN:
			ao.domain = optarg;
			break;
		case OPT_IMAP:
			ao.imap = optarg;
			break;
		case OPT_LOGIN:
			if (strcmp(optarg, "address") == 0)
				ao.login = AUTOCONFIG_LOGIN_ADDRESS;
			else if (strcmp(optarg, "localpart") == 0)
				ao.login = AUTOCONFIG_LOGIN_LOCALPART;
			else {
				fprintf(stderr, "authrelay: --login: want "
					"address or localpart\n");
				return 1;
			}
			break;
		case 'V':
			printf("authrelay %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "authrelay: unexpected argument: %s\n",
			argv[optind]);
		usage(stderr);
		return 1;
	}
	if ((check_only ? 1 : 0) + (supervisor ? 1 : 0) +
	    (supervisor_socket != NULL ? 1 : 0) + (preflight ? 1 : 0) +
	    (ao.dir != NULL ? 1 : 0) > 1) {
		fprintf(stderr, "authrelay: -t, --check, --autoconfig, "
			"--supervisor and --supervisor-socket exclude each "
			"other\n");
		return 1;
	}
	if ((!preflight && (po.check_user != NULL || po.from != NULL)) ||
	    (po.from != NULL && po.check_user == NULL)) {
		fprintf(stderr, "authrelay: --check-user goes with --check, "
			"--from with --check-user\n");
		return 1;
	}
	if ((ao.dir == NULL) != (ao.domain == NULL) ||
	    (ao.dir == NULL && (ao.imap != NULL || ao.login != 0))) {
		fprintf(stderr, "authrelay: --autoconfig DIR and --domain "
			"DOMAIN go together (--imap and --login with them)\n");
		return 1;
	}
	log_init("authrelay");
	log_set_journal_sink(journal_sink);
	/* The process title overwrites argv. */
	config_path = xstrdup(config_path);

	if (preflight) {
		po.config_path = config_path;
		return preflight_run(&po);
	}
	if (ao.dir != NULL) {
		ao.config_path = config_path;
		return autoconfig_run(&ao);
	}
	if (check_only) {
		struct config_errors problems = { 0 };
		int r = settings_read(config_path, &net, &sp.worker_bundle,
				      &sp.cfg, &errs);
		size_t n = r < 0 ? 0 :
			   config_check_semantics(sp.cfg, &problems, &errs);

		print_errors(&errs);	/* errors, or warnings */
		print_errors(&problems);
		if (r == 0 && n == 0) {
			config_describe_relay(sp.cfg, stdout);
			printf("%s: configuration is valid\n", config_path);
		}
		config_errors_clear(&errs);
		config_errors_clear(&problems);
		bundle_free(&net);
		bundle_free(&sp.worker_bundle);
		config_free(&sp.cfg);
		return r < 0 || n > 0 ? 1 : 0;
	}
	if (supervisor)
		return run_supervisor();
	if (supervisor_socket != NULL)
		return run_network(supervisor_socket);
	return run_forked(argc, argv);
}
