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
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <systemd/sd-journal.h>

#include "config.h"
#include "auth_cache.h"
#include "bundle.h"
#include "ctl.h"
#include "listen.h"
#include "log.h"
#include "relay.h"
#include "privsep.h"
#include "server.h"
#include "settings_load.h"
#include "supervisor.h"
#include "xalloc.h"

#define STATUS_INTERVAL_USEC (5 * USEC_PER_SEC)

static const char *config_path = DEFAULT_CONFIG_PATH;
static uint64_t watchdog_usec;
static struct listener *listeners;
static size_t n_listeners;
static unsigned n_threads;
static unsigned threads_done;
static bool stopping;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: authrelay [-c FILE] [-t] [-V] [-h]\n"
		"SMTP submission proxy: TLS, SMTP AUTH through PAM or LDAP, relay\n"
		"to a smarthost.\n\n"
		"  -c, --config FILE    configuration file (default %s)\n"
		"  -t, --check-config   check the configuration and exit\n"
		"  -d, --debug          log debug messages\n"
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
	return false;
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
	if (passed >= 0)
		close(passed);
	if (n > 0 || (n < 0 && errno == EPROTO)) {
		log_err("supervisor: unexpected message ignored");
		return 0;
	}
	/* The supervisor is gone: nobody can start workers any more. */
	log_err("the supervisor has gone: stopping");
	sd_event_source_set_enabled(src, SD_EVENT_OFF);
	ctl_client_set(-1);
	stop();
	return 0;
}

static int on_sighup(sd_event_source *src, const struct signalfd_siginfo *si,
		     void *ud)
{
	/* Reloading is the supervisor's: it reads the files. */
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

/* The network process, from the fork on: give up every privilege, then
 * serve. Returns the exit status. */
static int network_main(int ctl, struct bundle *net, uid_t uid, gid_t gid,
			bool drop)
{
	struct config_errors errs = { 0 };
	sd_event *event = NULL;
	sd_event_source *status_src = NULL;
	struct settings *st;
	const char *error;
	sigset_t chld;
	int done_fd, r;

	/* Stop when the supervisor goes (it reaps and spawns for us). */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 || getppid() == 1)
		fatal("the supervisor has gone");
	if (drop) {
		if (privsep_drop(uid, gid, &error) < 0)
			fatal("cannot drop privileges: %s: %s", error,
			      strerror(errno));
		/* The kernel clears it on the credential change. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
			fatal("PR_SET_PDEATHSIG: %s", strerror(errno));
#ifdef SANITIZED_BUILD
		/* LeakSanitizer attaches to this process with ptrace. */
		(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	} else if (privsep_drop(getuid(), getgid(), &error) < 0) {
		fatal("cannot drop capabilities: %s: %s", error,
		      strerror(errno));
	}
	if (privsep_seccomp(&error) < 0)
		fatal("cannot install the system call filter: %s", error);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &chld, NULL);
	ctl_client_set(ctl);

	st = settings_from_bundle(net, &errs);
	bundle_free(&net);
	if (st == NULL) {
		log_errors(&errs);
		fatal("invalid configuration, not starting");
	}
	settings_publish(st);
	if (auth_cache_init() < 0)
		log_warn("no randomness for the credential cache key: "
			 "cache disabled");

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
	    sd_event_add_io(event, NULL, ctl, EPOLLIN, on_ctl, NULL) < 0 ||
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

	if (servers_start(n_threads, listeners, n_listeners, done_fd) < 0)
		fatal("cannot start serving threads");
	log_notice("authrelay %s ready, %u thread(s), running as uid %ld",
		   PACKAGE_VERSION, n_threads, (long)getuid());
	ctl_notify("READY=1");
	notify_status();

	r = sd_event_loop(event);
	servers_join();
	listeners_close(&listeners, n_listeners);
	sd_event_source_unref(status_src);
	sd_event_unref(event);
	close(done_fd);
	st = settings_get();
	settings_put(&st);
	settings_publish(NULL);
	log_notice("stopped");
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 't' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config_errors errs = { 0 };
	struct supervisor_params sp = { 0 };
	struct bundle *net = NULL;
	bool check_only = false, activated = false;
	const char *error;
	sigset_t mask;
	int c, ctl[2];
	pid_t pid;

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
	log_init("authrelay");
	log_set_journal_sink(journal_sink);
	/* The process title below overwrites argv. */
	config_path = xstrdup(config_path);

	if (settings_read(config_path, &net, &sp.worker_bundle, &sp.cfg,
			  &errs) < 0) {
		if (check_only) {
			print_errors(&errs);
			return 1;
		}
		log_errors(&errs);
		fatal("invalid configuration, not starting");
	}
	if (check_only) {
		print_errors(&errs);	/* warnings */
		return 0;
	}
	sp.config_path = config_path;
	sp.drop = geteuid() == 0;
	if (sp.drop && privsep_user_lookup(sp.cfg->run_user, &sp.uid, &sp.gid,
					   &error) < 0)
		fatal("[server] user %s: %s", sp.cfg->run_user, error);
	if (!sp.drop)
		log_notice("not started as root: every process runs as uid "
			   "%ld", (long)getuid());

	/* Both processes serve these through sd-event; workers get the
	 * defaults back before exec. Writes to a closed peer are errors,
	 * not signals. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	if (listeners_open(sp.cfg, &listeners, &n_listeners, &activated,
			   &errs) < 0) {
		log_errors(&errs);
		fatal("cannot open listeners");
	}
	for (size_t i = 0; i < n_listeners; i++)
		log_info("listening on %s (%s)%s", listeners[i].name,
			 listeners[i].mode == LISTEN_TLS ? "implicit TLS"
			 : "STARTTLS", activated ? ", passed by systemd" : "");
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
		uid_t uid = sp.uid;
		gid_t gid = sp.gid;
		bool drop = sp.drop;

		close(ctl[0]);
		proctitle_set("authrelay: network");
		/* Not this process's: the bind secret and the rest. */
		bundle_free(&sp.worker_bundle);
		config_free(&sp.cfg);
		return network_main(ctl[1], net, uid, gid, drop);
	}
	close(ctl[1]);
	proctitle_set("authrelay: supervisor");
	bundle_free(&net);
	listeners_close(&listeners, n_listeners);
	return supervisor_run(pid, ctl[0], &sp);
}
