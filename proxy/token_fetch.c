#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "relay_token.h"
#include "token_fetch.h"
#include "xalloc.h"

#define TOKEN_SLOTS 1024
#define TOKEN_LINE_MAX (RELAY_TOKEN_MAX + 64)
#define TOKEN_MIN_INTERVAL_USEC (1 * USEC_PER_SEC)
#define TEMPFAIL_FIRST_USEC (5 * USEC_PER_SEC)
#define RETRY_MAX_USEC (300 * USEC_PER_SEC)
/* The network process stops handing a token out this long before it
 * expires (relay_token.h); refresh halfway through what is left. */
#define NETWORK_MARGIN_SEC (RELAY_TOKEN_MARGIN_USEC / USEC_PER_SEC)
#define REFRESH_MIN_SEC 5

struct token_entry {
	char mailbox[RELAY_TOKEN_MAILBOX_MAX + 1];
	bool fixed;			/* [relay] auth_user: kept fresh */
	pid_t pid;			/* fetching, or 0 */
	int fd;				/* its stdout */
	sd_event_source *io, *deadline, *retry;
	char line[TOKEN_LINE_MAX + 1];
	size_t len;
	bool overlong;
	uint64_t last_fetch;		/* CLOCK_MONOTONIC usec */
	uint64_t backoff;
};

struct token_fetcher {
	sd_event *event;
	int ctl;
	const struct config *cfg;
	int config_fd;
	struct token_entry *e[TOKEN_SLOTS];
	size_t n;
};

static uint64_t now_usec(struct token_fetcher *tf)
{
	uint64_t t = 0;

	sd_event_now(tf->event, CLOCK_MONOTONIC, &t);
	return t;
}

static bool oauth(const struct config *cfg)
{
	return cfg != NULL && (cfg->relay_auth_mech == RELAY_AUTH_XOAUTH2 ||
			       cfg->relay_auth_mech == RELAY_AUTH_OAUTHBEARER);
}

bool token_mailbox_valid(const char *m)
{
	size_t n = strlen(m);

	if (n == 0 || n > RELAY_TOKEN_MAILBOX_MAX || strchr(m, '@') == NULL)
		return false;
	for (; *m != '\0'; m++)
		if (*m <= ' ' || *m > '~')
			return false;
	return true;
}

static void entry_stop(struct token_entry *e)
{
	if (e->pid > 0)
		(void)kill(e->pid, SIGKILL);	/* reaped by the supervisor */
	e->pid = 0;
	e->io = sd_event_source_disable_unref(e->io);
	e->deadline = sd_event_source_disable_unref(e->deadline);
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
	explicit_bzero(e->line, sizeof(e->line));
	e->len = 0;
	e->overlong = false;
}

static void entry_free(struct token_entry *e)
{
	entry_stop(e);
	sd_event_source_disable_unref(e->retry);
	free(e);
}

static void fetch(struct token_fetcher *tf, struct token_entry *e);

static void schedule(struct token_fetcher *tf, struct token_entry *e,
		     uint64_t delay_usec);

static int on_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct token_fetcher *tf = ud;

	for (size_t i = 0; i < tf->n; i++)
		if (tf->e[i]->retry == s) {
			fetch(tf, tf->e[i]);
			break;
		}
	return 0;
}

static void schedule(struct token_fetcher *tf, struct token_entry *e,
		     uint64_t delay_usec)
{
	if (e->retry == NULL &&
	    sd_event_add_time_relative(tf->event, &e->retry, CLOCK_MONOTONIC,
				       delay_usec, 0, on_timer, tf) < 0) {
		log_err("oauth2: cannot schedule a token fetch for %s",
			e->mailbox);
		return;
	}
	sd_event_source_set_time_relative(e->retry, delay_usec);
	sd_event_source_set_enabled(e->retry, SD_EVENT_ONESHOT);
}

static void failed(struct token_fetcher *tf, struct token_entry *e,
		   bool permanent, const char *why)
{
	uint64_t delay;

	if (permanent) {
		delay = RETRY_MAX_USEC;
	} else {
		e->backoff = e->backoff == 0 ? TEMPFAIL_FIRST_USEC :
			     e->backoff * 2;
		if (e->backoff > RETRY_MAX_USEC)
			e->backoff = RETRY_MAX_USEC;
		delay = e->backoff;
	}
	log_err("oauth2: no token for %s: %s (%s; next try in %llus)",
		e->mailbox, why, permanent ? "permanent" : "temporary",
		(unsigned long long)(delay / USEC_PER_SEC));
	if (e->fixed)
		schedule(tf, e, delay);
}

/* "OK <secs> <token>", "TEMPFAIL <why>", "PERMFAIL <why>". */
static void finish(struct token_fetcher *tf, struct token_entry *e)
{
	char *line = e->line, *p, *end;
	unsigned long secs;

	if (e->overlong || e->len == 0 || line[e->len - 1] != '\n') {
		failed(tf, e, false, e->overlong ? "answer too long" :
		       "authrelay-token gave no answer");
		return;
	}
	line[--e->len] = '\0';
	if (strncmp(line, "OK ", 3) == 0) {
		errno = 0;
		secs = strtoul(line + 3, &end, 10);
		p = end;
		if (errno != 0 || end == line + 3 || *p != ' ' ||
		    secs == 0 || secs > 86400 * 7 || p[1] == '\0' ||
		    strlen(p + 1) > RELAY_TOKEN_MAX ||
		    strpbrk(p + 1, " \t") != NULL) {
			failed(tf, e, false, "malformed answer");
			return;
		}
		if (ctl_send(tf->ctl, -1, "TOKEN %s %lu %s", e->mailbox, secs,
			     p + 1) < 0) {
			failed(tf, e, false, "cannot hand the token over");
			return;
		}
		e->backoff = 0;
		log_info("oauth2: token for %s, valid %lus", e->mailbox, secs);
		if (e->fixed) {
			unsigned long usable = secs > NETWORK_MARGIN_SEC ?
				secs - NETWORK_MARGIN_SEC : 0;
			unsigned long half = usable / 2;

			schedule(tf, e, (half < REFRESH_MIN_SEC ?
					 REFRESH_MIN_SEC : half) *
					USEC_PER_SEC);
		}
		return;
	}
	if (strncmp(line, "TEMPFAIL ", 9) == 0)
		failed(tf, e, false, line + 9);
	else if (strncmp(line, "PERMFAIL ", 9) == 0)
		failed(tf, e, true, line + 9);
	else
		failed(tf, e, false, "malformed answer");
}

static int on_output(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct token_fetcher *tf = ud;
	struct token_entry *e = NULL;
	char buf[4096];
	ssize_t n;

	for (size_t i = 0; i < tf->n; i++)
		if (tf->e[i]->io == s)
			e = tf->e[i];
	if (e == NULL)
		return 0;
	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n > 0) {
		if (e->len + (size_t)n > TOKEN_LINE_MAX)
			e->overlong = true;
		else {
			memcpy(e->line + e->len, buf, (size_t)n);
			e->len += (size_t)n;
		}
		explicit_bzero(buf, sizeof(buf));
		return 0;
	}
	/* End of its output: the answer is complete (the process is
	 * reaped by the supervisor's SIGCHLD handler). */
	e->pid = 0;
	e->io = sd_event_source_disable_unref(e->io);
	e->deadline = sd_event_source_disable_unref(e->deadline);
	close(e->fd);
	e->fd = -1;
	finish(tf, e);
	explicit_bzero(e->line, sizeof(e->line));
	e->len = 0;
	e->overlong = false;
	return 0;
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *ud)
{
	struct token_fetcher *tf = ud;

	for (size_t i = 0; i < tf->n; i++) {
		struct token_entry *e = tf->e[i];

		if (e->deadline == s) {
			entry_stop(e);
			failed(tf, e, false, "authrelay-token timed out");
			break;
		}
	}
	return 0;
}

static void fetch(struct token_fetcher *tf, struct token_entry *e)
{
	const char *prog = tf->cfg->token_program;
	char *argv[] = { (char *)prog, (char *)"-c", (char *)"/dev/fd/3",
			 (char *)"--user", e->mailbox, NULL };
	pid_t parent = getpid();
	int out[2];

	if (e->pid > 0)
		return;		/* one fetch at a time per mailbox */
	if (prog == NULL) {
		failed(tf, e, true, "[relay] token_program is empty");
		return;
	}
	e->last_fetch = now_usec(tf);
	if (pipe2(out, O_CLOEXEC) < 0) {
		failed(tf, e, false, strerror(errno));
		return;
	}
	e->pid = fork();
	if (e->pid < 0) {
		e->pid = 0;
		close(out[0]);
		close(out[1]);
		failed(tf, e, false, strerror(errno));
		return;
	}
	if (e->pid == 0) {
		sigset_t none;
		int cfg = fcntl(tf->config_fd, F_DUPFD, 10);

		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
		    getppid() != parent)
			_exit(1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (cfg < 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
		    dup2(cfg, 3) < 0 || lseek(3, 0, SEEK_SET) < 0)
			_exit(75);
		execv(prog, argv);
		printf("TEMPFAIL cannot run %s: %s\n", prog, strerror(errno));
		_exit(75);
	}
	close(out[1]);
	e->fd = out[0];
	(void)fcntl(e->fd, F_SETFL, O_NONBLOCK);
	if (sd_event_add_io(tf->event, &e->io, e->fd, EPOLLIN, on_output,
			    tf) < 0 ||
	    sd_event_add_time_relative(tf->event, &e->deadline,
				       CLOCK_MONOTONIC,
				       tf->cfg->oauth2_timeout_usec +
				       5 * USEC_PER_SEC, 0, on_deadline,
				       tf) < 0) {
		entry_stop(e);
		failed(tf, e, false, "cannot watch authrelay-token");
	}
}

static struct token_entry *entry_get(struct token_fetcher *tf,
				     const char *mailbox)
{
	struct token_entry *e;

	for (size_t i = 0; i < tf->n; i++)
		if (strcmp(tf->e[i]->mailbox, mailbox) == 0)
			return tf->e[i];
	if (tf->n == TOKEN_SLOTS) {
		/* Make room: the oldest idle per-user entry. */
		size_t victim = TOKEN_SLOTS;

		for (size_t i = 0; i < tf->n; i++)
			if (!tf->e[i]->fixed && tf->e[i]->pid == 0 &&
			    (victim == TOKEN_SLOTS || tf->e[i]->last_fetch <
			     tf->e[victim]->last_fetch))
				victim = i;
		if (victim == TOKEN_SLOTS)
			return NULL;
		entry_free(tf->e[victim]);
		tf->e[victim] = tf->e[--tf->n];
	}
	e = xcalloc(1, sizeof(*e));
	snprintf(e->mailbox, sizeof(e->mailbox), "%s", mailbox);
	e->fd = -1;
	tf->e[tf->n++] = e;
	return e;
}

static void clear(struct token_fetcher *tf)
{
	while (tf->n > 0)
		entry_free(tf->e[--tf->n]);
}

struct token_fetcher *token_fetcher_new(sd_event *event, int ctl)
{
	struct token_fetcher *tf = xcalloc(1, sizeof(*tf));

	tf->event = sd_event_ref(event);
	tf->ctl = ctl;
	tf->config_fd = -1;
	return tf;
}

void token_fetcher_free(struct token_fetcher **tfp)
{
	struct token_fetcher *tf = *tfp;

	if (tf == NULL)
		return;
	*tfp = NULL;
	clear(tf);
	if (tf->config_fd >= 0)
		close(tf->config_fd);
	sd_event_unref(tf->event);
	free(tf);
}

void token_fetcher_configure(struct token_fetcher *tf,
			     const struct config *cfg, int config_fd)
{
	struct token_entry *e;

	/* A reload may change the grant or the credential: start over. */
	clear(tf);
	tf->cfg = cfg;
	if (tf->config_fd >= 0)
		close(tf->config_fd);
	tf->config_fd = -1;
	if (!oauth(cfg))
		return;
	tf->config_fd = fcntl(config_fd, F_DUPFD_CLOEXEC, 3);
	if (tf->config_fd < 0) {
		log_err("oauth2: %s", strerror(errno));
		return;
	}
	if (cfg->relay_auth_user == NULL || cfg->relay_auth_sender)
		return;		/* per user, on request */
	e = entry_get(tf, cfg->relay_auth_user);
	if (e == NULL)
		return;
	e->fixed = true;
	fetch(tf, e);
}

void token_fetcher_request(struct token_fetcher *tf, const char *mailbox)
{
	struct token_entry *e;

	if (!oauth(tf->cfg) || tf->config_fd < 0 ||
	    !token_mailbox_valid(mailbox)) {
		log_err("network process: token request refused");
		return;
	}
	/* Only the mailboxes the config lets this service act as. */
	if (!tf->cfg->relay_auth_sender &&
	    (tf->cfg->relay_auth_user == NULL ||
	     strcmp(mailbox, tf->cfg->relay_auth_user) != 0)) {
		log_err("network process: token request for %s refused (not "
			"[relay] auth_user)", mailbox);
		return;
	}
	e = entry_get(tf, mailbox);
	if (e == NULL || e->pid > 0)
		return;
	if (e->last_fetch != 0 &&
	    now_usec(tf) - e->last_fetch < TOKEN_MIN_INTERVAL_USEC)
		return;
	fetch(tf, e);
}
