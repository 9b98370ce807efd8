#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "auth_proto.h"
#include "bundle.h"
#include "check_line.h"
#include "config_check.h"
#include "ctl.h"
#include "header_addr.h"
#include "log.h"
#include "preflight.h"
#include "preflight_cert.h"
#include "preflight_redis.h"
#include "sender_policy.h"
#include "privsep.h"
#include "relay.h"
#include "relay_token.h"
#include "server.h"
#include "settings_load.h"
#include "supervisor.h"
#include "tls.h"
#include "token_fetch.h"
#include "xalloc.h"

/* What a check keeps of the messages the daemon's code logs. */
#define LOGGED_MAX 1024
/* After QUIT: how long the smarthost gets to close. */
#define QUIT_GRACE_USEC (10 * USEC_PER_SEC)

/* --- what the daemon's code logs during a check --- */

struct logged {
	char text[LOGGED_MAX];		/* every message */
	char warned[LOGGED_MAX];	/* warnings and errors only */
	const char *strip;	/* a prefix to leave out, or NULL */
};

static void append(char *buf, size_t size, const char *msg)
{
	size_t n = strlen(buf);

	if (strstr(buf, msg) == NULL)
		snprintf(buf + n, size - n, "%s%s", n > 0 ? "; " : "", msg);
}

/* Every message becomes part of the check's reason instead of a log
 * line: the check line says what happened. */
static bool log_keep(enum log_level level, const char *msg, void *ctx)
{
	struct logged *l = ctx;
	const char *p;

	if (level == LOG_LVL_DEBUG)
		return false;
	if (l->strip != NULL && (p = strstr(msg, l->strip)) != NULL)
		msg = p + strlen(l->strip);
	append(l->text, sizeof(l->text), msg);
	if (level <= LOG_LVL_WARNING)
		append(l->warned, sizeof(l->warned), msg);
	return true;
}


/* --- OAuth2: a token from authrelay-token, as the supervisor gets it --- */

struct token_wait {
	bool done;
	bool ok;
	unsigned long secs;
};

static int on_token(sd_event_source *src, int fd, uint32_t revents, void *ud)
{
	struct token_wait *tw = ud;
	char *msg = xmalloc(CTL_MSG_MAX + 1), *mailbox, *secs, *token;
	int passed = -1;
	ssize_t n = ctl_recv(fd, msg, CTL_MSG_MAX + 1, &passed);
	uint64_t now = 0;

	if (passed >= 0)
		close(passed);
	if (n > 6 && strncmp(msg, "TOKEN ", 6) == 0) {
		mailbox = msg + 6;
		secs = strchr(mailbox, ' ');
		token = secs != NULL ? strchr(secs + 1, ' ') : NULL;
		if (token != NULL) {
			*secs++ = '\0';
			*token++ = '\0';
			tw->secs = strtoul(secs, NULL, 10);
			sd_event_now(sd_event_source_get_event(src),
				     CLOCK_MONOTONIC, &now);
			tw->ok = tw->secs > 0 &&
				 relay_token_set(mailbox, token, now +
						 tw->secs * USEC_PER_SEC) == 0;
			tw->done = true;
		}
	}
	free_secret(msg, CTL_MSG_MAX + 1);
	return 0;
}

/* The config text as authrelay-token reads it (fd 3 of the child). */
static int config_memfd(const struct bundle *b)
{
	const unsigned char *text;
	size_t len;
	int fd;

	if (!bundle_get(b, BUNDLE_CONFIG, &text, &len))
		return -1;
	fd = memfd_create("authrelay.conf", MFD_CLOEXEC);
	if (fd >= 0 && write(fd, text, len) != (ssize_t)len) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* 0 when a token for mailbox is in relay_token for the relay to use. */
static int fetch_token(sd_event *event, const struct config *cfg,
		       const struct bundle *net, const char *mailbox)
{
	struct token_wait tw = { 0 };
	struct logged lg = { .text = "", .warned = "" };
	struct token_fetcher *tf;
	sd_event_source *src = NULL;
	uint64_t deadline = cfg->oauth2_timeout_usec + 10 * USEC_PER_SEC;
	uint64_t start = 0, now = 0;
	int sv[2], cfd;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		check_line(CHECK_FAIL, "oauth2 token for %s: socketpair: %s",
			   mailbox, strerror(errno));
		return -1;
	}
	cfd = config_memfd(net);
	log_set_tap(log_keep, &lg);
	tf = token_fetcher_new(event, sv[0]);
	sd_event_add_io(event, &src, sv[1], EPOLLIN, on_token, &tw);
	token_fetcher_configure(tf, cfg, cfd);
	if (cfg->relay_auth_sender)
		token_fetcher_request(tf, mailbox);
	sd_event_now(event, CLOCK_MONOTONIC, &start);
	now = start;
	while (!tw.done && now - start < deadline &&
	       sd_event_run(event, 500 * 1000) >= 0)
		sd_event_now(event, CLOCK_MONOTONIC, &now);
	token_fetcher_free(&tf);
	log_set_tap(NULL, NULL);
	sd_event_source_disable_unref(src);
	close(sv[0]);
	close(sv[1]);
	if (cfd >= 0)
		close(cfd);
	if (tw.ok) {
		check_line(CHECK_OK, "oauth2 token for %s: fetched with %s "
			   "(valid %lus)", mailbox, cfg->token_program,
			   tw.secs);
		return 0;
	}
	check_line(CHECK_FAIL, "oauth2 token for %s: %s", mailbox,
		   lg.text[0] != '\0' ? lg.text : "none within the timeout");
	return -1;
}

/* --- [relay] smarthosts, through the relay client --- */

struct relay_wait {
	bool done;
	bool ready;
	struct relay_reply rep;
};

static void on_relay(struct relay *r, enum relay_event ev,
		     const struct relay_reply *rep, void *ctx)
{
	struct relay_wait *w = ctx;

	w->done = true;
	w->ready = ev == RELAY_EV_READY;
	if (rep != NULL)
		w->rep = *rep;
}

static bool host_is_local(const char *host)
{
	return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
	       strcasecmp(host, "localhost") == 0;
}

/* Run the loop until pred or the time is up. */
static void run_until(sd_event *event, bool (*pred)(void *), void *arg,
		      uint64_t usec)
{
	uint64_t start = 0, now = 0;

	sd_event_now(event, CLOCK_MONOTONIC, &start);
	now = start;
	while (!pred(arg) && now - start < usec &&
	       sd_event_run(event, 200 * 1000) >= 0)
		sd_event_now(event, CLOCK_MONOTONIC, &now);
}

static bool relay_done(void *arg)
{
	return ((struct relay_wait *)arg)->done;
}

static bool relay_gone(void *arg)
{
	/* The relay holds a reference on our settings until it is freed. */
	return atomic_load(&((struct settings *)arg)->refs) == 1;
}

static void check_smarthost(sd_event *event, const struct settings *all,
			    size_t i, const char *from)
{
	const struct config *cfg = all->cfg;
	struct config one = *cfg;
	struct config_errors errs = { 0 };
	struct settings st = { 0 };
	struct relay_wait w = { 0 };
	struct logged lg = { .text = "", .warned = "" };
	struct relay_identity id = { .login = "authrelay-check",
				     .address = from,
				     .client_ip = "127.0.0.1",
				     .session_id = "check" };
	struct smtp_ehlo_caps caps;
	struct relay *r;
	char name[300], prefix[340], detail[600];
	const char *tls;
	bool local = host_is_local(cfg->smarthost[i].host);

	/* This smarthost alone: no failover to hide its faults. */
	one.smarthost = &cfg->smarthost[i];
	one.n_smarthost = 1;
	if (one.relay_auth_sender && from == NULL)
		one.relay_auth_sender = false;
	snprintf(name, sizeof(name), "%s%s%s:%s",
		 strchr(one.smarthost->host, ':') ? "[" : "",
		 one.smarthost->host,
		 strchr(one.smarthost->host, ':') ? "]" : "",
		 one.smarthost->port);
	snprintf(prefix, sizeof(prefix), "session=check smarthost %s: ", name);
	lg.strip = prefix;
	atomic_init(&st.refs, 1);
	st.cfg = &one;
	st.ssl_ctx = all->ssl_ctx;
	st.relay_ssl_ctx = all->relay_ssl_ctx;
	st.relay_secret = all->relay_secret;
	log_set_tap(log_keep, &lg);
	st.relay_targets = relay_targets_resolve(&one, &errs);
	r = relay_open(event, NULL, &st, &id, on_relay, &w);
	if (r != NULL)
		run_until(event, relay_done, &w,
			  cfg->relay_connect_timeout_usec +
			  8 * cfg->command_timeout_usec);
	if (r != NULL && w.ready) {
		/* A copy: relay_close() frees r. */
		caps = *relay_caps(r);
		tls = relay_tls_version(r);
		snprintf(detail, sizeof(detail), "%s%s%s%s%s%s%s",
			 tls == NULL ? "no TLS" : cfg->relay_tls ==
			 RELAY_TLS_TLS ? "implicit TLS " : "STARTTLS ",
			 tls != NULL ? tls : "",
			 tls == NULL ? "" : cfg->relay_tls_verify ?
			 " (certificate verified)" : " (certificate NOT "
			 "verified: tls_verify = no)",
			 relay_authenticated(r) ? ", AUTH as " : "",
			 relay_authenticated(r) ? (one.relay_auth_sender ?
			 from : cfg->relay_auth_user) : "",
			 caps.xclient ? ", XCLIENT offered" : "",
			 caps.size ? ", SIZE" : "");
		check_line(CHECK_OK, "smarthost %s: connected, greeting, EHLO, "
			   "%s", name, detail);
		relay_close(&r);
		run_until(event, relay_gone, &st, QUIT_GRACE_USEC);
		log_set_tap(NULL, NULL);
		if (lg.warned[0] != '\0')
			check_line(CHECK_WARN, "smarthost %s: %s", name,
				   lg.warned);
		if (cfg->xclient && !caps.xclient)
			check_line(CHECK_WARN, "smarthost %s: xclient = yes, "
				   "but XCLIENT is not offered: the smarthost "
				   "sees this proxy as the client", name);
		if (tls == NULL && !local)
			check_line(CHECK_WARN, "smarthost %s: no TLS (tls = "
				   "none): mail and credentials cross the "
				   "network in clear", name);
		else if (tls != NULL && !cfg->relay_tls_verify)
			check_line(CHECK_WARN, "smarthost %s: tls_verify = no: "
				   "anyone in the path can pose as it", name);
		if (cfg->relay_auth_sender && from == NULL)
			check_line(CHECK_WARN, "smarthost %s: AUTH not checked:"
				   " auth_user = @sender needs --from ADDRESS",
				   name);
	} else {
		relay_abort(&r);
		run_until(event, relay_gone, &st, QUIT_GRACE_USEC);
		log_set_tap(NULL, NULL);
		check_line(CHECK_FAIL, "smarthost %s: %s", name,
			   lg.text[0] != '\0' ? lg.text :
			   w.done ? w.rep.text : "no answer in time");
	}
	config_errors_clear(&errs);
	relay_targets_free(&st.relay_targets);
}

static void check_smarthosts(const struct settings *st,
			     const struct bundle *net, const char *from)
{
	const struct config *cfg = st->cfg;
	sd_event *event = NULL;
	bool oauth = cfg->relay_auth_mech == RELAY_AUTH_XOAUTH2 ||
		     cfg->relay_auth_mech == RELAY_AUTH_OAUTHBEARER;
	const char *mailbox = cfg->relay_auth_sender ? from :
			      cfg->relay_auth_user;

	if (sd_event_new(&event) < 0) {
		check_line(CHECK_FAIL, "smarthost: cannot set up an event loop");
		return;
	}
	if (oauth && mailbox != NULL &&
	    fetch_token(event, cfg, net, mailbox) < 0) {
		check_line(CHECK_FAIL, "smarthost: AUTH not checked: no "
			   "OAuth2 token");
	} else {
		for (size_t i = 0; i < cfg->n_smarthost; i++)
			check_smarthost(event, st, i, from);
	}
	relay_token_clear();
	sd_event_unref(event);
}

/* --- auth workers --- */

struct worker {
	pid_t pid;
	int sock;
};

static int worker_start(const struct supervisor_params *sp,
			const struct bundle *wb, const char *extra,
			struct worker *w)
{
	const char *error;
	int sv[2], bfd;

	w->pid = -1;
	w->sock = -1;
	bfd = bundle_to_memfd(wb, &error);
	if (bfd < 0) {
		check_line(CHECK_FAIL, "auth worker: cannot hand the "
			   "configuration over: %s", error);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		close(bfd);
		check_line(CHECK_FAIL, "auth worker: socketpair: %s",
			   strerror(errno));
		return -1;
	}
	fflush(stdout);
	w->pid = supervisor_worker_start(sp, sv[1], bfd, extra);
	close(sv[1]);
	close(bfd);
	if (w->pid < 0) {
		close(sv[0]);
		check_line(CHECK_FAIL, "auth worker: fork: %s",
			   strerror(errno));
		return -1;
	}
	w->sock = sv[0];
	return 0;
}

/* Close its socket (it exits at end of file) and reap it, killing it
 * if it takes longer than usec. Returns its wait status. */
static int worker_end(struct worker *w, uint64_t usec)
{
	int status = 0;

	if (w->sock >= 0)
		close(w->sock);
	w->sock = -1;
	for (uint64_t waited = 0; w->pid > 0; waited += 10000) {
		pid_t r = waitpid(w->pid, &status, WNOHANG);

		if (r == w->pid || (r < 0 && errno != EINTR))
			break;
		if (waited >= usec) {
			kill(w->pid, SIGKILL);
			waitpid(w->pid, &status, 0);
			break;
		}
		usleep(10000);
	}
	w->pid = -1;
	return status;
}

static void check_directory(const struct supervisor_params *sp,
			    const struct bundle *wb)
{
	struct worker w;
	int status;

	if (worker_start(sp, wb, "--check", &w) < 0)
		return;
	/* The worker bounds each step by [ldap] timeout. */
	status = worker_end(&w, (sp->cfg->n_ldap_uri + 2 +
				 sp->cfg->n_require_group +
				 sp->cfg->n_send_as + sp->cfg->n_group_rate +
				 sp->cfg->n_group_recipient_rate) *
			    sp->cfg->worker_timeout_usec);
	if (!WIFEXITED(status))
		check_line(CHECK_FAIL, "ldap: the auth worker %s did not "
			   "finish its checks", sp->cfg->worker_path);
	else if (WEXITSTATUS(status) != 0)
		check_line(CHECK_FAIL, "ldap: the auth worker's checks "
			   "failed (exit status %d; its messages are on "
			   "standard error)", WEXITSTATUS(status));
}

/* The password: one line of standard input, its line end removed. */
static int read_password(char *buf, size_t size)
{
	size_t n = 0;

	while (n + 1 < size) {
		ssize_t r = read(STDIN_FILENO, buf + n, size - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(buf, '\n', n) != NULL)
			break;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (n + 1 >= size && strchr(buf, '\0') == buf + n)
		return -1;
	return 0;
}

static int ask_worker(const struct config *cfg, struct worker *w,
		      const struct auth_request *req, struct auth_reply *rep)
{
	unsigned char *buf = xmalloc(AUTH_PROTO_MAX);
	struct pollfd pfd = { .fd = w->sock, .events = POLLIN };
	ssize_t len, n = -1;
	int r = -1;

	len = auth_request_encode(req, buf, AUTH_PROTO_MAX);
	if (len > 0 && send(w->sock, buf, (size_t)len, MSG_NOSIGNAL) == len &&
	    poll(&pfd, 1, (int)(cfg->worker_timeout_usec / 1000)) == 1)
		n = recv(w->sock, buf, AUTH_PROTO_MAX, 0);
	if (n > 0 && auth_reply_decode(buf, (size_t)n, rep) == 0 &&
	    rep->id == req->id)
		r = 0;
	free_secret(buf, AUTH_PROTO_MAX);
	return r;
}

static void check_user(const struct supervisor_params *sp,
		       const struct bundle *wb, const char *user,
		       const char *from)
{
	const struct config *cfg = sp->cfg;
	struct auth_request *req = xcalloc(1, sizeof(*req));
	struct auth_reply *rep = xcalloc(1, sizeof(*rep));
	struct worker w;
	char list[1024];
	size_t o = 0;
	bool owns = false;

	if (strlen(user) > AUTH_USER_MAX) {
		check_line(CHECK_FAIL, "user: name over %d octets",
			   AUTH_USER_MAX);
		goto out;
	}
	if (read_password(req->password, sizeof(req->password)) < 0) {
		check_line(CHECK_FAIL, "user %s: password over %d octets",
			   user, AUTH_PASSWORD_MAX);
		goto out;
	}
	req->id = 1;
	snprintf(req->user, sizeof(req->user), "%s", user);
	snprintf(req->client_ip, sizeof(req->client_ip), "127.0.0.1");
	if (worker_start(sp, wb, NULL, &w) < 0)
		goto out;
	if (ask_worker(cfg, &w, req, rep) < 0) {
		worker_end(&w, 0);
		check_line(CHECK_FAIL, "user %s: the auth worker gave no "
			   "answer within [auth] worker_timeout", user);
		goto out;
	}
	worker_end(&w, 5 * USEC_PER_SEC);
	if (rep->result != AUTH_OK) {
		check_line(CHECK_FAIL, "user %s: %s (%s)", user,
			   rep->result == AUTH_PERMFAIL ? "refused: 535 5.7.8"
			   : "temporary failure: 454 4.7.0",
			   rep->reason[0] != '\0' ? rep->reason : "no reason");
		goto out;
	}
	check_line(CHECK_OK, "user %s: authenticated (%s backend), canonical "
		   "name %s", user, cfg->backend == AUTH_BACKEND_LDAP ? "ldap"
		   : "pam", rep->user);
	if (cfg->n_require_group > 0)
		check_line(CHECK_OK, "user %s: member of a required group "
			   "([auth] require_group)", user);
	for (size_t i = 0; i < rep->n_group && o + 1 < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s",
				      i > 0 ? ", " : "", rep->group[i]);
	if (cfg->n_group_rate + cfg->n_group_recipient_rate > 0)
		check_line(CHECK_OK, "user %s: rate groups ([policy] "
			   "group_rate): %s", user, o > 0 ? list : "none");
	o = 0;
	list[0] = '\0';
	for (size_t i = 0; i < rep->n_address && o + 1 < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s",
				      i > 0 ? ", " : "", rep->address[i]);
	check_line(rep->n_address == 0 && cfg->sender_check !=
		   SENDER_CHECK_OFF ? CHECK_WARN : CHECK_OK,
		   "user %s: sender addresses (with [policy] send_as): %s",
		   user, o > 0 ? list : "none");
	if (from == NULL)
		goto out;
	/* The daemon's own rule (sender_policy.c), as for MAIL FROM. */
	{
		char *addrs[AUTH_MAX_ADDRESSES];
		struct sender_user u = { addrs, rep->n_address, NULL, 0 };
		char why[256];
		struct config every = *cfg;

		for (size_t i = 0; i < rep->n_address; i++)
			addrs[i] = rep->address[i];
		/* Whatever sender_check says, tell whether it would pass. */
		every.sender_check = SENDER_CHECK_ENVELOPE;
		owns = sender_policy_envelope(&every, &u, from, why,
					      sizeof(why)) == NULL;
	}
	if (cfg->sender_check == SENDER_CHECK_OFF)
		check_line(CHECK_OK, "user %s: may send as %s (sender_check "
			   "= off)", user, from);
	else if (owns)
		check_line(CHECK_OK, "user %s: may send as %s", user, from);
	else
		check_line(CHECK_FAIL, "user %s: may not send as %s: not one "
			   "of the user's addresses (553 5.7.1)", user, from);
out:
	free_secret(req, sizeof(*req));
	free_secret(rep, sizeof(*rep));
}

/* --- the whole --- */

static void print_errors(enum check_level level, struct config_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		check_line(level, "config %s", e->msg[i]);
	config_errors_clear(e);
}

int preflight_run(const struct preflight_opts *o)
{
	struct config_errors errs = { 0 }, problems = { 0 };
	struct supervisor_params sp = { 0 };
	struct bundle *net = NULL;
	struct settings *st = NULL;
	const char *error;

	if (geteuid() != 0)
		check_line(CHECK_WARN, "not run as root: secrets and the auth "
			   "worker are not checked as the service runs them");
	if (settings_read(o->config_path, &net, &sp.worker_bundle, &sp.cfg,
			  &errs) < 0) {
		print_errors(CHECK_FAIL, &errs);
		check_line(CHECK_FAIL, "config %s: invalid: nothing else "
			   "checked", o->config_path);
		return 1;
	}
	print_errors(CHECK_WARN, &errs);
	check_line(CHECK_OK, "config %s: valid", o->config_path);
	if (config_check_semantics(sp.cfg, &problems, &errs) == 0 &&
	    errs.n == 0 && sp.cfg->backend == AUTH_BACKEND_PAM)
		check_line(CHECK_OK, "pam service %s: its file exists%s",
			   sp.cfg->pam_service, sp.cfg->n_require_group +
			   sp.cfg->n_send_as + sp.cfg->n_group_rate +
			   sp.cfg->n_group_recipient_rate > 0 ?
			   "; every group named exists in NSS" : "");
	print_errors(CHECK_FAIL, &problems);
	print_errors(CHECK_WARN, &errs);

	sp.drop = geteuid() == 0;
	if (sp.drop && privsep_user_lookup(sp.cfg->run_user, &sp.uid,
					   &sp.gid, &error) < 0)
		check_line(CHECK_FAIL, "[server] user %s: %s",
			   sp.cfg->run_user, error);
	else
		check_line(CHECK_OK, "[server] user %s: exists",
			   sp.cfg->run_user);

	st = settings_from_bundle(net, &errs);
	if (st == NULL) {
		print_errors(CHECK_FAIL, &errs);
	} else {
		for (size_t i = 0; i < st->cfg->n_tls; i++)
			preflight_check_certificate(st->cfg, net,
						    &st->cfg->tls[i]);
		check_smarthosts(st, net, o->from);
		preflight_check_shared_state(st);
		settings_put(&st);
	}
	if (sp.cfg->backend == AUTH_BACKEND_LDAP)
		check_directory(&sp, sp.worker_bundle);
	if (o->check_user != NULL)
		check_user(&sp, sp.worker_bundle, o->check_user, o->from);

	bundle_free(&net);
	bundle_free(&sp.worker_bundle);
	config_free(&sp.cfg);
	return check_failures() > 0 ? 1 : 0;
}
