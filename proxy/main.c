#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <systemd/sd-journal.h>

#include "config.h"
#include "auth_cache.h"
#include "listen.h"
#include "log.h"
#include "relay.h"
#include "server.h"
#include "tls.h"
#include "xalloc.h"

#define STATUS_INTERVAL_USEC (5 * USEC_PER_SEC)
#define CONFIG_FILE_MAX (1024 * 1024)

static const char *config_path = DEFAULT_CONFIG_PATH;
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

/* A private copy of the config file: what the daemon parses is what its
 * auth workers read (fd AUTH_WORKER_CONFIG_FD), even if the file on disk
 * changes or turns invalid before the next successful reload. */
static int snapshot_config(const char *path, struct config_errors *errs)
{
	char buf[65536];
	size_t total = 0;
	int in, out;
	ssize_t n;

	in = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (in < 0) {
		config_errors_add(errs, "%s: cannot open: %s", path,
				  strerror(errno));
		return -1;
	}
	out = memfd_create("authrelay.conf", MFD_CLOEXEC);
	if (out >= 0 && out <= AUTH_WORKER_CONFIG_FD) {
		/* Keep clear of the fds a worker is given (auth_client.c). */
		int high = fcntl(out, F_DUPFD_CLOEXEC, AUTH_WORKER_CONFIG_FD + 1);

		close(out);
		out = high;
	}
	if (out < 0) {
		config_errors_add(errs, "%s: memfd: %s", path, strerror(errno));
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (total += (size_t)n) > CONFIG_FILE_MAX ||
		    write(out, buf, (size_t)n) != n) {
			config_errors_add(errs, "%s: cannot read: %s", path,
					  n < 0 ? strerror(errno) :
					  "too large or write error");
			close(in);
			close(out);
			return -1;
		}
	}
	close(in);
	return out;
}

/* Config and TLS contexts, checked; NULL with errors. */
static struct settings *settings_load(struct config_errors *errs)
{
	struct settings *st;
	struct config *cfg;
	SSL_CTX *ctx, *relay_ctx = NULL;
	struct relay_targets *targets = NULL;
	int fd;

	fd = snapshot_config(config_path, errs);
	if (fd < 0)
		return NULL;
	cfg = config_load_fd(config_path, fd, true, errs);
	if (cfg == NULL) {
		close(fd);
		return NULL;
	}
	ctx = tls_server_ctx_new(cfg, errs);
	if (ctx != NULL)
		relay_ctx = relay_tls_ctx_new(cfg, errs);
	if (relay_ctx != NULL)
		targets = relay_targets_resolve(cfg, errs);
	if (targets == NULL) {
		SSL_CTX_free(ctx);
		SSL_CTX_free(relay_ctx);
		config_free(&cfg);
		close(fd);
		return NULL;
	}
	st = xcalloc(1, sizeof(*st));
	atomic_init(&st->refs, 1);
	st->cfg = cfg;
	st->config_fd = fd;
	st->ssl_ctx = ctx;
	st->relay_ssl_ctx = relay_ctx;
	st->relay_targets = targets;
	return st;
}

static void notify_status(void)
{
	sd_notifyf(0, "STATUS=%lu session(s), %lu served; auth %lu ok, "
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

static int on_sighup(sd_event_source *src, const struct signalfd_siginfo *si,
		     void *ud)
{
	struct config_errors errs = { 0 };
	struct settings *st, *old;

	sd_notify(0, "RELOADING=1");
	log_notice("reloading %s", config_path);
	st = settings_load(&errs);
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
	sd_notify(0, "READY=1");
	notify_status();
	return 0;
}

static int on_sigterm(sd_event_source *src, const struct signalfd_siginfo *si,
		      void *ud)
{
	if (stopping)
		return 0;
	stopping = true;
	log_notice("stopping: finishing sessions in progress");
	sd_notify(0, "STOPPING=1");
	servers_stop();
	return 0;
}

static uint64_t watchdog_usec;

static int on_watchdog(sd_event_source *src, uint64_t usec, void *ud)
{
	if (servers_alive())
		sd_notify(0, "WATCHDOG=1");
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
	bool check_only = false, activated = false;
	sd_event *event = NULL;
	sd_event_source *status_src = NULL;
	struct settings *st;
	sigset_t mask;
	int c, done_fd, r;

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

	st = settings_load(&errs);
	if (check_only) {
		print_errors(&errs);
		config_errors_clear(&errs);
		if (st == NULL)
			return 1;
		config_describe_relay(st->cfg, stdout);
		settings_put(&st);
		return 0;
	}
	if (st == NULL) {
		log_errors(&errs);
		config_errors_clear(&errs);
		fatal("invalid configuration, not starting");
	}
	settings_publish(st);
	if (auth_cache_init() < 0)
		log_warn("no randomness for the credential cache key: "
			 "cache disabled");

	/* Workers are reaped by the kernel; writes to a closed peer are
	 * errors, not signals. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	st = settings_get();
	if (listeners_open(st->cfg, &listeners, &n_listeners, &activated,
			   &errs) < 0) {
		log_errors(&errs);
		fatal("cannot open listeners");
	}
	n_threads = st->cfg->threads;
	if (n_threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		n_threads = n > 0 ? (unsigned)n : 1;
	}
	settings_put(&st);
	for (size_t i = 0; i < n_listeners; i++)
		log_info("listening on %s (%s)%s", listeners[i].name,
			 listeners[i].mode == LISTEN_TLS ? "implicit TLS"
			 : "STARTTLS", activated ? ", passed by systemd" : "");

	r = sd_event_default(&event);
	if (r < 0)
		fatal("event loop: %s", strerror(-r));
	done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (done_fd < 0)
		fatal("eventfd: %s", strerror(errno));
	if (sd_event_add_signal(event, NULL, SIGTERM, on_sigterm, NULL) < 0 ||
	    sd_event_add_signal(event, NULL, SIGINT, on_sigterm, NULL) < 0 ||
	    sd_event_add_signal(event, NULL, SIGHUP, on_sighup, NULL) < 0 ||
	    sd_event_add_io(event, NULL, done_fd, EPOLLIN, on_thread_done,
			    NULL) < 0 ||
	    sd_event_add_time_relative(event, &status_src, CLOCK_MONOTONIC,
				       STATUS_INTERVAL_USEC, 0,
				       on_status_timer, NULL) < 0)
		fatal("cannot set up the event loop");
	/* WATCHDOG=1 at half of WatchdogSec=, when the unit sets it, and
	 * only while every serving loop turns (servers_alive). */
	if (sd_watchdog_enabled(0, &watchdog_usec) > 0 &&
	    sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC,
				       watchdog_usec / 2, 0, on_watchdog,
				       NULL) < 0)
		fatal("cannot set up the watchdog");

	if (servers_start(n_threads, listeners, n_listeners, done_fd) < 0)
		fatal("cannot start serving threads");
	log_notice("authrelay %s ready, %u thread(s)", PACKAGE_VERSION,
		   n_threads);
	sd_notify(0, "READY=1");
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
