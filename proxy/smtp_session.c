/* The SMTP session: its life cycle (PROXY header, TLS, greeting, close),
 * the command table, and the dispatch of command lines through it. AUTH
 * is in smtp_auth.c, the mail transaction in smtp_tx.c. */
#include "autoconf.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth_client.h"
#include "auth_throttle.h"
#include "client_addr.h"
#include "conn_limits.h"
#include "metrics.h"
#include "proxy_proto.h"
#include "settings.h"
#include "shared_policy.h"
#include "smtp_session.h"
#include "smtp_session_int.h"
#include "strbuf.h"
#include "xalloc.h"

/* Commands handled per turn of the loop, for fairness between sessions. */
#define SESSION_COMMANDS_PER_RUN 64
/* How long a 421 may take to reach a client before we hang up anyway. */
#define SESSION_CLOSE_GRACE_USEC (5 * USEC_PER_SEC)
/* The longest reply line we send, CRLF included (RFC 5321 §4.5.3.1.5:
 * 512; a relayed text is cut to RELAY_TEXT_MAX before this). */
#define SESSION_REPLY_MAX 600

static atomic_ulong session_ids;

static void cmd_ehlo(struct smtp_session *s, const char *args);
static void cmd_helo(struct smtp_session *s, const char *args);
static void cmd_starttls(struct smtp_session *s, const char *args);
static void cmd_noop(struct smtp_session *s, const char *args);
static void cmd_quit(struct smtp_session *s, const char *args);
static void cmd_vrfy(struct smtp_session *s, const char *args);
static void cmd_help(struct smtp_session *s, const char *args);

/* What the server accepts, and when. A command is taken only if every
 * need of its row holds (checked in the order of enum smtp_need, the
 * first that fails answers); then its arguments are checked; then it
 * proceeds. A row without proceed is recognized but not implemented.
 * A verb not in the table is 500 5.5.1. */
const struct smtp_command smtp_commands[] = {
	/* RFC 5321 §4.1.1.1; §4.1.4: both reset the transaction */
	{ SMTP_VERB_EHLO, "EHLO", 0, ARGS_REQUIRED,
	  "501 5.5.4 Syntax: EHLO hostname", NULL, cmd_ehlo },
	{ SMTP_VERB_HELO, "HELO", 0, ARGS_REQUIRED,
	  "501 5.5.4 Syntax: HELO hostname", NULL, cmd_helo },
	/* RFC 3207 §4 */
	{ SMTP_VERB_STARTTLS, "STARTTLS", NEED_NO_TLS, ARGS_NONE,
	  "501 5.5.4 Syntax: STARTTLS", NULL, cmd_starttls },
	/* RFC 4954 §4: not in clear text, once, outside a transaction */
	{ SMTP_VERB_AUTH, "AUTH",
	  NEED_TLS | NEED_HELO | NEED_NO_AUTH | NEED_NO_TX, ARGS_ANY, NULL,
	  "503 5.5.1 AUTH not permitted during a mail transaction",
	  smtp_auth_cmd },
	/* RFC 6409 §4.3: submission needs authentication */
	{ SMTP_VERB_MAIL, "MAIL",
	  NEED_TLS | NEED_HELO | NEED_AUTH | NEED_NO_TX, ARGS_ANY, NULL,
	  "503 5.5.1 Nested MAIL command", smtp_tx_mail },
	{ SMTP_VERB_RCPT, "RCPT", NEED_TLS | NEED_AUTH | NEED_TX, ARGS_ANY,
	  NULL, NULL, smtp_tx_rcpt },
	{ SMTP_VERB_DATA, "DATA",
	  NEED_TLS | NEED_AUTH | NEED_TX | NEED_RCPT, ARGS_NONE,
	  "501 5.5.4 Syntax: DATA", NULL, smtp_tx_data },
	{ SMTP_VERB_RSET, "RSET", 0, ARGS_ANY, NULL, NULL, smtp_tx_rset },
	{ SMTP_VERB_NOOP, "NOOP", 0, ARGS_ANY, NULL, NULL, cmd_noop },
	{ SMTP_VERB_QUIT, "QUIT", 0, ARGS_ANY, NULL, NULL, cmd_quit },
	/* RFC 5321 §3.5.3 */
	{ SMTP_VERB_VRFY, "VRFY", 0, ARGS_ANY, NULL, NULL, cmd_vrfy },
	{ SMTP_VERB_HELP, "HELP", 0, ARGS_ANY, NULL, NULL, cmd_help },
	{ SMTP_VERB_EXPN, "EXPN", 0, ARGS_ANY, NULL, NULL, NULL },
	{ SMTP_VERB_ETRN, "ETRN", 0, ARGS_ANY, NULL, NULL, NULL },
	{ SMTP_VERB_BDAT, "BDAT", 0, ARGS_ANY, NULL, NULL, NULL },
};
const size_t smtp_n_commands = sizeof(smtp_commands) / sizeof(smtp_commands[0]);

const struct smtp_command *smtp_command_find(enum smtp_verb verb)
{
	for (size_t i = 0; i < smtp_n_commands; i++)
		if (smtp_commands[i].verb == verb)
			return &smtp_commands[i];
	return NULL;
}

const char *smtp_command_gate(const struct smtp_command *cmd,
			      const struct smtp_gate_state *g,
			      const char *args)
{
	unsigned need = cmd->need;

	if ((need & NEED_TLS) && g->tls_required)
		return "530 5.7.0 Must issue a STARTTLS command first";
	if ((need & NEED_NO_TLS) && g->tls_active)
		return "554 5.5.1 TLS already active";
	if ((need & NEED_HELO) && !g->helo)
		return "503 5.5.1 Send EHLO first";
	if ((need & NEED_AUTH) && !g->authenticated)
		return "530 5.7.0 Authentication required";
	if ((need & NEED_NO_AUTH) && g->authenticated)
		return "503 5.5.1 Already authenticated";
	if ((need & NEED_TX) && !g->in_tx)
		return "503 5.5.1 Need MAIL command";
	if ((need & NEED_NO_TX) && g->in_tx)
		return cmd->busy;
	if ((need & NEED_RCPT) && g->n_rcpt == 0)
		return g->n_rcpt_tried > 0 ? "554 5.5.1 No valid recipients" :
		       "503 5.5.1 Need RCPT command";
	if (cmd->args == ARGS_NONE && args[0] != '\0')
		return cmd->syntax;
	if (cmd->args == ARGS_REQUIRED && args[0] == '\0')
		return cmd->syntax;
	if (cmd->proceed == NULL)
		return "502 5.5.1 Command not implemented";
	return NULL;
}

/* Replies */

static void reply_v(struct smtp_session *s, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void reply_v(struct smtp_session *s, const char *fmt, va_list ap)
{
	char buf[SESSION_REPLY_MAX];
	struct strbuf sb;

	strbuf_init(&sb, buf, sizeof(buf) - 2);
	/* Most replies are fixed text. */
	if (strchr(fmt, '%') == NULL)
		strbuf_add(&sb, fmt);
	else
		strbuf_vprintf(&sb, fmt, ap);
	/* Every reply passes here: the one place 4xx and 5xx are logged. */
	session_audit_reply(s, buf, strbuf_len(&sb));
	/* a cut reply still ends its line */
	memcpy(buf + strbuf_len(&sb), "\r\n", 2);
	if (!smtp_pipe_hold(s, buf, strbuf_len(&sb) + 2))
		conn_write(s->conn, buf, strbuf_len(&sb) + 2);
}

void session_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_v(s, fmt, ap);
	va_end(ap);
}

void session_close(struct smtp_session *s)
{
	if (smtp_pipe_hold_close(s))
		return;
	s->state = S_CLOSING;
	conn_close_after_flush(s->conn);
	conn_set_deadline(s->conn, SESSION_CLOSE_GRACE_USEC);
}

void session_reply_error(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_v(s, fmt, ap);
	va_end(ap);
	if (++s->bad_commands >= s->cfg->max_bad_commands) {
		char n[16];

		snprintf(n, sizeof(n), "%u", s->bad_commands);
		saudit(s, LOG_LVL_NOTICE, "too-many-errors", "errors", n);
		session_reply(s, "421 4.7.0 %s Too many errors, closing "
			      "connection", s->cfg->hostname);
		session_close(s);
	}
}

void session_schedule_resume(struct smtp_session *s)
{
	run_queue_add(s->queue, &s->resume);
}

uint64_t session_now(struct smtp_session *s)
{
	uint64_t now = 0;

	sd_event_now(s->host.event, CLOCK_MONOTONIC, &now);
	return now;
}

bool session_tls_required(const struct smtp_session *s)
{
	return s->mode == LISTEN_STARTTLS && !conn_is_tls(s->conn) &&
	       !s->host.assume_tls;
}

void session_refuse_blocked(struct smtp_session *s)
{
	metrics_throttled(METRICS_LIMIT_AUTH_BLOCKED);
	session_reply(s, "421 4.7.0 %s Too many authentication failures from "
		      "your address, closing connection", s->cfg->hostname);
	session_close(s);
}

void session_refuse_unavailable(struct smtp_session *s, const char *code)
{
	saudit(s, LOG_LVL_WARNING, "shared-state-unavailable", "user",
	       s->user[0] ? s->user : NULL);
	session_reply(s, "%s 4.7.0 Policy service unavailable, try again "
		      "later", code);
}

/* EHLO, HELO (RFC 5321 §4.1.1.1) */

char session_no_text[] = "";

void session_set_text(char **field, const char *text, size_t max)
{
	if (*field != session_no_text)
		free(*field);
	*field = text[0] != '\0' ? xstrndup(text, max) : session_no_text;
}

static void helo_common(struct smtp_session *s, const char *args, bool ehlo)
{
	/* §4.1.4: EHLO/HELO resets the transaction. */
	smtp_tx_abandon(s);
	session_set_text(&s->helo_name, args, SESSION_HELO_MAX);
	s->helo = ehlo ? HELO_EHLO : HELO_HELO;
}

static void cmd_helo(struct smtp_session *s, const char *args)
{
	helo_common(s, args, false);
	session_reply(s, "250 %s", s->cfg->hostname);
}

static void cmd_ehlo(struct smtp_session *s, const char *args)
{
	const struct config *cfg = s->cfg;

	helo_common(s, args, true);
	session_reply(s, "250-%s", cfg->hostname);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %llu",
		      (unsigned long long)cfg->max_message_size);
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-ENHANCEDSTATUSCODES");
	session_reply(s, "250-SMTPUTF8");
	if (session_tls_required(s)) {
		/* RFC 4954 §4 / RFC 3207 §4: no AUTH offered in clear. */
		session_reply(s, "250 STARTTLS");
		return;
	}
	session_reply(s, "250 AUTH%s%s",
		      (cfg->mechanisms & AUTH_MECH_PLAIN) ? " PLAIN" : "",
		      (cfg->mechanisms & AUTH_MECH_LOGIN) ? " LOGIN" : "");
}

/* STARTTLS (RFC 3207) */

static void cmd_starttls(struct smtp_session *s, const char *args)
{
	(void)args;
	session_reply(s, "220 2.0.0 Ready to start TLS");
	s->state = S_TLS_HANDSHAKE;
	/* Drops whatever the client pipelined after STARTTLS. */
	conn_start_tls(s->conn, s->st->ssl_ctx);
	conn_set_deadline(s->conn, s->cfg->handshake_timeout_usec);
}

static void on_tls_ready(struct smtp_session *s)
{
	saudit(s, LOG_LVL_INFO, "tls", "version", conn_tls_version(s->conn),
	       "cipher", conn_tls_cipher(s->conn));
	/* RFC 3207 §4.2: forget everything learnt before TLS. */
	s->helo = HELO_NONE;
	session_set_text(&s->helo_name, "", 0);
	smtp_tx_free(&s->tx);
	s->state = S_CMD;
	if (s->mode == LISTEN_TLS)
		session_reply(s, "220 %s ESMTP authrelay", s->cfg->hostname);
	conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
}

static void cmd_noop(struct smtp_session *s, const char *args)
{
	(void)args;
	session_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_tx_abandon(s);
	relay_close(&s->relay);
	session_reply(s, "221 2.0.0 Bye");
	session_close(s);
}

static void cmd_vrfy(struct smtp_session *s, const char *args)
{
	(void)args;
	/* RFC 5321 §3.5.3 */
	session_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message");
}

static void cmd_help(struct smtp_session *s, const char *args)
{
	(void)args;
	session_reply(s, "214 2.0.0 See RFC 5321 and RFC 6409");
}

/* Dispatch */

static struct smtp_gate_state gate_state(const struct smtp_session *s)
{
	return (struct smtp_gate_state){
		.tls_required = session_tls_required(s),
		.tls_active = s->mode == LISTEN_TLS || conn_is_tls(s->conn) ||
			      s->host.assume_tls,
		.helo = s->helo != HELO_NONE,
		.authenticated = s->authenticated,
		/* with a pipelined MAIL and RCPTs (RFC 2920) still in
		 * flight, the smarthost's replies to them decide */
		.in_tx = s->tx != NULL && (s->tx->open || s->tx->mail_late ||
					   s->pending != P_NONE),
		.n_rcpt = s->tx != NULL ? TX_RCPTS(s->tx) : 0,
		.n_rcpt_tried = s->tx != NULL ? s->tx->n_rcpt_tried : 0,
	};
}

static void handle_command(struct smtp_session *s, char *line, size_t len)
{
	const struct smtp_command *cmd;
	struct smtp_gate_state g;
	struct smtp_cmd parsed;
	const char *refusal;

	s->n_commands++;
	session_audit_command(s, line, len);
	/* RFC 5321 §2.3.8: a bare CR or LF (the line reader ends lines
	 * at CR LF only) is refused with the other control octets. */
	if (smtp_cmd_parse(line, len, &parsed) < 0) {
		session_reply_error(s, "500 5.5.2 Syntax error, invalid "
				    "characters");
		return;
	}
	if (len > SMTP_CMD_LINE_MAX && parsed.verb != SMTP_VERB_AUTH) {
		session_reply_error(s, "500 5.5.2 Line too long");
		return;
	}
	cmd = smtp_command_find(parsed.verb);
	if (cmd == NULL) {
		session_reply_error(s, "500 5.5.1 Command unrecognized");
		return;
	}
	g = gate_state(s);
	refusal = smtp_command_gate(cmd, &g, parsed.args);
	if (refusal != NULL) {
		session_reply_error(s, "%s", refusal);
		return;
	}
	cmd->proceed(s, parsed.args);
}

static bool state_reads_lines(enum session_state st)
{
	return st == S_CMD || st == S_AUTH_PLAIN || st == S_AUTH_LOGIN_USER ||
	       st == S_AUTH_LOGIN_PASS;
}

static void session_process(struct smtp_session *s)
{
	struct line_reader *lr = conn_input(s->conn);

	for (int i = 0; i < SESSION_COMMANDS_PER_RUN; i++) {
		enum line_status ls;
		char *line;
		size_t len;

		if (s->state == S_DATA) {
			smtp_tx_data_process(s);
			return;
		}
		s->pipe_reading = s->state == S_RELAY_WAIT &&
				  smtp_pipe_can_read(s);
		if (!state_reads_lines(s->state) && !s->pipe_reading)
			return;
		/* The last command is answered in full. */
		if (s->state == S_CMD)
			session_audit_command_is(s, NULL);
		if (conn_output_full(s->conn))
			return;	/* resumed on CONN_EV_FLUSHED */
		if (s->stopping && s->state == S_CMD && s->tx == NULL) {
			relay_close(&s->relay);
			session_reply(s, "421 4.3.2 %s Service shutting down",
				      s->cfg->hostname);
			session_close(s);
			return;
		}
		ls = line_reader_next(lr, &line, &len);
		if (ls == LINE_NONE) {
			conn_set_reading(s->conn, true);
			return;
		}
		if (ls == LINE_TOO_LONG) {
			if (s->state != S_CMD && !s->pipe_reading) {
				smtp_auth_line_too_long(s);
			} else {
				session_audit_command_is(s, "(line too long)");
				session_reply_error(s, "500 5.5.2 Line too long");
			}
		} else if (s->state == S_CMD || s->pipe_reading) {
			handle_command(s, line, len);
		} else {
			smtp_auth_response(s, line, len);
		}
		s->pipe_reading = false;
		/* The line may have carried a password. */
		if (ls == LINE_OK)
			explicit_bzero(line, len);
		if (s->state == S_CMD)
			conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
	}
	session_schedule_resume(s);
}

static void on_resume(struct run_entry *e)
{
	session_process(RUN_ENTRY_OWNER(e, struct smtp_session, resume));
}

static int on_delay_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
	smtp_auth_on_delay(userdata);
	return 0;
}

/* Made on the first refused login only: most sessions never need it. */
int session_delay(struct smtp_session *s, uint64_t usec)
{
	if (s->delay == NULL)	/* made armed, one-shot */
		return sd_event_add_time_relative(s->host.event, &s->delay,
						  CLOCK_MONOTONIC, usec, 0,
						  on_delay_timer, s) < 0 ? -1 : 0;
	sd_event_source_set_time_relative(s->delay, usec);
	sd_event_source_set_enabled(s->delay, SD_EVENT_ONESHOT);
	return 0;
}

static void session_destroy(struct smtp_session *s);
static void proxy_header_fail(struct smtp_session *s, const char *why);

static void on_timeout(struct smtp_session *s)
{
	switch (s->state) {
	case S_PROXY_HEADER:
		/* The header must come at once, like a TLS handshake. */
		proxy_header_fail(s, "timeout");
		return;
	case S_CLOSING:
		saudit(s, LOG_LVL_INFO, "timeout", "state", "closing");
		session_destroy(s);
		return;
	case S_TLS_HANDSHAKE:
		saudit(s, LOG_LVL_NOTICE, "timeout", "state", "tls-handshake");
		session_destroy(s);
		return;
	default:
		saudit(s, LOG_LVL_NOTICE, "timeout", "state", "command");
		session_reply(s, "421 4.4.2 %s Error: timeout exceeded",
			      s->cfg->hostname);
		relay_abort(&s->relay);
		auth_lookup_cancel(&s->lookup);
		shared_call_cancel(&s->shared_call);
		smtp_auth_wipe(s);
		session_close(s);
		return;
	}
}

static void on_proxy_header(struct smtp_session *s);

static void on_conn_event(struct conn *c, enum conn_event ev, void *ctx)
{
	struct smtp_session *s = ctx;

	switch (ev) {
	case CONN_EV_INPUT:
	case CONN_EV_FLUSHED:
		session_process(s);
		break;
	case CONN_EV_TLS_READY:
		on_tls_ready(s);
		session_process(s);
		break;
	case CONN_EV_TIMEOUT:
		on_timeout(s);
		break;
	case CONN_EV_CLOSED:
		if (s->state == S_TLS_HANDSHAKE)
			saudit(s, LOG_LVL_NOTICE, "tls-failure", "peer",
			       "client", "reason", conn_tls_error(c) ?
			       conn_tls_error(c) : "connection closed");
		session_destroy(s);
		break;
	case CONN_EV_PROXY_HEADER:
		on_proxy_header(s);
		break;
	case CONN_EV_PROXY_FAILED:
		proxy_header_fail(s, conn_proxy_error(c));
		break;
	}
}

static void session_destroy(struct smtp_session *s)
{
	char cmds[24], msgs[24], fails[16], secs[24];

	snprintf(cmds, sizeof(cmds), "%lu", s->n_commands);
	snprintf(msgs, sizeof(msgs), "%lu", s->n_messages);
	snprintf(fails, sizeof(fails), "%u", s->auth_failures);
	snprintf(secs, sizeof(secs), "%llu",
		 (unsigned long long)((session_now(s) - s->start_usec) / 1000));
	saudit(s, LOG_LVL_INFO, "disconnect",
	       "user", s->user[0] ? s->user : NULL, "commands", cmds,
	       "messages", msgs, "auth_failures", fails, "duration_ms", secs);
	auth_lookup_cancel(&s->lookup);
	shared_call_cancel(&s->shared_call);
	/* Never the end of data: an unfinished message is dropped. */
	relay_abort(&s->relay);
	smtp_tx_free(&s->tx);
	smtp_pipe_free(s);
	smtp_auth_free(s);
	session_set_text(&s->helo_name, "", 0);
	run_queue_remove(s->queue, &s->resume);
	run_queue_put(s->queue);
	sd_event_source_disable_unref(s->delay);
	conn_free(&s->conn);
	if (s->limits_counted)
		limits_disconnect(&s->addr);
	atomic_fetch_sub(&stats.sessions_active, 1);
	if (s->host.gone != NULL)
		s->host.gone(s, s->host.ctx);
	settings_put(&s->st);
	free(s);
}

static void set_client(struct smtp_session *s,
		       const struct sockaddr_storage *addr)
{
	s->addr = *addr;
	s->client_port = client_addr_format(addr, s->client_ip,
					    sizeof(s->client_ip));
}

/* The client's first words: the greeting, or the TLS handshake. */
static void session_greet(struct smtp_session *s)
{
	if (s->mode == LISTEN_TLS) {
		s->state = S_TLS_HANDSHAKE;
		conn_start_tls(s->conn, s->st->ssl_ctx);
		conn_set_deadline(s->conn, s->cfg->handshake_timeout_usec);
	} else {
		s->state = S_CMD;
		session_reply(s, "220 %s ESMTP authrelay", s->cfg->hostname);
		conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
	}
}

/* An address blocked on any node is refused as server.c refuses one
 * blocked here. Redis unavailable with shared_state_failure = closed:
 * AUTH is refused later (454), the greeting is not. */
static void on_admission(void *ctx, enum policy_verdict v)
{
	struct smtp_session *s = ctx;

	if (v != POLICY_REFUSED) {
		session_greet(s);
		return;
	}
	saudit(s, LOG_LVL_NOTICE, "client-refused", "reason",
	       "address blocked after failed logins");
	if (s->mode == LISTEN_STARTTLS) {
		session_refuse_blocked(s);
		return;
	}
	session_close(s);
}

static void session_begin(struct smtp_session *s)
{
	char port[8];

	snprintf(port, sizeof(port), "%u", s->client_port);
	saudit(s, LOG_LVL_INFO, "connect", "port", port, "listener",
	       s->mode == LISTEN_TLS ? "tls" : "starttls",
	       "proxy", s->proxy_peer[0] ? s->proxy_peer : NULL);
	s->state = S_SHARED_WAIT;
	shared_policy_blocked(s->host.shared, s->st, &s->addr, session_now(s),
			      &s->shared_call, on_admission, s);
}

/* PROXY protocol: the connection reads exactly the header, before TLS
 * (conn_expect_proxy_header), and the address it carries becomes the
 * client's for limits, logs and headers. */
static void proxy_header_fail(struct smtp_session *s, const char *why)
{
	saudit(s, LOG_LVL_NOTICE, "proxy-header-invalid", "reason", why);
	session_destroy(s);
}

/* A client the header names that may not come in: refused as server.c
 * refuses one that connects directly (421 on a STARTTLS listener, where
 * there is plaintext to speak; on an implicit TLS one just the close). */
static void proxy_client_refused(struct smtp_session *s, const char *why,
				 const char *text)
{
	saudit(s, LOG_LVL_NOTICE, "proxy-header-invalid", "reason", why);
	if (s->mode != LISTEN_STARTTLS) {
		session_destroy(s);
		return;
	}
	session_reply(s, "421 4.7.0 %s %s", s->cfg->hostname, text);
	session_close(s);
}

static void on_proxy_header(struct smtp_session *s)
{
	const struct proxy_proto_result *res = conn_proxy_result(s->conn);

	snprintf(s->proxy_peer, sizeof(s->proxy_peer), "%s", s->client_ip);
	if (res->has_addr) {
		struct sockaddr_storage src = res->src;

		/* The limits were counted for the proxy; count for the
		 * client it speaks for (a balancer on a dual-stack socket
		 * may name an IPv4 client as ::ffff:a.b.c.d). */
		limits_disconnect(&s->addr);
		s->limits_counted = false;
		client_addr_normalize(&src);
		set_client(s, &src);
		if (limits_connect(&s->addr, UINT_MAX,
				   s->cfg->max_connections_per_ip) !=
		    LIMITS_OK) {
			proxy_client_refused(s, "max_connections_per_ip reached",
					     "Too many connections, try again "
					     "later");
			return;
		}
		s->limits_counted = true;
		if (auth_throttle_blocked(&s->addr, session_now(s))) {
			proxy_client_refused(s, "address blocked after failed "
					     "logins", "Too many authentication "
					     "failures from your address");
			return;
		}
	}
	session_begin(s);
}

struct smtp_session *smtp_session_new(const struct smtp_session_host *host,
				      struct settings *st, int fd,
				      const struct sockaddr_storage *addr,
				      enum listen_mode mode)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	sd_event *event = host->event;

	s->helo_name = s->user = session_no_text;
	s->address = session_no_text;
	s->host = *host;
	s->st = st;
	s->cfg = st->cfg;
	s->id = atomic_fetch_add(&session_ids, 1) + 1;
	snprintf(s->sid, sizeof(s->sid), "%lu", s->id);
	s->mode = mode;
	s->limits_counted = true;
	set_client(s, addr);
	sd_event_now(event, CLOCK_MONOTONIC, &s->start_usec);
	s->resume.run = on_resume;
	s->queue = run_queue_get(event);
	if (s->queue == NULL) {
		close(fd);
		limits_disconnect(&s->addr);
		settings_put(&s->st);
		free(s);
		return NULL;
	}
	atomic_fetch_add(&stats.sessions_active, 1);
	atomic_fetch_add(&stats.sessions_total, 1);
	/* From here on session_destroy() undoes everything. */
	if (s->host.joined != NULL)
		s->host.joined(s, s->host.ctx);
	s->conn = conn_new(event, fd, SESSION_INPUT_BUF, SMTP_AUTH_LINE_MAX,
			   on_conn_event, s);
	if (s->conn == NULL) {
		session_destroy(s);
		return NULL;
	}
	/* RFC 5321 §2.3.8: only CR LF ends a command line. */
	line_reader_set_crlf_only(conn_input(s->conn), true);
	if (s->cfg->proxy_protocol) {
		s->state = S_PROXY_HEADER;
		conn_expect_proxy_header(s->conn);
		conn_set_deadline(s->conn, s->cfg->handshake_timeout_usec);
		return s;
	}
	session_begin(s);
	return s;
}

void smtp_session_stop(struct smtp_session *s)
{
	s->stopping = true;
	session_schedule_resume(s);
}

void smtp_session_abort(struct smtp_session *s)
{
	if (s->state == S_CLOSING)
		return;
	if (s->state == S_PROXY_HEADER) {
		proxy_header_fail(s, "shutting down");
		return;
	}
	auth_lookup_cancel(&s->lookup);
	shared_call_cancel(&s->shared_call);
	smtp_auth_wipe(s);
	relay_abort(&s->relay);
	if (s->state != S_TLS_HANDSHAKE && s->state != S_PROXY_HEADER)
		session_reply(s, "421 4.3.2 %s Service shutting down",
			      s->cfg->hostname);
	session_close(s);
}

struct smtp_session *smtp_session_next(struct smtp_session *s)
{
	return s->next;
}

void smtp_session_link(struct smtp_session **head, struct smtp_session *s)
{
	s->prev = NULL;
	s->next = *head;
	if (*head != NULL)
		(*head)->prev = s;
	*head = s;
}

void smtp_session_unlink(struct smtp_session **head, struct smtp_session *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}
