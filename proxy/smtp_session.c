#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit.h"
#include "auth_cache.h"
#include "auth_client.h"
#include "auth_throttle.h"
#include "header_addr.h"
#include "header_scan.h"
#include "proxy_proto.h"
#include "rate_limit.h"
#include "conn.h"
#include "data_filter.h"
#include "relay.h"
#include "conn_limits.h"
#include "log.h"
#include "sasl.h"
#include "server.h"
#include "smtp_cmd.h"
#include "smtp_session.h"
#include "xalloc.h"

/* RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with CRLF;
 * like every submission server we take up to 1000 (the text line limit,
 * §4.5.3.1.6). */
#define SMTP_CMD_LINE_MAX 998
/* RFC 4954 §4: AUTH lines may be far longer (12288 recommended); ours
 * carry at most a 256-octet name and a 1024-octet password, so 4096
 * bounds every valid one. */
#define SMTP_AUTH_LINE_MAX 4096
#define SESSION_INPUT_BUF (SMTP_AUTH_LINE_MAX + 256)
/* Commands handled per turn of the loop, for fairness between sessions. */
#define SESSION_COMMANDS_PER_RUN 64
/* How long a 421 may take to reach a client before we hang up anyway. */
#define SESSION_CLOSE_GRACE_USEC (5 * USEC_PER_SEC)

enum session_state {
	S_PROXY_HEADER,		/* waiting for the PROXY protocol header */
	S_TLS_HANDSHAKE,	/* implicit TLS, or after STARTTLS */
	S_CMD,			/* waiting for a command */
	S_AUTH_PLAIN,		/* sent "334 ", waiting for the PLAIN response */
	S_AUTH_LOGIN_USER,	/* sent the Username: prompt */
	S_AUTH_LOGIN_PASS,	/* sent the Password: prompt */
	S_AUTH_PENDING,		/* request with an auth worker */
	S_AUTH_DELAY,		/* failure_delay before the 535 */
	S_RELAY_WAIT,		/* smarthost connecting or answering */
	S_DATA,			/* message data streaming to the smarthost */
	S_CLOSING,		/* last reply queued, closing */
};

/* The command whose smarthost reply the session waits for. */
enum relay_pending { P_NONE, P_MAIL, P_RCPT, P_DATA, P_DOT, P_RSET };

enum helo_state { HELO_NONE, HELO_HELO, HELO_EHLO };

struct smtp_session {
	struct smtp_session *prev, *next;
	struct server_thread *thread;
	struct settings *st;
	const struct config *cfg;
	struct conn *conn;
	sd_event_source *resume;	/* continue with buffered commands */
	sd_event_source *delay;		/* failure_delay timer */
	struct auth_lookup *lookup;

	unsigned long id;
	char sid[24];
	int proxy_fd;			/* the socket, until the PROXY header */
	sd_event_source *proxy_io;
	char proxy_peer[INET6_ADDRSTRLEN];	/* the balancer's address */
	bool limits_counted;
	uint64_t start_usec;
	struct sockaddr_storage addr;
	char client_ip[INET6_ADDRSTRLEN];
	unsigned client_port;
	enum listen_mode mode;
	enum session_state state;
	enum helo_state helo;
	char helo_name[256];
	bool authenticated;
	bool stopping;
	char user[AUTH_USER_MAX + 1];		/* canonical, once authenticated */
	char login_user[AUTH_USER_MAX + 1];	/* name being authenticated */
	unsigned char pw_hash[AUTH_CACHE_HASH_LEN];	/* for the cache */
	bool pw_hash_set;

	bool in_transaction;
	struct smtp_mail_args mail;
	struct smtp_rcpt_args rcpt;	/* the RCPT waiting for its reply */
	char first_rcpt[SMTP_PATH_MAX + 1];
	unsigned n_rcpt;		/* accepted by the smarthost */
	unsigned n_rcpt_tried;
	char address[AUTH_ADDRESS_MAX + 1];	/* the user's, for AUTH= */
	char **addrs;			/* all the user's, for sender_check */
	size_t n_addrs;
	char **groups;			/* its rate groups (group_rate...) */
	size_t n_groups;
	struct header_scan hs;		/* From:, Sender:, Message-ID: */
	bool hs_active;

	struct relay *relay;
	enum relay_pending pending;
	struct data_filter *df;
	bool data_refused;		/* relay lost during DATA: 451 at end */
	bool data_nul;			/* a NUL in the data: 550 at end */
	unsigned long n_messages;
	uint64_t data_start;

	unsigned bad_commands;
	unsigned auth_failures;
	bool blocked;			/* this address just got blocked */
	unsigned long n_commands;
};

static atomic_ulong session_ids;

static void session_process(struct smtp_session *s);
static void session_destroy(struct smtp_session *s);
static const char *message_id(const struct smtp_session *s);

#define slog(s, level, fmt, ...) \
	log_msg(level, "session=%lu client=%s " fmt, (s)->id, (s)->client_ip, \
		##__VA_ARGS__)
/* An audit record of this session: its id and client come first. */
#define saudit(s, level, event, ...) \
	audit(level, event, "session", (s)->sid, "client", (s)->client_ip, \
	      __VA_ARGS__, NULL)

/* Replies */

static void reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply(struct smtp_session *s, const char *fmt, ...)
{
	char buf[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;
	buf[n++] = '\r';
	buf[n++] = '\n';
	conn_write(s->conn, buf, (size_t)n);
}

static void session_close(struct smtp_session *s)
{
	s->state = S_CLOSING;
	conn_close_after_flush(s->conn);
	conn_set_deadline(s->conn, SESSION_CLOSE_GRACE_USEC);
}

/* An error reply to a bad command; too many of them end the session. */
static void reply_error(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply_error(struct smtp_session *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	reply(s, "%s", buf);
	if (++s->bad_commands >= s->cfg->max_bad_commands) {
		char n[16];

		snprintf(n, sizeof(n), "%u", s->bad_commands);
		saudit(s, LOG_LVL_NOTICE, "too-many-errors", "errors", n);
		reply(s, "421 4.7.0 %s Too many errors, closing connection",
		      s->cfg->hostname);
		session_close(s);
	}
}

/* What cmd_data set up for a data phase. */
static void data_state_free(struct smtp_session *s)
{
	data_filter_free(&s->df);
	s->data_refused = false;
	s->data_nul = false;
	if (s->hs_active)
		header_scan_free(&s->hs);
	s->hs_active = false;
}

static void transaction_reset(struct smtp_session *s)
{
	s->in_transaction = false;
	memset(&s->mail, 0, sizeof(s->mail));
	s->first_rcpt[0] = '\0';
	s->n_rcpt = 0;
	s->n_rcpt_tried = 0;
	data_state_free(s);
}

/* A transaction the smarthost knows about cannot just be forgotten: drop
 * that connection (the next MAIL opens another). */
static void transaction_abandon(struct smtp_session *s)
{
	if (s->in_transaction)
		relay_abort(&s->relay);
	transaction_reset(s);
}

static void schedule_resume(struct smtp_session *s)
{
	sd_event_source_set_enabled(s->resume, SD_EVENT_ONESHOT);
}

/* EHLO, HELO (RFC 5321 §4.1.1.1) */

static bool tls_required(const struct smtp_session *s)
{
	return s->mode == LISTEN_STARTTLS && !conn_is_tls(s->conn);
}

static void cmd_ehlo(struct smtp_session *s, const char *args, bool ehlo)
{
	const struct config *cfg = s->cfg;

	if (args[0] == '\0') {
		reply_error(s, "501 5.5.4 Syntax: %s hostname",
			    ehlo ? "EHLO" : "HELO");
		return;
	}
	/* §4.1.4: EHLO/HELO resets the transaction. */
	transaction_abandon(s);
	snprintf(s->helo_name, sizeof(s->helo_name), "%s", args);
	s->helo = ehlo ? HELO_EHLO : HELO_HELO;
	if (!ehlo) {
		reply(s, "250 %s", cfg->hostname);
		return;
	}
	reply(s, "250-%s", cfg->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %llu", (unsigned long long)cfg->max_message_size);
	reply(s, "250-8BITMIME");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-SMTPUTF8");
	if (tls_required(s)) {
		/* RFC 4954 §4 / RFC 3207 §4: no AUTH offered in clear. */
		reply(s, "250 STARTTLS");
		return;
	}
	reply(s, "250 AUTH%s%s",
	      (cfg->mechanisms & AUTH_MECH_PLAIN) ? " PLAIN" : "",
	      (cfg->mechanisms & AUTH_MECH_LOGIN) ? " LOGIN" : "");
}

/* STARTTLS (RFC 3207) */

static void cmd_starttls(struct smtp_session *s, const char *args)
{
	if (s->mode == LISTEN_TLS || conn_is_tls(s->conn)) {
		reply_error(s, "554 5.5.1 TLS already active");
		return;
	}
	if (args[0] != '\0') {
		reply_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
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
	s->helo_name[0] = '\0';
	transaction_reset(s);
	s->state = S_CMD;
	if (s->mode == LISTEN_TLS)
		reply(s, "220 %s ESMTP authrelay", s->cfg->hostname);
	conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
}

/* AUTH (RFC 4954) */

static void auth_wipe(struct smtp_session *s)
{
	explicit_bzero(s->login_user, sizeof(s->login_user));
	explicit_bzero(s->pw_hash, sizeof(s->pw_hash));
	s->pw_hash_set = false;
}

static uint64_t now_usec(struct smtp_session *s)
{
	uint64_t now = 0;

	sd_event_now(server_event(s->thread), CLOCK_MONOTONIC, &now);
	return now;
}

static void refuse_blocked(struct smtp_session *s)
{
	reply(s, "421 4.7.0 %s Too many authentication failures from "
	      "your address, closing connection", s->cfg->hostname);
	session_close(s);
}

static void on_auth_delay(struct smtp_session *s)
{
	s->state = S_CMD;
	if (s->blocked) {
		refuse_blocked(s);
		return;
	}
	reply(s, "535 5.7.8 Authentication credentials invalid");
	conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
	schedule_resume(s);
}

static void proxy_header_fail(struct smtp_session *s, const char *why);

static int on_delay_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct smtp_session *s = userdata;

	if (s->state == S_PROXY_HEADER)
		proxy_header_fail(s, "timeout");
	else
		on_auth_delay(s);
	return 0;
}

/* Every refusal gets the same 535, after the same delay, whatever the
 * cause: the client learns nothing about which part was wrong. */
static void auth_refuse(struct smtp_session *s, const char *reason)
{
	s->auth_failures++;
	atomic_fetch_add(&stats.auth_failed, 1);
	uint64_t delay = auth_throttle_failure(s->cfg, &s->addr,
					       s->login_user, now_usec(s),
					       &s->blocked);

	/* fail2ban: contrib/fail2ban matches this record's client=. */
	saudit(s, LOG_LVL_NOTICE, "auth-failure", "user", s->login_user,
	       "reason", reason);
	if (s->blocked)
		saudit(s, LOG_LVL_WARNING, "client-blocked", "user",
		       s->login_user, "reason", "too many failed logins");
	auth_wipe(s);
	s->state = S_AUTH_DELAY;
	if (delay == 0) {
		on_auth_delay(s);
		return;
	}
	sd_event_source_set_time_relative(s->delay, delay);
	sd_event_source_set_enabled(s->delay, SD_EVENT_ONESHOT);
}

static void on_auth_reply(const struct auth_reply *rep, void *ctx)
{
	struct smtp_session *s = ctx;

	s->lookup = NULL;
	switch (rep->result) {
	case AUTH_OK:
		s->authenticated = true;
		snprintf(s->user, sizeof(s->user), "%s",
			 rep->user[0] ? rep->user : s->login_user);
		atomic_fetch_add(&stats.auth_ok, 1);
		saudit(s, LOG_LVL_INFO, "auth-ok", "user", s->user,
		       "login", s->login_user, "cached",
		       strcmp(rep->reason, "cached") == 0 ? "yes" : "no");
		if (s->pw_hash_set)
			auth_cache_store(s->login_user, s->pw_hash, rep,
					 now_usec(s), s->cfg->cache_ttl_usec);
		auth_throttle_success(&s->addr, s->login_user);
		for (size_t i = 0; i < rep->n_address; i++)
			slog(s, LOG_LVL_DEBUG, "user=\"%s\" address=\"%s\"",
			     s->user, rep->address[i]);
		for (size_t i = 0; i < rep->n_address; i++) {
			s->addrs = xreallocarray(s->addrs, s->n_addrs + 1,
						 sizeof(*s->addrs));
			s->addrs[s->n_addrs++] = xstrdup(rep->address[i]);
		}
		for (size_t i = 0; i < rep->n_group; i++) {
			s->groups = xreallocarray(s->groups, s->n_groups + 1,
						  sizeof(*s->groups));
			s->groups[s->n_groups++] = xstrdup(rep->group[i]);
		}
		if (rep->n_address > 0)
			snprintf(s->address, sizeof(s->address), "%s",
				 rep->address[0]);
		else if (strchr(s->user, '@') != NULL)
			snprintf(s->address, sizeof(s->address), "%s", s->user);
		auth_wipe(s);
		s->state = S_CMD;
		reply(s, "235 2.7.0 Authentication successful");
		break;
	case AUTH_PERMFAIL:
		/* A refused password for a cached name: the directory has
		 * changed or someone guesses; either way, ask it next time. */
		auth_cache_forget(s->login_user);
		auth_refuse(s, rep->reason[0] ? rep->reason : "refused");
		return;
	case AUTH_TEMPFAIL:
	default:
		atomic_fetch_add(&stats.auth_tempfail, 1);
		saudit(s, LOG_LVL_WARNING, "auth-tempfail", "user",
		       s->login_user, "reason", rep->reason);
		auth_wipe(s);
		s->state = S_CMD;
		reply(s, "454 4.7.0 Temporary authentication failure");
		break;
	}
	conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
	schedule_resume(s);
}

static void auth_submit(struct smtp_session *s, struct sasl_credentials *cr)
{
	snprintf(s->login_user, sizeof(s->login_user), "%s", cr->user);
	if (cr->password[0] == '\0') {
		/* Never offer an empty password to a backend (RFC 4513
		 * §5.1.2: it would be an unauthenticated bind). */
		explicit_bzero(cr, sizeof(*cr));
		auth_refuse(s, "empty password");
		return;
	}
	if (s->cfg->cache_ttl_usec > 0 &&
	    auth_cache_hash(cr->user, cr->password, s->pw_hash) == 0) {
		struct auth_reply rep;
		uint64_t now = 0;

		sd_event_now(server_event(s->thread), CLOCK_MONOTONIC, &now);
		s->pw_hash_set = true;
		if (auth_cache_lookup(cr->user, s->pw_hash, now, &rep)) {
			explicit_bzero(cr, sizeof(*cr));
			s->pw_hash_set = false;	/* already stored */
			on_auth_reply(&rep, s);
			return;
		}
	}
	s->state = S_AUTH_PENDING;
	conn_set_deadline(s->conn, 0);
	s->lookup = auth_pool_lookup(server_auth_pool(s->thread), cr->user,
				     cr->password, s->client_ip,
				     on_auth_reply, s);
	explicit_bzero(cr, sizeof(*cr));
}

static void auth_syntax_error(struct smtp_session *s, enum sasl_status st)
{
	auth_wipe(s);
	s->state = S_CMD;
	switch (st) {
	case SASL_AUTHZID_MISMATCH:
		/* Not a syntax error: a refusal like any other. */
		auth_refuse(s, "authorization identity differs from login");
		return;
	case SASL_TOO_LONG:
		reply_error(s, "501 5.5.2 Authentication data too long");
		return;
	case SASL_BAD_BASE64:
		reply_error(s, "501 5.5.2 Invalid base64 data");
		return;
	default:
		reply_error(s, "501 5.5.2 Malformed authentication data");
		return;
	}
}

static void auth_plain(struct smtp_session *s, const char *b64, size_t len)
{
	struct sasl_credentials cr;
	enum sasl_status st;

	/* RFC 4954 §4: "=" is a zero-length initial response. */
	if (len == 1 && b64[0] == '=')
		len = 0;
	st = sasl_plain_decode(b64, len, &cr);
	if (st != SASL_OK) {
		auth_syntax_error(s, st);
		return;
	}
	auth_submit(s, &cr);
}

static void auth_login_user(struct smtp_session *s, const char *b64,
			    size_t len)
{
	enum sasl_status st = sasl_login_decode(b64, len, s->login_user,
						AUTH_USER_MAX);

	if (st != SASL_OK) {
		auth_syntax_error(s, st);
		return;
	}
	s->state = S_AUTH_LOGIN_PASS;
	reply(s, "334 " SASL_LOGIN_PROMPT_PASS);
}

static void auth_login_pass(struct smtp_session *s, const char *b64,
			    size_t len)
{
	struct sasl_credentials cr;
	enum sasl_status st;

	st = sasl_login_decode(b64, len, cr.password, AUTH_PASSWORD_MAX);
	if (st != SASL_OK) {
		explicit_bzero(&cr, sizeof(cr));
		auth_syntax_error(s, st);
		return;
	}
	snprintf(cr.user, sizeof(cr.user), "%s", s->login_user);
	auth_submit(s, &cr);
}

/* A line in one of the SASL exchange states. */
static void auth_response(struct smtp_session *s, const char *line,
			  size_t len)
{
	/* RFC 4954 §4: "*" cancels the exchange. */
	if (len == 1 && line[0] == '*') {
		auth_wipe(s);
		s->state = S_CMD;
		reply_error(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	switch (s->state) {
	case S_AUTH_PLAIN:
		auth_plain(s, line, len);
		break;
	case S_AUTH_LOGIN_USER:
		auth_login_user(s, line, len);
		break;
	case S_AUTH_LOGIN_PASS:
		auth_login_pass(s, line, len);
		break;
	default:
		break;
	}
}

static void cmd_auth(struct smtp_session *s, const char *args)
{
	char mech_name[32];
	const char *ir;
	size_t n = strcspn(args, " ");
	enum sasl_mech mech;

	if (tls_required(s)) {
		reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (s->helo == HELO_NONE) {
		reply_error(s, "503 5.5.1 Send EHLO first");
		return;
	}
	if (s->authenticated) {
		reply_error(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (s->in_transaction) {
		reply_error(s, "503 5.5.1 AUTH not permitted during a mail transaction");
		return;
	}
	if (auth_throttle_blocked(&s->addr, now_usec(s))) {
		refuse_blocked(s);
		return;
	}
	if (n == 0 || n >= sizeof(mech_name)) {
		reply_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	memcpy(mech_name, args, n);
	mech_name[n] = '\0';
	mech = sasl_mech_parse(mech_name);
	if ((mech == SASL_MECH_PLAIN && !(s->cfg->mechanisms & AUTH_MECH_PLAIN)) ||
	    (mech == SASL_MECH_LOGIN && !(s->cfg->mechanisms & AUTH_MECH_LOGIN)))
		mech = SASL_MECH_NONE;
	if (mech == SASL_MECH_NONE) {
		reply_error(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	ir = args + n;
	while (*ir == ' ')
		ir++;
	if (strchr(ir, ' ') != NULL) {
		reply_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if (mech == SASL_MECH_PLAIN) {
		if (*ir == '\0') {
			s->state = S_AUTH_PLAIN;
			reply(s, "334 ");
		} else {
			auth_plain(s, ir, strlen(ir));
		}
		return;
	}
	if (*ir == '\0') {
		s->state = S_AUTH_LOGIN_USER;
		reply(s, "334 " SASL_LOGIN_PROMPT_USER);
	} else {
		/* Clients that send the user name as initial response. */
		s->state = S_AUTH_LOGIN_USER;
		auth_login_user(s, ir, strlen(ir));
	}
}

/* Mail transaction (RFC 5321 §3.3, RFC 6409) */

static bool may_transact(struct smtp_session *s)
{
	if (tls_required(s)) {
		reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
		return false;
	}
	if (!s->authenticated) {
		reply_error(s, "530 5.7.0 Authentication required");
		return false;
	}
	return true;
}

/* The smarthost's reply, passed on as it is (RFC 3463 code included). */
static void reply_relayed(struct smtp_session *s, const struct relay_reply *rep)
{
	reply(s, "%d %s %s", rep->code, rep->enhanced, rep->text);
}

static void relay_send_mail(struct smtp_session *s)
{
	struct relay_reply rep;

	s->pending = P_MAIL;
	s->state = S_RELAY_WAIT;
	if (relay_mail(s->relay, &s->mail, &rep) < 0) {
		s->pending = P_NONE;
		s->state = S_CMD;
		transaction_reset(s);
		reply_relayed(s, &rep);
	}
}

static void end_of_data(struct smtp_session *s, const struct relay_reply *rep)
{
	uint64_t now = 0;

	char rcpts[16], size[24], code[32], ms[24], *qid;

	sd_event_now(server_event(s->thread), CLOCK_MONOTONIC, &now);
	snprintf(rcpts, sizeof(rcpts), "%u", s->n_rcpt);
	snprintf(size, sizeof(size), "%llu",
		 (unsigned long long)(s->df ? data_filter_size(s->df) : 0));
	snprintf(code, sizeof(code), "%d %s", rep->code, rep->enhanced);
	snprintf(ms, sizeof(ms), "%llu",
		 (unsigned long long)((now - s->data_start) / 1000));
	/* Postfix, Exchange and most others: "... queued as ID". */
	qid = strstr(rep->text, "queued as ");
	saudit(s, rep->code / 100 == 2 ? LOG_LVL_INFO : LOG_LVL_NOTICE,
	       "message", "user", s->user, "from", s->mail.path,
	       "rcpts", rcpts, "size", size, "message_id", message_id(s),
	       "smarthost", s->relay ? relay_host(s->relay) : NULL,
	       "reply", code, "reply_text", rep->text,
	       "queue_id", qid ? qid + 10 : NULL, "duration_ms", ms);
	if (rep->code / 100 == 2)
		s->n_messages++;
	reply_relayed(s, rep);
	transaction_reset(s);
}

static void on_relay_event(struct relay *r, enum relay_event ev,
			   const struct relay_reply *rep, void *ctx)
{
	struct smtp_session *s = ctx;
	enum relay_pending p = s->pending;

	switch (ev) {
	case RELAY_EV_READY:
		if (p == P_MAIL)
			relay_send_mail(s);
		return;
	case RELAY_EV_DRAINED:
		conn_set_reading(s->conn, true);
		schedule_resume(s);
		return;
	case RELAY_EV_FAILED:
		relay_abort(&s->relay);
		s->pending = P_NONE;
		if (s->state == S_DATA) {
			/* Read the client's message to its end, then 451. */
			s->data_refused = true;
			schedule_resume(s);
			return;
		}
		if (p == P_NONE)
			return;	/* idle: the next MAIL reconnects */
		saudit(s, LOG_LVL_WARNING, "relay-failure", "user", s->user,
		       "reason", rep->text);
		/* Lost at a RCPT, the transaction stays open: the client's
		 * pipelined RCPTs and DATA get 451 too (relay_gone), not a
		 * permanent 503 that would bounce a recipient. */
		if (p != P_RCPT)
			transaction_reset(s);
		s->state = S_CMD;
		/* SPEC: a smarthost that cannot be reached is 451 4.4.1; no
		 * OAuth2 token for it (relay.c says 4.7.0) is a security
		 * failure of ours, temporary too (RFC 3463 §3.8). */
		if (strcmp(rep->enhanced, "4.7.0") == 0)
			reply(s, "451 4.7.0 Smarthost authentication "
			      "unavailable, try again later");
		else
			reply(s, "451 4.4.1 Smarthost unavailable, try again "
			      "later");
		break;
	case RELAY_EV_REPLY:
		s->pending = P_NONE;
		s->state = S_CMD;
		switch (p) {
		case P_MAIL:
			if (rep->code / 100 == 2)
				s->in_transaction = true;
			else
				transaction_reset(s);
			reply_relayed(s, rep);
			break;
		case P_RCPT:
			if (rep->code / 100 == 2) {
				if (s->n_rcpt == 0)
					snprintf(s->first_rcpt,
						 sizeof(s->first_rcpt), "%s",
						 s->rcpt.path);
				s->n_rcpt++;
			}
			reply_relayed(s, rep);
			break;
		case P_DATA:
			if (rep->code != 354) {
				/* No data phase; another DATA sets it up anew
				 * (without this, each one leaked a filter). */
				data_state_free(s);
				reply_relayed(s, rep);
				break;
			}
			s->state = S_DATA;
			reply(s, "354 End data with <CR><LF>.<CR><LF>");
			conn_set_deadline(s->conn, s->cfg->data_timeout_usec);
			break;
		case P_DOT:
			end_of_data(s, rep);
			break;
		case P_RSET:
			transaction_reset(s);
			reply_relayed(s, rep);
			break;
		case P_NONE:
			break;
		}
		break;
	}
	conn_set_deadline(s->conn, s->state == S_DATA ?
			  s->cfg->data_timeout_usec :
			  s->cfg->command_timeout_usec);
	schedule_resume(s);
}

/* The user's limit: the first group_rate (or group_recipient_rate) entry
 * whose group the user is in, else user_rate (user_recipient_rate). */
static const struct config_rate *user_limit(const struct smtp_session *s,
					    bool recipients)
{
	const struct config *cfg = s->cfg;
	const struct config_group_rate *g = recipients ?
		cfg->group_recipient_rate : cfg->group_rate;
	size_t n = recipients ? cfg->n_group_recipient_rate : cfg->n_group_rate;

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < s->n_groups; j++)
			if (strcmp(g[i].group, s->groups[j]) == 0)
				return &g[i].rate;
	return recipients ? &cfg->user_recipient_rate : &cfg->user_rate;
}

/* Sender check ([policy] sender_check): is addr one of the user's? */
static bool owns_address(const struct smtp_session *s, const char *addr)
{
	for (size_t i = 0; i < s->n_addrs; i++)
		if (header_addr_equal(addr, s->addrs[i], 1))
			return true;
	return false;
}

static bool check_envelope(const struct smtp_session *s)
{
	return s->cfg->sender_check == SENDER_CHECK_ENVELOPE ||
	       s->cfg->sender_check == SENDER_CHECK_BOTH;
}

static bool check_header(const struct smtp_session *s)
{
	return s->cfg->sender_check == SENDER_CHECK_HEADER ||
	       s->cfg->sender_check == SENDER_CHECK_BOTH;
}

/* NULL if the From: and Sender: fields are all the user's, else the
 * reason for the 553 (written to buf). */
static const char *header_sender_problem(struct smtp_session *s, char *buf,
					 size_t size)
{
	unsigned n_from = 0;

	header_scan_finish(&s->hs);
	if (s->hs.overflow)
		return "Header section too unusual to check the sender";
	for (size_t i = 0; i < s->hs.n; i++) {
		const struct header_scan_value *v = &s->hs.v[i];
		struct header_addrs a = { .n = 0 };

		if (v->field == HS_MESSAGE_ID)
			continue;
		if (v->field == HS_FROM)
			n_from++;
		if (header_addr_parse(v->value, v->len, &a) < 0 || a.n == 0) {
			snprintf(buf, size, "Cannot parse the %s: header",
				 v->field == HS_FROM ? "From" : "Sender");
			return buf;
		}
		/* RFC 5322 §3.6.2: Sender: is one mailbox. */
		if (v->field == HS_SENDER && a.n != 1)
			return "Sender: must name one mailbox";
		for (size_t j = 0; j < a.n; j++) {
			if (!owns_address(s, a.addr[j])) {
				snprintf(buf, size, "%s: address <%.200s> is "
					 "not yours", v->field == HS_FROM ?
					 "From" : "Sender", a.addr[j]);
				return buf;
			}
		}
	}
	/* RFC 5322 §3.6: exactly one From:. Two would let a mail reader
	 * show the one nobody checked. */
	if (n_from == 0)
		return "Message has no From: header";
	if (n_from > 1)
		return "Message has more than one From: header";
	return NULL;
}

static const char *message_id(const struct smtp_session *s)
{
	for (size_t i = 0; s->hs_active && i < s->hs.n; i++)
		if (s->hs.v[i].field == HS_MESSAGE_ID)
			return s->hs.v[i].value + strspn(s->hs.v[i].value, " \t");
	return NULL;
}

static void cmd_mail(struct smtp_session *s, const char *args)
{
	struct smtp_arg_error err;

	if (tls_required(s)) {
		reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (s->helo == HELO_NONE) {
		reply_error(s, "503 5.5.1 Send EHLO first");
		return;
	}
	if (!may_transact(s))
		return;
	if (s->in_transaction) {
		reply_error(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (smtp_parse_mail(args, &s->mail, &err) < 0) {
		reply_error(s, "%d %s %s", err.code, err.enhanced, err.text);
		return;
	}
	/* RFC 1870 §6.2 */
	if (s->mail.has_size && s->mail.size > s->cfg->max_message_size) {
		reply_error(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	if (check_envelope(s)) {
		if (s->mail.path[0] == '\0' && !s->cfg->allow_null_sender) {
			saudit(s, LOG_LVL_NOTICE, "sender-refused", "user",
			       s->user, "from", "<>");
			reply_error(s, "553 5.7.1 Null sender not permitted "
				    "for submission");
			return;
		}
		if (s->mail.path[0] != '\0' && !owns_address(s, s->mail.path)) {
			saudit(s, LOG_LVL_NOTICE, "sender-refused", "user",
			       s->user, "from", s->mail.path);
			reply_error(s, "553 5.7.1 Sender address <%.200s> is "
				    "not yours", s->mail.path);
			return;
		}
	}
	if (!rate_limit_take(RATE_MESSAGES, user_limit(s, false), s->user, 1,
			     now_usec(s))) {
		saudit(s, LOG_LVL_NOTICE, "rate-limit", "user", s->user,
		       "limit", "messages");
		reply(s, "450 4.7.1 Message rate limit exceeded, try again later");
		return;
	}
	s->n_rcpt = 0;
	s->n_rcpt_tried = 0;
	if (s->relay == NULL) {
		char sid[32];
		struct relay_identity id = {
			.login = s->user,
			.address = s->address[0] ? s->address : NULL,
			.client_ip = s->client_ip,
			.session_id = sid,
		};

		snprintf(sid, sizeof(sid), "%lu", s->id);
		s->relay = relay_open(server_event(s->thread), s->st, &id,
				      on_relay_event, s);
		if (s->relay == NULL) {
			reply(s, "451 4.4.1 Smarthost unavailable, try again later");
			return;
		}
		s->pending = P_MAIL;
		s->state = S_RELAY_WAIT;
		conn_set_deadline(s->conn, 0);
		return;
	}
	relay_send_mail(s);
}

/* The smarthost hung up while the client was between the commands of a
 * transaction (RELAY_EV_FAILED with nothing pending drops s->relay): the
 * transaction cannot go on, and the client learns it now. It stays open
 * until RSET, so pipelined RCPTs all get the same temporary failure. */
static bool relay_gone(struct smtp_session *s)
{
	if (s->relay != NULL)
		return false;
	reply(s, "451 4.4.1 Smarthost connection lost, try again later");
	return true;
}

static void cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_arg_error err;

	if (!may_transact(s))
		return;
	if (!s->in_transaction) {
		reply_error(s, "503 5.5.1 Need MAIL command");
		return;
	}
	if (smtp_parse_rcpt(args, &s->rcpt, &err) < 0) {
		reply_error(s, "%d %s %s", err.code, err.enhanced, err.text);
		return;
	}
	/* RFC 6531 §3.4: a non-ASCII address needs SMTPUTF8 on MAIL. */
	if (!s->mail.smtputf8) {
		for (const unsigned char *p = (const void *)s->rcpt.path; *p;
		     p++) {
			if (*p >= 0x80) {
				reply_error(s, "553 5.6.7 Non-ASCII recipient "
					    "needs SMTPUTF8");
				return;
			}
		}
	}
	if (relay_gone(s))
		return;
	if (s->n_rcpt >= s->cfg->max_recipients) {
		/* RFC 5321 §4.5.3.1.10: a temporary failure, the client
		 * sends the rest in another transaction. */
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (!rate_limit_take(RATE_RECIPIENTS, user_limit(s, true), s->user, 1,
			     now_usec(s))) {
		saudit(s, LOG_LVL_NOTICE, "rate-limit", "user", s->user,
		       "limit", "recipients");
		reply(s, "450 4.7.1 Recipient rate limit exceeded, try again later");
		return;
	}
	s->n_rcpt_tried++;
	s->pending = P_RCPT;
	s->state = S_RELAY_WAIT;
	relay_rcpt(s->relay, &s->rcpt);
}

/* Our header lines, CRLF-terminated, for the top of the message. */
static char *tag_headers(struct smtp_session *s)
{
	char date[64], helo[80], user[AUTH_USER_MAX + 1], rcpt[SMTP_PATH_MAX + 16];
	const char *hdr = s->cfg->identity_header;
	time_t now = time(NULL);
	struct tm tm;
	size_t i;

	/* identity_header = (empty): no such header, not ": USER". */
	if (hdr != NULL && hdr[0] == '\0')
		hdr = NULL;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* Client-chosen strings go into a structured header: keep them to
	 * characters that cannot end a comment or a line. */
	for (i = 0; s->helo_name[i] && i < sizeof(helo) - 1; i++) {
		char c = s->helo_name[i];
		helo[i] = (c > ' ' && c <= '~' && c != '(' && c != ')' &&
			   c != '\\' && c != ';') ? c : '?';
	}
	helo[i] = '\0';
	for (i = 0; s->user[i] && i < sizeof(user) - 1; i++) {
		char c = s->user[i];
		user[i] = (c >= ' ' && c <= '~' && c != '(' && c != ')' &&
			   c != '\\') ? c : '?';
	}
	user[i] = '\0';
	rcpt[0] = '\0';
	/* RFC 5321 §4.4: "for" only with a single recipient. */
	if (s->n_rcpt == 1 && strpbrk(s->first_rcpt, "\r\n") == NULL)
		snprintf(rcpt, sizeof(rcpt), "\r\n\tfor <%s>", s->first_rcpt);
	return xasprintf("Received: from %s ([%s])\r\n"
			 "\tby %s (authrelay) with ESMTPSA id %lu.%lu\r\n"
			 "\t(version=%s cipher=%s)\r\n"
			 "\t(Authenticated sender: %s)%s;\r\n"
			 "\t%s\r\n"
			 "%s%s%s%s",
			 helo, s->client_ip, s->cfg->hostname,
			 s->id, s->n_messages + 1,
			 conn_tls_version(s->conn) ? conn_tls_version(s->conn) : "none",
			 conn_tls_cipher(s->conn) ? conn_tls_cipher(s->conn) : "none",
			 user, rcpt, date,
			 hdr ? hdr : "", hdr ? ": " : "", hdr ? user : "",
			 hdr ? "\r\n" : "");
}

static void data_emit(const char *buf, size_t len, void *ctx)
{
	struct smtp_session *s = ctx;

	/* RFC 5321 §4.5.2 / RFC 6152: NUL is not text. A smarthost that
	 * drops NULs would see "CRLF NUL . CRLF" as an end of data and the
	 * rest as commands (SMTP smuggling): nothing with a NUL goes up. */
	if (!s->data_nul && memchr(buf, '\0', len) != NULL)
		s->data_nul = true;
	if (s->data_nul)
		return;
	if (s->hs_active && !s->hs.done)
		header_scan_feed(&s->hs, buf, len);
	if (s->relay != NULL && !s->data_refused)
		relay_data_write(s->relay, buf, len);
}

static void cmd_data(struct smtp_session *s, const char *args)
{
	char *prepend;

	if (!may_transact(s))
		return;
	if (!s->in_transaction) {
		reply_error(s, "503 5.5.1 Need MAIL command");
		return;
	}
	if (s->n_rcpt == 0) {
		if (s->n_rcpt_tried > 0)
			reply_error(s, "554 5.5.1 No valid recipients");
		else
			reply_error(s, "503 5.5.1 Need RCPT command");
		return;
	}
	if (args[0] != '\0') {
		reply_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (relay_gone(s))
		return;
	header_scan_init(&s->hs);
	s->hs_active = true;
	prepend = tag_headers(s);
	s->df = data_filter_new(s->cfg->bare_newline, s->cfg->max_message_size,
				prepend, s->cfg->identity_header, data_emit, s);
	free(prepend);
	sd_event_now(server_event(s->thread), CLOCK_MONOTONIC, &s->data_start);
	s->pending = P_DATA;
	s->state = S_RELAY_WAIT;
	relay_data(s->relay);
}

static void cmd_rset(struct smtp_session *s)
{
	if (s->relay != NULL && s->in_transaction) {
		s->pending = P_RSET;
		s->state = S_RELAY_WAIT;
		relay_rset(s->relay);
		return;
	}
	transaction_reset(s);
	reply(s, "250 2.0.0 Ok");
}

/* Client octets after the 354, through the filter to the smarthost. */
static void data_process(struct smtp_session *s)
{
	struct line_reader *lr = conn_input(s->conn);
	enum data_filter_status st;
	const char *buf;
	size_t len, used;

	for (int i = 0; i < SESSION_COMMANDS_PER_RUN; i++) {
		if (s->relay != NULL && relay_data_full(s->relay)) {
			/* Stop reading the client as well, until
			 * RELAY_EV_DRAINED: a client connection that keeps
			 * reading (TLS records pending) is dispatched before
			 * the younger relay connection and starves it. */
			conn_set_reading(s->conn, false);
			return;
		}
		buf = line_reader_peek(lr, &len);
		if (len == 0) {
			conn_set_reading(s->conn, true);
			return;
		}
		st = data_filter_feed(s->df, buf, len, &used);
		line_reader_consume(lr, used);
		if (st == DATA_FILTER_MORE) {
			conn_set_deadline(s->conn, s->cfg->data_timeout_usec);
			continue;
		}
		s->state = S_CMD;
		conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
		if (s->data_refused) {
			saudit(s, LOG_LVL_WARNING, "message-refused", "user",
			       s->user, "from", s->mail.path,
			       "reason", "smarthost lost during DATA");
			transaction_reset(s);
			reply(s, "451 4.4.1 Smarthost connection lost, try again later");
			return;
		}
		if (st == DATA_FILTER_DONE && s->data_nul) {
			relay_abort(&s->relay);
			saudit(s, LOG_LVL_NOTICE, "message-refused", "user",
			       s->user, "from", s->mail.path, "reason",
			       "NUL character");
			transaction_reset(s);
			reply(s, "550 5.6.0 Message contains NUL characters");
			return;
		}
		if (st != DATA_FILTER_DONE) {
			/* Never end the data upstream: the smarthost drops
			 * the unfinished message with the connection. */
			relay_abort(&s->relay);
			saudit(s, LOG_LVL_NOTICE, "message-refused", "user",
			       s->user, "from", s->mail.path, "reason",
			       st == DATA_FILTER_TOO_BIG ? "too big"
			       : "bare CR or LF");
			transaction_reset(s);
			if (st == DATA_FILTER_TOO_BIG)
				reply(s, "552 5.3.4 Message size exceeds fixed limit");
			else
				reply(s, "550 5.5.2 Message contains bare CR or LF "
				      "(RFC 5321 section 2.3.8)");
			return;
		}
		if (check_header(s)) {
			char why[300];
			const char *problem = header_sender_problem(s, why,
								    sizeof(why));

			if (problem != NULL) {
				/* Never end the data: nothing is delivered. */
				relay_abort(&s->relay);
				saudit(s, LOG_LVL_NOTICE, "sender-refused",
				       "user", s->user, "from", s->mail.path,
				       "message_id", message_id(s),
				       "reason", problem);
				transaction_reset(s);
				reply(s, "553 5.7.1 %s", problem);
				return;
			}
		}
		s->pending = P_DOT;
		s->state = S_RELAY_WAIT;
		conn_set_deadline(s->conn, 0);
		relay_data_end(s->relay);
		return;
	}
	schedule_resume(s);
}

/* Dispatch */

static void handle_command(struct smtp_session *s, char *line, size_t len)
{
	struct smtp_cmd cmd;

	s->n_commands++;
	if (smtp_cmd_parse(line, len, &cmd) < 0) {
		reply_error(s, "500 5.5.2 Syntax error, invalid characters");
		return;
	}
	if (len > SMTP_CMD_LINE_MAX && cmd.verb != SMTP_VERB_AUTH) {
		reply_error(s, "500 5.5.2 Line too long");
		return;
	}
	if (tls_required(s)) {
		switch (cmd.verb) {
		case SMTP_VERB_AUTH:
		case SMTP_VERB_MAIL:
		case SMTP_VERB_RCPT:
		case SMTP_VERB_DATA:
			reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
			return;
		default:
			break;
		}
	}
	switch (cmd.verb) {
	case SMTP_VERB_EHLO:
		cmd_ehlo(s, cmd.args, true);
		break;
	case SMTP_VERB_HELO:
		cmd_ehlo(s, cmd.args, false);
		break;
	case SMTP_VERB_STARTTLS:
		cmd_starttls(s, cmd.args);
		break;
	case SMTP_VERB_AUTH:
		cmd_auth(s, cmd.args);
		break;
	case SMTP_VERB_MAIL:
		cmd_mail(s, cmd.args);
		break;
	case SMTP_VERB_RCPT:
		cmd_rcpt(s, cmd.args);
		break;
	case SMTP_VERB_DATA:
		cmd_data(s, cmd.args);
		break;
	case SMTP_VERB_RSET:
		cmd_rset(s);
		break;
	case SMTP_VERB_NOOP:
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_VERB_QUIT:
		transaction_abandon(s);
		relay_close(&s->relay);
		reply(s, "221 2.0.0 Bye");
		session_close(s);
		break;
	case SMTP_VERB_VRFY:
		/* RFC 5321 §3.5.3 */
		reply(s, "252 2.5.0 Cannot VRFY user, but will accept message");
		break;
	case SMTP_VERB_HELP:
		reply(s, "214 2.0.0 See RFC 5321 and RFC 6409");
		break;
	case SMTP_VERB_EXPN:
	case SMTP_VERB_ETRN:
	case SMTP_VERB_BDAT:
		reply_error(s, "502 5.5.1 Command not implemented");
		break;
	case SMTP_VERB_UNKNOWN:
	default:
		reply_error(s, "500 5.5.1 Command unrecognized");
		break;
	}
}

static bool state_reads_lines(enum session_state st)
{
	return st == S_CMD || st == S_AUTH_PLAIN || st == S_AUTH_LOGIN_USER ||
	       st == S_AUTH_LOGIN_PASS;
}

static void session_process(struct smtp_session *s)
{
	struct line_reader *lr = conn_input(s->conn);

	if (s->state == S_DATA) {
		data_process(s);
		return;
	}
	for (int i = 0; i < SESSION_COMMANDS_PER_RUN; i++) {
		enum line_status ls;
		char *line;
		size_t len;

		if (s->state == S_DATA) {
			data_process(s);
			return;
		}
		if (!state_reads_lines(s->state))
			return;
		if (conn_output_full(s->conn))
			return;	/* resumed on CONN_EV_FLUSHED */
		if (s->stopping && s->state == S_CMD && !s->in_transaction) {
			relay_close(&s->relay);
			reply(s, "421 4.3.2 %s Service shutting down",
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
			if (s->state != S_CMD) {
				auth_wipe(s);
				s->state = S_CMD;
				reply_error(s, "501 5.5.2 Authentication data too long");
			} else {
				reply_error(s, "500 5.5.2 Line too long");
			}
		} else if (s->state == S_CMD) {
			handle_command(s, line, len);
		} else {
			auth_response(s, line, len);
		}
		/* The line may have carried a password. */
		if (ls == LINE_OK)
			explicit_bzero(line, len);
		if (s->state == S_CMD)
			conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
	}
	schedule_resume(s);
}

static int on_resume(sd_event_source *src, void *userdata)
{
	session_process(userdata);
	return 0;
}

static void on_timeout(struct smtp_session *s)
{
	switch (s->state) {
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
		reply(s, "421 4.4.2 %s Error: timeout exceeded",
		      s->cfg->hostname);
		relay_abort(&s->relay);
		auth_lookup_cancel(&s->lookup);
		auth_wipe(s);
		session_close(s);
		return;
	}
}

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
		session_destroy(s);
		break;
	}
}

static void session_destroy(struct smtp_session *s)
{
	char cmds[24], msgs[24], fails[16], secs[24];
	uint64_t now = 0;

	sd_event_now(server_event(s->thread), CLOCK_MONOTONIC, &now);
	snprintf(cmds, sizeof(cmds), "%lu", s->n_commands);
	snprintf(msgs, sizeof(msgs), "%lu", s->n_messages);
	snprintf(fails, sizeof(fails), "%u", s->auth_failures);
	snprintf(secs, sizeof(secs), "%llu",
		 (unsigned long long)((now - s->start_usec) / 1000));
	saudit(s, LOG_LVL_INFO, "disconnect",
	       "user", s->user[0] ? s->user : NULL, "commands", cmds,
	       "messages", msgs, "auth_failures", fails, "duration_ms", secs);
	auth_lookup_cancel(&s->lookup);
	auth_wipe(s);
	/* Never the end of data: an unfinished message is dropped. */
	relay_abort(&s->relay);
	transaction_reset(s);
	for (size_t i = 0; i < s->n_addrs; i++)
		free(s->addrs[i]);
	free(s->addrs);
	for (size_t i = 0; i < s->n_groups; i++)
		free(s->groups[i]);
	free(s->groups);
	sd_event_source_disable_unref(s->resume);
	sd_event_source_disable_unref(s->delay);
	sd_event_source_disable_unref(s->proxy_io);
	if (s->proxy_fd >= 0)
		close(s->proxy_fd);
	conn_free(&s->conn);
	if (s->limits_counted)
		limits_disconnect(&s->addr);
	atomic_fetch_sub(&stats.sessions_active, 1);
	server_session_gone(s->thread, s);
	settings_put(&s->st);
	free(s);
}

static void set_client(struct smtp_session *s,
		       const struct sockaddr_storage *addr)
{
	s->addr = *addr;
	if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)addr;

		inet_ntop(AF_INET, &sin->sin_addr, s->client_ip,
			  sizeof(s->client_ip));
		s->client_port = ntohs(sin->sin_port);
	} else if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)addr;

		inet_ntop(AF_INET6, &sin6->sin6_addr, s->client_ip,
			  sizeof(s->client_ip));
		s->client_port = ntohs(sin6->sin6_port);
	} else {
		snprintf(s->client_ip, sizeof(s->client_ip), "unknown");
		s->client_port = 0;
	}
}

/* The client's first words: the greeting, or the TLS handshake. */
static int session_begin(struct smtp_session *s, int fd)
{
	char port[8];

	s->conn = conn_new(server_event(s->thread), fd, SESSION_INPUT_BUF,
			   SMTP_AUTH_LINE_MAX, on_conn_event, s);
	if (s->conn == NULL)
		return -1;
	snprintf(port, sizeof(port), "%u", s->client_port);
	saudit(s, LOG_LVL_INFO, "connect", "port", port, "listener",
	       s->mode == LISTEN_TLS ? "tls" : "starttls",
	       "proxy", s->proxy_peer[0] ? s->proxy_peer : NULL);
	if (s->mode == LISTEN_TLS) {
		s->state = S_TLS_HANDSHAKE;
		conn_start_tls(s->conn, s->st->ssl_ctx);
		conn_set_deadline(s->conn, s->cfg->handshake_timeout_usec);
	} else {
		s->state = S_CMD;
		reply(s, "220 %s ESMTP authrelay", s->cfg->hostname);
		conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
	}
	return 0;
}

/* PROXY protocol: read exactly the header, before TLS, and take the
 * address it carries as the client's for limits, logs and headers.
 * Edge-triggered and MSG_PEEK: nothing of the client's own first octets
 * (a TLS ClientHello) is consumed. */
static void proxy_header_fail(struct smtp_session *s, const char *why)
{
	saudit(s, LOG_LVL_NOTICE, "proxy-header-invalid", "reason", why);
	close(s->proxy_fd);
	s->proxy_fd = -1;
	session_destroy(s);
}

/* A client the header names that may not come in: refused as server.c
 * refuses one that connects directly (421 on a STARTTLS listener, where
 * there is plaintext to speak; on an implicit TLS one just the close). */
static void proxy_client_refused(struct smtp_session *s, const char *why,
				 const char *text)
{
	if (s->mode == LISTEN_STARTTLS) {
		char buf[256];
		int n = snprintf(buf, sizeof(buf), "421 4.7.0 %s %s\r\n",
				 s->cfg->hostname, text);

		if (n > 0 && (size_t)n < sizeof(buf))
			(void)send(s->proxy_fd, buf, (size_t)n,
				   MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	proxy_header_fail(s, why);
}

static int on_proxy_io(sd_event_source *src, int fd, uint32_t revents,
		       void *userdata)
{
	struct smtp_session *s = userdata;
	unsigned char buf[PROXY_PROTO_MAX];
	struct proxy_proto_result res;
	enum proxy_proto_status st;
	enum limits_verdict v;
	size_t hlen = 0;
	ssize_t n;

	n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		proxy_header_fail(s, n == 0 ? "closed" : strerror(errno));
		return 0;
	}
	st = proxy_proto_parse(buf, (size_t)n, &hlen, &res);
	if (st == PROXY_PROTO_NEED_MORE) {
		if ((size_t)n >= sizeof(buf))
			proxy_header_fail(s, "header too long");
		return 0;
	}
	if (st == PROXY_PROTO_INVALID) {
		proxy_header_fail(s, "no valid PROXY header");
		return 0;
	}
	if (recv(fd, buf, hlen, MSG_DONTWAIT) != (ssize_t)hlen) {
		proxy_header_fail(s, "short read");
		return 0;
	}
	s->proxy_io = sd_event_source_disable_unref(s->proxy_io);
	sd_event_source_set_enabled(s->delay, SD_EVENT_OFF);
	snprintf(s->proxy_peer, sizeof(s->proxy_peer), "%s", s->client_ip);
	if (res.has_addr) {
		/* The limits were counted for the proxy; count for the
		 * client it speaks for. */
		limits_disconnect(&s->addr);
		s->limits_counted = false;
		set_client(s, &res.src);
		v = limits_connect(&s->addr, UINT_MAX,
				   s->cfg->max_connections_per_ip);
		if (v != LIMITS_OK) {
			proxy_client_refused(s, "max_connections_per_ip reached",
					     "Too many connections, try again "
					     "later");
			return 0;
		}
		s->limits_counted = true;
		if (auth_throttle_blocked(&s->addr, now_usec(s))) {
			proxy_client_refused(s, "address blocked after failed "
					     "logins", "Too many authentication "
					     "failures from your address");
			return 0;
		}
	}
	fd = s->proxy_fd;
	s->proxy_fd = -1;
	if (session_begin(s, fd) < 0)
		session_destroy(s);
	return 0;
}

struct smtp_session *smtp_session_new(struct server_thread *t,
				      struct settings *st, int fd,
				      const struct sockaddr_storage *addr,
				      enum listen_mode mode)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	sd_event *event = server_event(t);

	s->thread = t;
	s->st = st;
	s->cfg = st->cfg;
	s->id = atomic_fetch_add(&session_ids, 1) + 1;
	snprintf(s->sid, sizeof(s->sid), "%lu", s->id);
	s->mode = mode;
	s->proxy_fd = -1;
	s->limits_counted = true;
	set_client(s, addr);
	sd_event_now(event, CLOCK_MONOTONIC, &s->start_usec);
	if (sd_event_add_defer(event, &s->resume, on_resume, s) < 0 ||
	    sd_event_add_time_relative(event, &s->delay, CLOCK_MONOTONIC,
				       UINT64_MAX / 2, 0, on_delay_timer,
				       s) < 0) {
		close(fd);
		sd_event_source_disable_unref(s->resume);
		sd_event_source_disable_unref(s->delay);
		limits_disconnect(&s->addr);
		settings_put(&s->st);
		free(s);
		return NULL;
	}
	sd_event_source_set_enabled(s->resume, SD_EVENT_OFF);
	sd_event_source_set_enabled(s->delay, SD_EVENT_OFF);
	atomic_fetch_add(&stats.sessions_active, 1);
	atomic_fetch_add(&stats.sessions_total, 1);
	/* From here on session_destroy() undoes everything. */
	server_session_add(t, s);
	if (s->cfg->proxy_protocol) {
		s->state = S_PROXY_HEADER;
		s->proxy_fd = fd;
		if (sd_event_add_io(event, &s->proxy_io, fd, EPOLLIN | EPOLLET,
				    on_proxy_io, s) < 0) {
			close(fd);
			s->proxy_fd = -1;
			session_destroy(s);
			return NULL;
		}
		/* The header must come at once, like a TLS handshake. */
		sd_event_source_set_time_relative(s->delay,
						  s->cfg->handshake_timeout_usec);
		sd_event_source_set_enabled(s->delay, SD_EVENT_ONESHOT);
		return s;
	}
	if (session_begin(s, fd) < 0) {
		session_destroy(s);
		return NULL;
	}
	return s;
}

void smtp_session_stop(struct smtp_session *s)
{
	s->stopping = true;
	schedule_resume(s);
}

void smtp_session_abort(struct smtp_session *s)
{
	if (s->state == S_CLOSING)
		return;
	auth_lookup_cancel(&s->lookup);
	auth_wipe(s);
	relay_abort(&s->relay);
	if (s->state != S_TLS_HANDSHAKE)
		reply(s, "421 4.3.2 %s Service shutting down",
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
