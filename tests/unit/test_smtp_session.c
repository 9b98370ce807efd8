/* The session state machine over a socketpair(), driven from its
 * command table (smtp_session.h): every command, in every state the
 * test knows how to reach, gets the reply the table gives; a command
 * the table lets through gets the reply of its proceeding. A row added
 * to the table is covered at once (and fails here until the test knows
 * what its proceeding answers).
 *
 * No TLS: the STARTTLS-listener states are driven as they are (TLS
 * required), the others with the session's assume_tls hook. A small
 * scripted smarthost (a child process on 127.0.0.1) answers the relay;
 * AUTH is answered from the auth cache, filled beforehand. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "auth_cache.h"
#include "base64.h"
#include "config.h"
#include "relay_targets.h"
#include "settings.h"
#include "smtp_session.h"
#include "test.h"

#define USER "alice"
#define PASSWORD "s3cret-pw"
#define ADDRESS "alice@example.org"
/* Loop turns while waiting for a reply (10 ms each): 10 s at most. */
#define MAX_TURNS 1000

static sd_event *ev;
static struct settings *st;
static unsigned live_sessions;
static pid_t smarthost_pid = -1;

/* --- the scripted smarthost --- */

static void sh_reply(FILE *f, const char *s)
{
	fputs(s, f);
	fflush(f);
}

static void sh_serve(int fd)
{
	FILE *f = fdopen(fd, "r+");
	char line[1100];
	bool data = false;

	if (f == NULL)
		return;
	sh_reply(f, "220 smarthost.test ESMTP\r\n");
	while (fgets(line, sizeof(line), f) != NULL) {
		if (data) {
			if (strcmp(line, ".\r\n") == 0) {
				data = false;
				sh_reply(f, "250 2.0.0 Ok: queued as T1\r\n");
			}
			continue;
		}
		if (strncasecmp(line, "EHLO", 4) == 0) {
			sh_reply(f, "250-smarthost.test\r\n250-8BITMIME\r\n"
				 "250 PIPELINING\r\n");
		} else if (strncasecmp(line, "DATA", 4) == 0) {
			data = true;
			sh_reply(f, "354 go on\r\n");
		} else if (strncasecmp(line, "QUIT", 4) == 0) {
			sh_reply(f, "221 2.0.0 Bye\r\n");
			break;
		} else {
			sh_reply(f, "250 2.0.0 Ok\r\n");
		}
	}
	fclose(f);
}

static unsigned smarthost_start(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0 || bind(lfd, (void *)&sin, sizeof(sin)) < 0 ||
	    listen(lfd, 16) < 0 || getsockname(lfd, (void *)&sin, &len) < 0) {
		perror("smarthost socket");
		exit(99);
	}
	smarthost_pid = fork();
	if (smarthost_pid < 0) {
		perror("fork");
		exit(99);
	}
	if (smarthost_pid == 0) {
		/* bounded: never outlives a test run */
		alarm(300);
		for (;;) {
			int fd = accept(lfd, NULL, NULL);

			if (fd < 0) {
				if (errno == EINTR)
					continue;
				_exit(0);
			}
			sh_serve(fd);
		}
	}
	close(lfd);
	return ntohs(sin.sin_port);
}

static void smarthost_stop(void)
{
	if (smarthost_pid > 0) {
		kill(smarthost_pid, SIGTERM);
		waitpid(smarthost_pid, NULL, 0);
	}
}

/* --- the session's side --- */

static void joined(struct smtp_session *s, void *ctx)
{
	(void)s;
	(void)ctx;
	live_sessions++;
}

static void gone(struct smtp_session *s, void *ctx)
{
	(void)s;
	(void)ctx;
	live_sessions--;
}

static void setup(unsigned port)
{
	struct config_errors errs = { 0 };
	char text[1024];
	struct auth_reply rep = { .result = AUTH_OK };
	unsigned char hash[AUTH_CACHE_HASH_LEN];
	uint64_t now = 0;
	int n;

	n = snprintf(text, sizeof(text),
		     "[server]\nhostname = relay.test\n"
		     "listen = 127.0.0.1:2525\n"
		     "[tls]\ncert = /nonexistent/cert.pem\n"
		     "key = /nonexistent/key.pem\n"
		     "[auth]\ncache_ttl = 1h\n"
		     "[relay]\nsmarthost = 127.0.0.1:%u\ntls = none\n"
		     "[policy]\nsender_check = off\n", port);
	st = calloc(1, sizeof(*st));
	st->cfg = config_load_mem("test.conf", text, (size_t)n, false, &errs);
	if (st->cfg == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		exit(99);
	}
	atomic_store(&st->refs, 1);
	/* a context without a certificate: STARTTLS may start, nobody
	 * shakes hands */
	st->ssl_ctx = SSL_CTX_new(TLS_server_method());
	st->relay_targets = relay_targets_resolve(st->cfg, &errs);
	if (sd_event_new(&ev) < 0 || st->ssl_ctx == NULL) {
		fprintf(stderr, "setup failed\n");
		exit(99);
	}
	/* AUTH is answered from the cache: no auth worker */
	if (auth_cache_init() < 0 ||
	    auth_cache_hash(USER, PASSWORD, hash) < 0) {
		fprintf(stderr, "no auth cache\n");
		exit(99);
	}
	snprintf(rep.user, sizeof(rep.user), "%s", USER);
	snprintf(rep.address[0], sizeof(rep.address[0]), "%s", ADDRESS);
	rep.n_address = 1;
	sd_event_now(ev, CLOCK_MONOTONIC, &now);
	auth_cache_store(USER, hash, &rep, now, 3600ULL * 1000000);
}

struct client {
	int fd;
	char buf[16384];
	size_t len;
};

/* Turn the loop until a complete reply is in; its code, and its first
 * line in line. 0 if none came (closed, or the wait ran out). */
static int read_reply(struct client *c, char *line, size_t size)
{
	for (int turn = 0; turn < MAX_TURNS; turn++) {
		char *p = c->buf, *end = c->buf + c->len, *eol;

		while ((eol = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			bool last = eol - p >= 4 && p[3] == ' ';

			if (last || (eol - p == 4 && p[3] == '\r')) {
				size_t first = (size_t)(strchr(c->buf, '\n') -
							c->buf);
				int code = atoi(c->buf);

				snprintf(line, size, "%.*s",
					 (int)(first > 0 && c->buf[first - 1] ==
					       '\r' ? first - 1 : first), c->buf);
				c->len = (size_t)(end - eol - 1);
				memmove(c->buf, eol + 1, c->len);
				return code;
			}
			p = eol + 1;
		}
		sd_event_run(ev, 10000);
		for (;;) {
			ssize_t n = recv(c->fd, c->buf + c->len,
					 sizeof(c->buf) - 1 - c->len,
					 MSG_DONTWAIT);

			if (n <= 0)
				break;
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
		}
	}
	line[0] = '\0';
	return 0;
}

static int command(struct client *c, const char *cmd, char *line,
		   size_t size)
{
	char out[2048];
	int n = snprintf(out, sizeof(out), "%s\r\n", cmd);

	if (send(c->fd, out, (size_t)n, MSG_NOSIGNAL) != n)
		return 0;
	return read_reply(c, line, size);
}

/* --- the states --- */

static char auth_plain_args[128];

/* The steps that lead to each state, in order; a state is "depth"
 * steps in. */
static const struct step {
	const char *cmd;
	int code;
} steps[] = {
	{ "EHLO client.test", 250 },
	{ NULL, 235 },			/* AUTH PLAIN, auth_plain_args */
	{ "MAIL FROM:<" ADDRESS ">", 250 },
	{ "RCPT TO:<bob@example.net>", 250 },
};

static const struct tstate {
	const char *name;
	bool assume_tls;
	int depth;
	struct smtp_gate_state g;
} states[] = {
	{ "STARTTLS listener, greeted", false, 0,
	  { .tls_required = true } },
	{ "STARTTLS listener, after EHLO", false, 1,
	  { .tls_required = true, .helo = true } },
	{ "TLS, greeted", true, 0, { .tls_active = true } },
	{ "TLS, after EHLO", true, 1, { .tls_active = true, .helo = true } },
	{ "authenticated", true, 2,
	  { .tls_active = true, .helo = true, .authenticated = true } },
	{ "in a transaction", true, 3,
	  { .tls_active = true, .helo = true, .authenticated = true,
	    .in_tx = true } },
	{ "with a recipient", true, 4,
	  { .tls_active = true, .helo = true, .authenticated = true,
	    .in_tx = true, .n_rcpt = 1, .n_rcpt_tried = 1 } },
};

/* What a command the table lets through answers, and the arguments it
 * is sent with. */
static const struct proceeds {
	enum smtp_verb verb;
	const char *args;	/* NULL: auth_plain_args */
	int code;
} proceeds[] = {
	{ SMTP_VERB_EHLO, "client.test", 250 },
	{ SMTP_VERB_HELO, "client.test", 250 },
	{ SMTP_VERB_STARTTLS, "", 220 },
	{ SMTP_VERB_AUTH, NULL, 235 },
	{ SMTP_VERB_MAIL, "FROM:<" ADDRESS ">", 250 },
	{ SMTP_VERB_RCPT, "TO:<carol@example.net>", 250 },
	{ SMTP_VERB_DATA, "", 354 },
	{ SMTP_VERB_RSET, "", 250 },
	{ SMTP_VERB_NOOP, "", 250 },
	{ SMTP_VERB_QUIT, "", 221 },
	{ SMTP_VERB_VRFY, "bob", 252 },
	{ SMTP_VERB_HELP, "", 214 },
	{ SMTP_VERB_EXPN, "list", 502 },
	{ SMTP_VERB_ETRN, "example.org", 502 },
	{ SMTP_VERB_BDAT, "10 LAST", 502 },
};

static const struct proceeds *proceeds_for(enum smtp_verb verb)
{
	for (size_t i = 0; i < sizeof(proceeds) / sizeof(proceeds[0]); i++)
		if (proceeds[i].verb == verb)
			return &proceeds[i];
	return NULL;
}

/* A new session in state t; false if a step failed. */
static bool open_session(const struct tstate *t, struct client *c,
			 const char *what)
{
	struct smtp_session_host host = {
		.event = ev, .joined = joined, .gone = gone,
		.assume_tls = t->assume_tls,
	};
	struct sockaddr_storage addr = { 0 };
	struct sockaddr_in *sin = (void *)&addr;
	char line[600];
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = sv[0];
	c->len = 0;
	atomic_fetch_add(&st->refs, 1);
	if (smtp_session_new(&host, st, sv[1], &addr, LISTEN_STARTTLS) ==
	    NULL) {
		CHECK(false, "%s: smtp_session_new failed", what);
		close(c->fd);
		return false;
	}
	CHECK_INT(read_reply(c, line, sizeof(line)), 220, what);
	for (int i = 0; i < t->depth; i++) {
		const char *cmd = steps[i].cmd;
		char buf[200];
		int code;

		if (cmd == NULL) {
			snprintf(buf, sizeof(buf), "AUTH %s", auth_plain_args);
			cmd = buf;
		}
		code = command(c, cmd, line, sizeof(line));
		if (code != steps[i].code) {
			CHECK(false, "%s: reaching \"%s\": %s: got \"%s\", "
			      "want %d", what, t->name, cmd, line,
			      steps[i].code);
			return false;
		}
	}
	return true;
}

static void close_session(struct client *c)
{
	close(c->fd);
	for (int turn = 0; turn < MAX_TURNS && live_sessions > 0; turn++)
		sd_event_run(ev, 10000);
	CHECK_INT(live_sessions, 0, "sessions left after close");
}

/* One command in one state: the table's refusal, or the proceeding's
 * reply. */
static void drive(const struct tstate *t, const struct smtp_command *row,
		  const char *args)
{
	const char *refusal = smtp_command_gate(row, &t->g, args);
	const struct proceeds *pr = proceeds_for(row->verb);
	char what[300], cmd[300], line[600];
	struct client c;
	int code;

	snprintf(what, sizeof(what), "%s in state \"%s\" (args \"%s\")",
		 row->name, t->name, args);
	if (refusal == NULL && pr == NULL) {
		CHECK(false, "%s: the table lets it through, and the test "
		      "does not know what it answers: add it to proceeds[]",
		      what);
		return;
	}
	if (!open_session(t, &c, what)) {
		close(c.fd);
		return;
	}
	snprintf(cmd, sizeof(cmd), "%s%s%s", row->name, args[0] ? " " : "",
		 args);
	code = command(&c, cmd, line, sizeof(line));
	if (refusal != NULL)
		CHECK_STR(line, refusal, what);
	else
		CHECK(code == pr->code, "%s: got \"%s\", want %d", what, line,
		      pr->code);
	close_session(&c);
}

static void test_table(void)
{
	for (size_t r = 0; r < smtp_n_commands; r++) {
		const struct smtp_command *row = &smtp_commands[r];
		const struct proceeds *pr = proceeds_for(row->verb);

		for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
			const char *args = pr == NULL ? "" :
					   pr->args != NULL ? pr->args :
					   auth_plain_args;

			drive(&states[i], row, args);
			/* the argument rule of the row, broken */
			if (row->args == ARGS_NONE)
				drive(&states[i], row, "junk");
			else if (row->args == ARGS_REQUIRED)
				drive(&states[i], row, "");
		}
	}
}

/* What the table says, spelled out: the replies clients see (RFC 3207
 * §4, RFC 4954 §4, RFC 5321 §4.1.4, RFC 6409 §4.3). */
static void test_rules(void)
{
	static const struct {
		enum smtp_verb verb;
		size_t state;
		const char *args;
		const char *want;	/* NULL: taken */
	} rules[] = {
		{ SMTP_VERB_AUTH, 1, "PLAIN x",
		  "530 5.7.0 Must issue a STARTTLS command first" },
		{ SMTP_VERB_MAIL, 1, "FROM:<a@b>",
		  "530 5.7.0 Must issue a STARTTLS command first" },
		{ SMTP_VERB_DATA, 0, "",
		  "530 5.7.0 Must issue a STARTTLS command first" },
		{ SMTP_VERB_STARTTLS, 3, "", "554 5.5.1 TLS already active" },
		{ SMTP_VERB_STARTTLS, 0, "x", "501 5.5.4 Syntax: STARTTLS" },
		{ SMTP_VERB_AUTH, 2, "PLAIN x", "503 5.5.1 Send EHLO first" },
		{ SMTP_VERB_MAIL, 3, "FROM:<a@b>",
		  "530 5.7.0 Authentication required" },
		{ SMTP_VERB_AUTH, 4, "PLAIN x",
		  "503 5.5.1 Already authenticated" },
		{ SMTP_VERB_MAIL, 5, "FROM:<a@b>",
		  "503 5.5.1 Nested MAIL command" },
		{ SMTP_VERB_RCPT, 4, "TO:<a@b>", "503 5.5.1 Need MAIL command" },
		{ SMTP_VERB_DATA, 5, "", "503 5.5.1 Need RCPT command" },
		{ SMTP_VERB_DATA, 6, "x", "501 5.5.4 Syntax: DATA" },
		{ SMTP_VERB_DATA, 6, "", NULL },
		{ SMTP_VERB_EHLO, 0, "", "501 5.5.4 Syntax: EHLO hostname" },
		{ SMTP_VERB_EXPN, 4, "x", "502 5.5.1 Command not implemented" },
		{ SMTP_VERB_NOOP, 0, "", NULL },
		{ SMTP_VERB_QUIT, 0, "", NULL },
	};

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		const struct smtp_command *row = smtp_command_find(rules[i].verb);
		const char *got;
		char what[200];

		snprintf(what, sizeof(what), "rule %zu: %s in \"%s\"", i,
			 row ? row->name : "?", states[rules[i].state].name);
		if (row == NULL) {
			CHECK(false, "%s: no row", what);
			continue;
		}
		got = smtp_command_gate(row, &states[rules[i].state].g,
					rules[i].args);
		CHECK_STR(got, rules[i].want, what);
	}
	CHECK(smtp_command_find(SMTP_VERB_UNKNOWN) == NULL,
	      "an unknown verb has no row");
}

int main(void)
{
	char ir[64];
	size_t n;

	signal(SIGPIPE, SIG_IGN);
	n = (size_t)snprintf(ir, sizeof(ir), "%c%s%c%s", '\0', USER, '\0',
			     PASSWORD);
	memcpy(auth_plain_args, "PLAIN ", 6);
	n = base64_encode((const unsigned char *)ir, n, auth_plain_args + 6);
	auth_plain_args[6 + n] = '\0';
	setup(smarthost_start());
	test_rules();
	test_table();
	smarthost_stop();
	settings_put(&st);
	sd_event_unref(ev);
	return test_done("test_smtp_session");
}
