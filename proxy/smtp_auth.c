/* AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN: the SASL exchange,
 * the auth cache, the auth workers, and the same 535 after the same
 * delay for every refusal. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "auth_cache.h"
#include "auth_client.h"
#include "auth_throttle.h"
#include "metrics.h"
#include "sasl.h"
#include "settings.h"
#include "shared_policy.h"
#include "smtp_session.h"
#include "smtp_session_int.h"
#include "xalloc.h"

void smtp_auth_wipe(struct smtp_session *s)
{
	explicit_bzero(s->login_user, sizeof(s->login_user));
	explicit_bzero(s->pw_hash, sizeof(s->pw_hash));
	s->pw_hash_set = false;
	if (s->held_cr != NULL) {
		free_secret(s->held_cr, sizeof(*s->held_cr));
		s->held_cr = NULL;
	}
}

void smtp_auth_free(struct smtp_session *s)
{
	smtp_auth_wipe(s);
	s->address = session_no_text;
	session_set_text(&s->user, "", 0);
	for (size_t i = 0; i < s->n_addrs; i++)
		free(s->addrs[i]);
	free(s->addrs);
	s->addrs = NULL;
	s->n_addrs = 0;
	for (size_t i = 0; i < s->n_groups; i++)
		free(s->groups[i]);
	free(s->groups);
	s->groups = NULL;
	s->n_groups = 0;
}

void smtp_auth_on_delay(struct smtp_session *s)
{
	s->state = S_CMD;
	if (s->blocked) {
		session_refuse_blocked(s);
		return;
	}
	session_reply(s, "535 5.7.8 Authentication credentials invalid");
	conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
	session_schedule_resume(s);
}

static void on_failure_counted(void *ctx, bool blocked, uint64_t delay)
{
	struct smtp_session *s = ctx;

	s->blocked = blocked;
	if (s->blocked) {
		metrics_client_blocked();
		saudit(s, LOG_LVL_WARNING, "client-blocked", "user",
		       s->login_user, "reason", "too many failed logins");
	}
	smtp_auth_wipe(s);
	if (delay == 0) {
		smtp_auth_on_delay(s);
		return;
	}
	if (session_delay(s, delay) < 0)
		smtp_auth_on_delay(s);	/* answered now rather than never */
}

/* Every refusal gets the same 535, after the same delay, whatever the
 * cause: the client learns nothing about which part was wrong. The
 * failure is counted (on every node, with shared state) first. */
static void auth_refuse(struct smtp_session *s, const char *reason)
{
	s->auth_failures++;
	atomic_fetch_add(&stats.auth_failed, 1);
	metrics_auth_refused(s->cfg->backend, reason);
	/* fail2ban: contrib/fail2ban matches this record's client=. */
	saudit(s, LOG_LVL_NOTICE, "auth-failure", "user", s->login_user,
	       "reason", reason);
	s->state = S_AUTH_DELAY;
	shared_policy_auth_failure(s->host.shared, s->st, &s->addr,
				   s->login_user, session_now(s),
				   &s->shared_call, on_failure_counted, s);
}

static void take_identity(struct smtp_session *s, const struct auth_reply *rep)
{
	session_set_text(&s->user, rep->user[0] ? rep->user : s->login_user,
			 AUTH_USER_MAX);
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
	if (s->n_addrs > 0)
		s->address = s->addrs[0];
	else if (strchr(s->user, '@') != NULL)
		s->address = s->user;
}

static void on_auth_reply(const struct auth_reply *rep, void *ctx)
{
	struct smtp_session *s = ctx;

	s->lookup = NULL;
	switch (rep->result) {
	case AUTH_OK:
		s->authenticated = true;
		take_identity(s, rep);
		atomic_fetch_add(&stats.auth_ok, 1);
		metrics_auth(s->cfg->backend, METRICS_AUTH_OK);
		saudit(s, LOG_LVL_INFO, "auth-ok", "user", s->user,
		       "login", s->login_user, "cached",
		       strcmp(rep->reason, "cached") == 0 ? "yes" : "no");
		if (s->pw_hash_set)
			auth_cache_store_gen(s->login_user, s->pw_hash, rep,
					     session_now(s),
					     s->cfg->cache_ttl_usec,
					     s->cache_gen);
		shared_policy_auth_success(s->host.shared, s->st, &s->addr,
					   s->login_user);
		smtp_auth_wipe(s);
		s->state = S_CMD;
		session_reply(s, "235 2.7.0 Authentication successful");
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
		metrics_auth(s->cfg->backend, METRICS_AUTH_TEMPFAIL);
		saudit(s, LOG_LVL_WARNING, "auth-tempfail", "user",
		       s->login_user, "reason", rep->reason);
		smtp_auth_wipe(s);
		s->state = S_CMD;
		session_reply(s, "454 4.7.0 Temporary authentication failure");
		break;
	}
	conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
	session_schedule_resume(s);
}

/* The cache, else an auth worker. */
static void auth_check_credentials(struct smtp_session *s,
				   struct sasl_credentials *cr)
{
	if (s->cfg->cache_ttl_usec > 0 &&
	    auth_cache_hash(cr->user, cr->password, s->pw_hash) == 0) {
		struct auth_reply rep;

		s->pw_hash_set = true;
		if (metrics_auth_cached(auth_cache_lookup(cr->user, s->pw_hash,
							  session_now(s),
							  &rep))) {
			explicit_bzero(cr, sizeof(*cr));
			s->pw_hash_set = false;	/* already stored */
			on_auth_reply(&rep, s);
			return;
		}
	}
	s->state = S_AUTH_PENDING;
	conn_set_deadline(s->conn, 0);
	s->lookup = auth_pool_lookup(s->host.auth, cr->user, cr->password,
				     s->client_ip, on_auth_reply, s);
	explicit_bzero(cr, sizeof(*cr));
}

static void on_auth_checked(void *ctx, enum policy_verdict v, uint64_t gen)
{
	struct smtp_session *s = ctx;
	struct sasl_credentials *cr = s->held_cr;

	s->held_cr = NULL;
	s->cache_gen = gen;
	if (v == POLICY_OK) {
		auth_check_credentials(s, cr);
		free_secret(cr, sizeof(*cr));
		return;
	}
	free_secret(cr, sizeof(*cr));
	smtp_auth_wipe(s);
	s->state = S_CMD;
	if (v == POLICY_REFUSED) {
		/* Blocked on another node since this session began. */
		session_refuse_blocked(s);
		return;
	}
	session_refuse_unavailable(s, "454");
	conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
	session_schedule_resume(s);
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
	s->cache_gen = 0;
	if (!shared_state_enabled(s->host.shared)) {
		auth_check_credentials(s, cr);
		return;
	}
	/* Blocked on another node? Evicted from the cache on another? */
	s->held_cr = xmalloc(sizeof(*s->held_cr));
	memcpy(s->held_cr, cr, sizeof(*cr));
	explicit_bzero(cr, sizeof(*cr));
	s->state = S_SHARED_WAIT;
	shared_policy_auth_check(s->host.shared, s->st, &s->addr,
				 s->login_user, session_now(s),
				 &s->shared_call, on_auth_checked, s);
}

static void auth_syntax_error(struct smtp_session *s, enum sasl_status st)
{
	smtp_auth_wipe(s);
	s->state = S_CMD;
	switch (st) {
	case SASL_AUTHZID_MISMATCH:
		/* Not a syntax error: a refusal like any other. */
		auth_refuse(s, "authorization identity differs from login");
		return;
	case SASL_TOO_LONG:
		session_reply_error(s, "501 5.5.2 Authentication data too long");
		return;
	case SASL_BAD_BASE64:
		session_reply_error(s, "501 5.5.2 Invalid base64 data");
		return;
	default:
		session_reply_error(s, "501 5.5.2 Malformed authentication data");
		return;
	}
}

void smtp_auth_line_too_long(struct smtp_session *s)
{
	smtp_auth_wipe(s);
	s->state = S_CMD;
	/* RFC 4954 §4, §6: "500 5.5.6 Authentication Exchange line is too
	 * long": the client sent a response longer than the buffer for
	 * the selected mechanism. A 500, as an initial response of that
	 * length gets. */
	session_reply_error(s, "500 5.5.6 Authentication Exchange line is "
			    "too long");
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
	session_reply(s, "334 " SASL_LOGIN_PROMPT_PASS);
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

void smtp_auth_response(struct smtp_session *s, const char *line, size_t len)
{
	/* RFC 4954 §4: "*" cancels the exchange. */
	if (len == 1 && line[0] == '*') {
		smtp_auth_wipe(s);
		s->state = S_CMD;
		session_reply_error(s, "501 5.0.0 Authentication cancelled");
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

/* The table (smtp_session.c) has checked TLS, EHLO, that the session
 * is not yet authenticated and that no transaction is open. */
void smtp_auth_cmd(struct smtp_session *s, const char *args)
{
	char mech_name[32];
	const char *ir;
	size_t n = strcspn(args, " ");
	enum sasl_mech mech;

	if (auth_throttle_blocked(&s->addr, session_now(s))) {
		session_refuse_blocked(s);
		return;
	}
	if (n == 0 || n >= sizeof(mech_name)) {
		session_reply_error(s, "501 5.5.4 Syntax: AUTH mechanism "
				    "[initial-response]");
		return;
	}
	memcpy(mech_name, args, n);
	mech_name[n] = '\0';
	mech = sasl_mech_parse(mech_name);
	if ((mech == SASL_MECH_PLAIN && !(s->cfg->mechanisms & AUTH_MECH_PLAIN)) ||
	    (mech == SASL_MECH_LOGIN && !(s->cfg->mechanisms & AUTH_MECH_LOGIN)))
		mech = SASL_MECH_NONE;
	if (mech == SASL_MECH_NONE) {
		session_reply_error(s, "504 5.5.4 Unrecognized authentication "
				    "type");
		return;
	}
	ir = args + n;
	while (*ir == ' ')
		ir++;
	if (strchr(ir, ' ') != NULL) {
		session_reply_error(s, "501 5.5.4 Syntax: AUTH mechanism "
				    "[initial-response]");
		return;
	}
	if (mech == SASL_MECH_PLAIN) {
		if (*ir == '\0') {
			s->state = S_AUTH_PLAIN;
			session_reply(s, "334 ");
		} else {
			auth_plain(s, ir, strlen(ir));
		}
		return;
	}
	s->state = S_AUTH_LOGIN_USER;
	if (*ir == '\0')
		session_reply(s, "334 " SASL_LOGIN_PROMPT_USER);
	else
		/* Clients that send the user name as initial response. */
		auth_login_user(s, ir, strlen(ir));
}
