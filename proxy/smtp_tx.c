/* The mail transaction (RFC 5321 §3.3, RFC 6409): MAIL, RCPT, DATA and
 * RSET relayed to the smarthost (pipelined: smtp_pipeline.c), and the message data
 * through the filter (data_filter.h): the NUL check, the header scan
 * and the header sender check all happen there, so a refused message
 * sends the smarthost no octet of data. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data_filter.h"
#include "header_scan.h"
#include "message_tag.h"
#include "metrics.h"
#include "rate_limit.h"
#include "sender_policy.h"
#include "shared_policy.h"
#include "smtp_session.h"
#include "smtp_session_int.h"
#include "xalloc.h"

/* Commands handled per turn of the loop, for fairness between sessions. */
#define TX_CHUNKS_PER_RUN 64

void smtp_tx_free(struct smtp_tx **txp)
{
	struct smtp_tx *tx = *txp;

	if (tx == NULL)
		return;
	*txp = NULL;
	data_filter_free(&tx->df);
	free(tx->mail_refusal);
	session_audit_tx_free(tx);
	explicit_bzero(tx, sizeof(*tx));
	free(tx);
}

/* A transaction left without RSET (EHLO, QUIT, STARTTLS): the
 * smarthost connection goes with it. So it does when the MAIL was ours
 * (mail_hold) and went upstream or not, depending on when the client's
 * commands came: the next MAIL then opens a new one either way, and
 * gets the same reply. */
void smtp_tx_abandon(struct smtp_session *s)
{
	if (s->tx != NULL && (s->tx->open || s->tx->mail_late))
		relay_abort(&s->relay);
	smtp_tx_free(&s->tx);
}

static struct sender_user session_user(const struct smtp_session *s)
{
	return (struct sender_user){
		.addrs = s->addrs, .n_addrs = s->n_addrs,
		.groups = s->groups, .n_groups = s->n_groups,
	};
}

/* The smarthost's reply, passed on as it is (RFC 3463 code included). */
static void reply_relayed(struct smtp_session *s, const struct relay_reply *rep)
{
	s->relayed_reply = true;
	session_reply(s, "%d %s %s", rep->code, rep->enhanced, rep->text);
	s->relayed_reply = false;
}

static void relay_send_mail(struct smtp_session *s)
{
	struct relay_reply rep;

	s->pending = P_MAIL;
	s->state = S_RELAY_WAIT;
	if (relay_mail(s->relay, &s->tx->mail, &rep) < 0) {
		s->pending = P_NONE;
		s->state = S_CMD;
		smtp_tx_free(&s->tx);
		reply_relayed(s, &rep);
	}
}

/* MAIL on a smarthost connection that is up and takes pipelined
 * commands is answered by us, 250, and the smarthost's refusal of it,
 * if any, comes back as the reply to each RCPT (the transaction stays
 * open for the client until RSET), the way Postfix's smtpd_delay_reject
 * moves refusals to RCPT. From a client that waits for the reply, the
 * MAIL is held and goes upstream with the first RCPT, in one write: one
 * round trip to the smarthost less per message. With commands pipelined
 * behind it, it goes now, with them, and our 250 waits for its reply so
 * that all the replies go out in one write. The replies are the same
 * either way, however the client's octets arrive. A session's first
 * MAIL, and one on a connection just taken from the cache (which may
 * yet be found closed and be replaced, relay_cache.h), go upstream at
 * once and get the smarthost's own reply. */
static void mail_send_late(struct smtp_session *s);

static bool mail_hold(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	if (s->relay == NULL || !relay_pipelining(s->relay) ||
	    s->pending != P_NONE ||
	    (tx->mail.smtputf8 && !relay_caps(s->relay)->smtputf8))
		return false;
	tx->mail_late = true;
	if (line_reader_pending(conn_input(s->conn)) > 0) {
		tx->mail_reply_due = true;
		mail_send_late(s);
		return true;
	}
	tx->mail_held = true;
	session_reply(s, "250 2.1.0 Ok");
	return true;
}

/* Our 250 to a MAIL sent with the commands behind it, once the
 * smarthost has answered it (or is gone). */
static void mail_reply_late(struct smtp_session *s)
{
	if (s->tx == NULL || !s->tx->mail_reply_due)
		return;
	s->tx->mail_reply_due = false;
	session_reply(s, "250 2.1.0 Ok");
}

/* A MAIL answered by us goes upstream. */
static void mail_send_late(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct relay_reply rep;

	tx->mail_held = false;
	/* Cannot refuse: mail_hold() checked the one thing it checks. */
	if (relay_mail(s->relay, &tx->mail, &rep) < 0) {
		tx->mail_refusal = xmalloc(sizeof(*tx->mail_refusal));
		*tx->mail_refusal = rep;
		mail_reply_late(s);
		return;
	}
	smtp_pipe_expect(s, P_MAIL_LATE);
}

static void end_of_data(struct smtp_session *s, const struct relay_reply *rep)
{
	struct smtp_tx *tx = s->tx;

	session_audit_message(s, rep);
	if (rep->code / 100 == 2) {
		s->n_messages++;
		metrics_message_relayed(tx->n_rcpt, tx->df ?
					data_filter_size(tx->df) : 0,
					session_now(s) - tx->data_start);
	} else {
		metrics_message_refused(METRICS_REFUSED_SMARTHOST);
	}
	reply_relayed(s, rep);
	smtp_tx_free(&s->tx);
}

static void data_begin(struct smtp_session *s);

/* RCPT and DATA go upstream pipelined (smtp_pipeline.c) before the
 * replies to the MAIL and RCPTs ahead of them are in. When those
 * replies leave no transaction (MAIL refused) or no recipient, the
 * client gets what the command gate (smtp_command_gate) would have
 * answered one at a time, counted as a bad command like it, whatever
 * the smarthost said: pipelining changes no reply (RFC 2920 §3.1).
 * NULL when the command had its ground. */
static const char *refused_behind(const struct smtp_tx *tx,
				  enum relay_pending p)
{
	if (tx == NULL)
		return "503 5.5.1 Need MAIL command";
	if (p == P_DATA && tx->n_rcpt == 0)
		return tx->n_rcpt_tried > 0 ? "554 5.5.1 No valid recipients" :
		       "503 5.5.1 Need RCPT command";
	return NULL;
}

static void on_relay_reply(struct smtp_session *s, enum relay_pending p,
			   const struct relay_reply *rep)
{
	struct smtp_tx *tx = s->tx;
	const char *refusal;

	switch (p) {
	case P_MAIL_LATE:
		/* The client has our 250 (mail_hold), or gets it now. */
		if (tx == NULL)
			break;
		if (rep->code / 100 == 2) {
			tx->open = true;
		} else {
			tx->mail_refusal = xmalloc(sizeof(*tx->mail_refusal));
			*tx->mail_refusal = *rep;
			metrics_message_refused(METRICS_REFUSED_SMARTHOST);
		}
		mail_reply_late(s);
		break;
	case P_MAIL:
		if (rep->code / 100 == 2) {
			tx->open = true;
		} else {
			smtp_tx_free(&s->tx);
			metrics_message_refused(METRICS_REFUSED_SMARTHOST);
		}
		reply_relayed(s, rep);
		break;
	case P_RCPT:
		if (tx == NULL) {
			session_reply_error(s, "%s", refused_behind(tx, p));
			break;
		}
		tx->n_rcpt_answered++;
		if (tx->mail_refusal != NULL) {
			/* Sent with or behind a MAIL the smarthost refused:
			 * its answer (a 503) stands for that refusal. */
			reply_relayed(s, tx->mail_refusal);
			break;
		}
		if (rep->code / 100 == 2) {
			if (tx->n_rcpt == 0)
				snprintf(tx->first_rcpt, sizeof(tx->first_rcpt),
					 "%s", tx->rcpt.path);
			tx->n_rcpt++;
		}
		reply_relayed(s, rep);
		break;
	case P_DATA:
		refusal = refused_behind(tx, p);
		if (refusal != NULL) {
			/* A 354 here breaks RFC 2920 §3.1: that connection
			 * is dropped so that nothing is kept. */
			if (rep->code == 354) {
				relay_abort(&s->relay);
				smtp_tx_free(&s->tx);
			}
			metrics_message_refused(METRICS_REFUSED_SMARTHOST);
			session_reply_error(s, "%s", refusal);
			break;
		}
		if (rep->code != 354) {
			metrics_message_refused(METRICS_REFUSED_SMARTHOST);
			reply_relayed(s, rep);
			break;
		}
		data_begin(s);
		break;
	case P_DOT:
		end_of_data(s, rep);
		break;
	case P_RSET:
		if (tx != NULL && tx->mail_late) {
			/* With MAIL ours, RSET is ours too: whether it went
			 * upstream depends on when the MAIL did. A smarthost
			 * that refuses it is not kept. */
			smtp_tx_free(&s->tx);
			if (rep->code / 100 != 2)
				relay_abort(&s->relay);
			session_reply(s, "250 2.0.0 Ok");
			break;
		}
		smtp_tx_free(&s->tx);
		reply_relayed(s, rep);
		break;
	case P_NONE:
		break;
	}
}

static void on_relay_event(struct relay *r, enum relay_event ev,
			   const struct relay_reply *rep, void *ctx)
{
	struct smtp_session *s = ctx;
	enum relay_pending p = s->pending;
	bool late;

	switch (ev) {
	case RELAY_EV_READY:
		if (p == P_MAIL)
			relay_send_mail(s);
		/* RCPTs and DATA pipelined behind the MAIL may follow it */
		session_schedule_resume(s);
		return;
	case RELAY_EV_DRAINED:
		conn_set_reading(s->conn, true);
		session_schedule_resume(s);
		return;
	case RELAY_EV_FAILED:
		late = s->tx != NULL && s->tx->mail_late;
		relay_abort(&s->relay);
		s->pending = P_NONE;
		if (s->state == S_DATA) {
			/* Read the client's message to its end, then 451. */
			s->tx->relay_lost = true;
			session_schedule_resume(s);
			return;
		}
		if (p == P_NONE)
			return;	/* idle: the next MAIL reconnects */
		saudit(s, LOG_LVL_WARNING, "relay-failure", "user", s->user,
		       "reason", rep->text);
		/* Lost at a RCPT, the transaction stays open: the client's
		 * pipelined RCPTs and DATA get 451 too (relay_gone), not a
		 * permanent 503 that would bounce a recipient. So it does
		 * at a MAIL the client had our 250 for. */
		if (p != P_RCPT && p != P_MAIL_LATE)
			smtp_tx_free(&s->tx);
		if (p == P_MAIL || p == P_MAIL_LATE || p == P_DATA ||
		    p == P_DOT)
			metrics_message_refused(METRICS_REFUSED_SMARTHOST_UNAVAILABLE);
		s->state = S_CMD;
		/* SPEC: a smarthost that cannot be reached is 451 4.4.1; no
		 * OAuth2 token for it (relay.c says 4.7.0) is a security
		 * failure of ours, temporary too (RFC 3463 §3.8). */
		if (p == P_MAIL_LATE)
			/* ours, as had the connection been lost before it
			 * went: the RCPTs behind it get their 451 below */
			mail_reply_late(s);
		else if (p == P_RSET && late)
			/* ours too (case P_RSET above) */
			session_reply(s, "250 2.0.0 Ok");
		else if (strcmp(rep->enhanced, "4.7.0") == 0)
			session_reply(s, "451 4.7.0 Smarthost authentication "
				      "unavailable, try again later");
		else
			session_reply(s, "451 4.4.1 Smarthost unavailable, try "
				      "again later");
		/* The commands pipelined behind it get what they would
		 * have got had they come after the loss (relay_gone). */
		smtp_pipe_fail(s, "451 4.4.1 Smarthost connection lost, try "
			       "again later\r\n");
		break;
	case RELAY_EV_REPLY:
		s->pending = P_NONE;
		s->state = S_CMD;
		on_relay_reply(s, p, rep);
		smtp_pipe_advance(s);
		break;
	}
	if (s->state != S_CLOSING)	/* a held close (smtp_pipeline.c) */
		conn_set_deadline(s->conn, s->state == S_DATA ?
				  s->cfg->data_timeout_usec :
				  s->cfg->command_timeout_usec);
	session_schedule_resume(s);
}

static void on_mail_rated(void *ctx, enum policy_verdict v);
static void on_rcpt_rated(void *ctx, enum policy_verdict v);

/* The table (smtp_session.c) has checked TLS, EHLO, AUTH and that no
 * transaction is open. */
void smtp_tx_mail(struct smtp_session *s, const char *args)
{
	struct sender_user u = session_user(s);
	struct smtp_arg_error err;
	struct smtp_mail_args mail;
	const char *problem;
	char why[300];

	if (smtp_parse_mail(args, &mail, &err) < 0) {
		session_reply_error(s, "%d %s %s", err.code, err.enhanced,
				    err.text);
		return;
	}
	/* RFC 1870 §6.2 */
	if (mail.has_size && mail.size > s->cfg->max_message_size) {
		metrics_message_refused(METRICS_REFUSED_SIZE);
		session_reply_error(s, "552 5.3.4 Message size exceeds fixed "
				    "limit");
		return;
	}
	problem = sender_policy_envelope(s->cfg, &u, mail.path, why,
					 sizeof(why));
	if (problem != NULL) {
		metrics_message_refused(METRICS_REFUSED_SENDER);
		saudit(s, LOG_LVL_NOTICE, "sender-refused", "user", s->user,
		       "from", mail.path[0] ? mail.path : "<>");
		session_reply_error(s, "553 5.7.1 %s", problem);
		return;
	}
	s->tx = xcalloc(1, sizeof(*s->tx));
	s->tx->mail = mail;
	s->state = S_SHARED_WAIT;
	shared_policy_rate_take(s->host.shared, s->st, RATE_MESSAGES,
				sender_policy_rate(s->cfg, &u, false), s->user,
				session_now(s), &s->shared_call, on_mail_rated,
				s);
}

/* The message rate has room (or not): open the transaction at the
 * smarthost. */
static void on_mail_rated(void *ctx, enum policy_verdict v)
{
	struct smtp_session *s = ctx;

	s->state = S_CMD;
	session_schedule_resume(s);
	if (v != POLICY_OK) {
		smtp_tx_free(&s->tx);
		if (v == POLICY_UNAVAILABLE) {
			session_refuse_unavailable(s, "451");
			return;
		}
		metrics_throttled(METRICS_LIMIT_MESSAGE_RATE);
		metrics_message_refused(METRICS_REFUSED_RATE_LIMIT);
		saudit(s, LOG_LVL_NOTICE, "rate-limit", "user", s->user,
		       "limit", "messages");
		session_reply(s, "450 4.7.1 Message rate limit exceeded, try "
			      "again later");
		return;
	}
	if (s->relay == NULL) {
		char sid[32];
		struct relay_identity id = {
			.login = s->user,
			.address = s->address[0] ? s->address : NULL,
			.client_ip = s->client_ip,
			.session_id = sid,
		};

		snprintf(sid, sizeof(sid), "%lu", s->id);
		s->relay = relay_open(s->host.event, s->host.relay_cache,
				      s->st, &id, on_relay_event, s);
		if (s->relay == NULL) {
			metrics_message_refused(METRICS_REFUSED_SMARTHOST_UNAVAILABLE);
			smtp_tx_free(&s->tx);
			session_reply(s, "451 4.4.1 Smarthost unavailable, try "
				      "again later");
			return;
		}
		s->pending = P_MAIL;
		s->state = S_RELAY_WAIT;
		conn_set_deadline(s->conn, 0);
		return;
	}
	if (!mail_hold(s))
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
	session_reply(s, "451 4.4.1 Smarthost connection lost, try again later");
	return true;
}

/* The table has checked TLS, AUTH and that a transaction is open. */
void smtp_tx_rcpt(struct smtp_session *s, const char *args)
{
	struct sender_user u = session_user(s);
	struct smtp_tx *tx = s->tx;
	struct smtp_arg_error err;

	if (smtp_parse_rcpt(args, &tx->rcpt, &err) < 0) {
		session_reply_error(s, "%d %s %s", err.code, err.enhanced,
				    err.text);
		return;
	}
	/* Whatever answers it, ours or the smarthost's, goes into the
	 * message record with it (session_audit.c). */
	tx->rcpt_due = true;
	/* RFC 6531 §3.4: a non-ASCII address needs SMTPUTF8 on MAIL. */
	if (!tx->mail.smtputf8) {
		for (const unsigned char *p = (const void *)tx->rcpt.path; *p;
		     p++) {
			if (*p >= 0x80) {
				session_reply_error(s, "553 5.6.7 Non-ASCII "
						    "recipient needs SMTPUTF8");
				return;
			}
		}
	}
	if (relay_gone(s))
		return;
	if (TX_RCPTS(tx) >= s->cfg->max_recipients) {
		/* RFC 5321 §4.5.3.1.10: a temporary failure, the client
		 * sends the rest in another transaction. */
		session_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	/* Behind a RCPT still waiting for the smarthost (upstream
	 * pipelining, smtp_pipeline.c) the state to come back to is that
	 * wait, not S_CMD. */
	s->shared_resume = s->state;
	s->state = S_SHARED_WAIT;
	shared_policy_rate_take(s->host.shared, s->st, RATE_RECIPIENTS,
				sender_policy_rate(s->cfg, &u, true), s->user,
				session_now(s), &s->shared_call, on_rcpt_rated,
				s);
}

static void on_rcpt_rated(void *ctx, enum policy_verdict v)
{
	struct smtp_session *s = ctx;

	s->state = s->shared_resume;
	session_schedule_resume(s);
	if (v == POLICY_UNAVAILABLE) {
		session_refuse_unavailable(s, "451");
		return;
	}
	if (v == POLICY_REFUSED) {
		metrics_throttled(METRICS_LIMIT_RECIPIENT_RATE);
		saudit(s, LOG_LVL_NOTICE, "rate-limit", "user", s->user,
		       "limit", "recipients");
		session_reply(s, "450 4.7.1 Recipient rate limit exceeded, try "
			      "again later");
		return;
	}
	/* The smarthost may have gone while Redis was asked. */
	if (relay_gone(s))
		return;
	if (s->tx->mail_held)
		mail_send_late(s);
	if (s->tx->mail_refusal != NULL && s->pending == P_NONE) {
		/* The smarthost's refusal of the MAIL is known: no use
		 * asking it about this recipient. */
		s->tx->n_rcpt_tried++;
		s->tx->n_rcpt_answered++;
		reply_relayed(s, s->tx->mail_refusal);
		return;
	}
	s->tx->n_rcpt_tried++;
	smtp_pipe_expect(s, P_RCPT);
	relay_rcpt(s->relay, &s->tx->rcpt);
}

/* The header section has ended (data_filter.h): From: and Sender: are
 * decided before any of it goes to the smarthost. */
static bool header_check(const struct header_scan *hs, void *ctx)
{
	struct smtp_session *s = ctx;
	struct sender_user u = session_user(s);
	const char *problem = sender_policy_header(hs, &u, s->tx->refusal,
						   sizeof(s->tx->refusal));

	if (problem == NULL)
		return true;
	if (problem != s->tx->refusal)
		snprintf(s->tx->refusal, sizeof(s->tx->refusal), "%s", problem);
	return false;
}

static void data_emit(const char *buf, size_t len, void *ctx)
{
	struct smtp_session *s = ctx;

	if (s->relay != NULL && !s->tx->relay_lost)
		relay_data_write(s->relay, buf, len);
}

/* The smarthost said 354: the filter and our header lines, composed
 * now that the recipients' replies (pipelined before DATA) are in. */
static void data_begin(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	char prepend[MESSAGE_TAG_MAX];
	struct strbuf sb;
	struct message_tag tag;

	if (tx == NULL || s->relay == NULL) {
		/* A 354 without a transaction: not a smarthost to trust. */
		relay_abort(&s->relay);
		session_reply(s, "451 4.4.1 Smarthost unavailable, try again "
			      "later");
		return;
	}
	tag = (struct message_tag){
		.hostname = s->cfg->hostname,
		.helo = s->helo_name,
		.client_ip = s->client_ip,
		.session_id = s->id,
		.message_no = s->n_messages + 1,
		.tls_version = conn_tls_version(s->conn),
		.tls_cipher = conn_tls_cipher(s->conn),
		.user = s->user,
		.rcpt = tx->n_rcpt == 1 ? tx->first_rcpt : NULL,
		.identity_header = s->cfg->identity_header,
		.now = time(NULL),
	};
	strbuf_init(&sb, prepend, sizeof(prepend));
	if (message_tag_headers(&tag, &sb) < 0) {
		slog(s, LOG_LVL_ERR, "our header lines do not fit in %u octets",
		     MESSAGE_TAG_MAX);
		relay_abort(&s->relay);
		session_reply(s, "451 4.3.0 Local error, try again later");
		return;
	}
	data_filter_free(&tx->df);
	tx->df = data_filter_new(s->cfg->bare_newline,
				 s->cfg->max_message_size, strbuf_str(&sb),
				 s->cfg->identity_header, data_emit, s);
	if (sender_policy_checks_header(s->cfg))
		data_filter_set_check(tx->df, header_check, s);
	tx->relay_lost = false;
	tx->data_start = session_now(s);
	s->state = S_DATA;
	conn_set_input_size(s->conn, SESSION_DATA_BUF);
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* The table has checked TLS, AUTH, the transaction, a recipient (or one
 * in flight) and that DATA has no arguments. */
void smtp_tx_data(struct smtp_session *s, const char *args)
{
	(void)args;
	if (relay_gone(s)) {
		metrics_message_refused(METRICS_REFUSED_SMARTHOST_UNAVAILABLE);
		return;
	}
	smtp_pipe_expect(s, P_DATA);
	relay_data(s->relay);
}

void smtp_tx_rset(struct smtp_session *s, const char *args)
{
	(void)args;
	if (s->relay != NULL && s->tx != NULL && s->tx->open) {
		s->pending = P_RSET;
		s->state = S_RELAY_WAIT;
		relay_rset(s->relay);
		return;
	}
	smtp_tx_free(&s->tx);
	session_reply(s, "250 2.0.0 Ok");
}

/* The end of data has been read: the verdict. */
static void data_ended(struct smtp_session *s, enum data_filter_status st)
{
	struct smtp_tx *tx = s->tx;
	const char *why;

	s->state = S_CMD;
	conn_set_input_size(s->conn, SESSION_INPUT_BUF);
	session_audit_command_is(s, "END-OF-MESSAGE");
	conn_set_deadline(s->conn, s->cfg->command_timeout_usec);
	if (tx->relay_lost) {
		metrics_message_refused(METRICS_REFUSED_SMARTHOST_UNAVAILABLE);
		saudit(s, LOG_LVL_WARNING, "message-refused", "user", s->user,
		       "from", tx->mail.path,
		       "reason", "smarthost lost during DATA");
		smtp_tx_free(&s->tx);
		session_reply(s, "451 4.4.1 Smarthost connection lost, try "
			      "again later");
		return;
	}
	if (st == DATA_FILTER_DONE) {
		s->pending = P_DOT;
		s->state = S_RELAY_WAIT;
		conn_set_deadline(s->conn, 0);
		relay_data_end(s->relay);
		return;
	}
	/* Never end the data upstream: the smarthost drops the unfinished
	 * message with the connection. */
	relay_abort(&s->relay);
	if (st == DATA_FILTER_REFUSED) {
		metrics_message_refused(METRICS_REFUSED_SENDER);
		saudit(s, LOG_LVL_NOTICE, "sender-refused", "user", s->user,
		       "from", tx->mail.path,
		       "message_id", data_filter_message_id(tx->df),
		       "reason", tx->refusal);
		session_reply(s, "553 5.7.1 %s", tx->refusal);
		smtp_tx_free(&s->tx);
		return;
	}
	why = st == DATA_FILTER_NUL ? "NUL character" :
	      st == DATA_FILTER_TOO_BIG ? "too big" : "bare CR or LF";
	metrics_message_refused(st == DATA_FILTER_NUL ? METRICS_REFUSED_NUL :
				st == DATA_FILTER_TOO_BIG ? METRICS_REFUSED_SIZE :
				METRICS_REFUSED_BARE_NEWLINE);
	saudit(s, LOG_LVL_NOTICE, "message-refused", "user", s->user,
	       "from", tx->mail.path, "reason", why);
	smtp_tx_free(&s->tx);
	if (st == DATA_FILTER_NUL)
		session_reply(s, "550 5.6.0 Message contains NUL characters");
	else if (st == DATA_FILTER_TOO_BIG)
		session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
	else
		session_reply(s, "550 5.5.2 Message contains bare CR or LF "
			      "(RFC 5321 section 2.3.8)");
}

void smtp_tx_data_process(struct smtp_session *s)
{
	struct line_reader *lr = conn_input(s->conn);
	enum data_filter_status st;
	const char *buf;
	size_t len, used;

	for (int i = 0; i < TX_CHUNKS_PER_RUN; i++) {
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
		st = data_filter_feed(s->tx->df, buf, len, &used);
		line_reader_consume(lr, used);
		if (st == DATA_FILTER_MORE) {
			conn_set_deadline(s->conn, s->cfg->data_timeout_usec);
			continue;
		}
		data_ended(s, st);
		return;
	}
	session_schedule_resume(s);
}
