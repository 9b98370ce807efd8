/* The session's audit records that follow what the client is told: a
 * record for every reply of class 4 or 5, written where every reply
 * goes out (session_reply), so no refusal can miss it; and the message
 * record, with each recipient and the answer it got. The command a
 * record names never carries AUTH data (audit_cmd.h). */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_cmd.h"
#include "data_filter.h"
#include "smtp_reply.h"
#include "smtp_session.h"
#include "smtp_session_int.h"
#include "xalloc.h"

/* Refused recipients listed in one message record; past this they are
 * counted (rcpts_unlisted=). Accepted ones are bounded by
 * max_recipients and always listed. */
#define TX_REFUSED_LISTED_MAX 100
/* The message record's fields besides its to= ones. */
#define MESSAGE_FIELDS 14

void session_audit_command(struct smtp_session *s, const char *line,
			   size_t len)
{
	(void)audit_cmd_text(line, len, s->audit_cmd, sizeof(s->audit_cmd));
}

void session_audit_command_is(struct smtp_session *s, const char *name)
{
	size_t n = name != NULL ? strnlen(name, sizeof(s->audit_cmd) - 1) : 0;

	memcpy(s->audit_cmd, name != NULL ? name : "", n);
	s->audit_cmd[n] = '\0';
}

static void note_rcpt(struct smtp_tx *tx, const struct smtp_reply *rep)
{
	struct tx_rcpt *r;

	tx->rcpt_due = false;
	if (rep->code / 100 != 2) {
		if (tx->n_refused_listed >= TX_REFUSED_LISTED_MAX) {
			tx->rcpts_unlisted++;
			return;
		}
		tx->n_refused_listed++;
	}
	if (tx->n_rcpts == tx->rcpts_cap) {
		tx->rcpts_cap = tx->rcpts_cap ? tx->rcpts_cap * 2 : 8;
		tx->rcpts = xreallocarray(tx->rcpts, tx->rcpts_cap,
					  sizeof(*tx->rcpts));
	}
	r = &tx->rcpts[tx->n_rcpts++];
	r->path = xstrdup(tx->rcpt.path);
	r->code = rep->code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", rep->enhanced);
}

void session_audit_reply(struct smtp_session *s, const char *line,
			 size_t len)
{
	struct smtp_reply rep;
	char code[32];

	/* Neither a recipient's answer nor a refusal: nothing to note (a
	 * multiline reply has one code on every line). */
	if (len > 0 && line[0] < '4' && (s->tx == NULL || !s->tx->rcpt_due))
		return;
	smtp_reply_reset(&rep);
	/* A multiline reply is one reply: its last line counts. */
	if (smtp_reply_line(&rep, line, len, NULL) != SMTP_REPLY_DONE)
		return;
	if (s->tx != NULL && s->tx->rcpt_due)
		note_rcpt(s->tx, &rep);
	if (rep.code < 400)
		return;
	snprintf(code, sizeof(code), "%d %s", rep.code, rep.enhanced);
	saudit(s, LOG_LVL_NOTICE, "reply", "user", s->user[0] ? s->user : NULL,
	       "command", s->audit_cmd[0] ? s->audit_cmd : NULL,
	       "reply", code, "reply_text", rep.text,
	       "smarthost", s->relayed_reply && s->relay != NULL ?
			    relay_host(s->relay) : NULL);
}

void session_audit_message(struct smtp_session *s,
			   const struct relay_reply *rep)
{
	struct smtp_tx *tx = s->tx;
	size_t n = 0, n_kv = MESSAGE_FIELDS + tx->n_rcpts;
	struct audit_kv *kv = xcalloc(n_kv, sizeof(*kv));
	char **to = xcalloc(tx->n_rcpts + 1, sizeof(*to));
	char rcpts[16], unlisted[24], size[24], code[32], ms[24];
	const char *qid;

	snprintf(rcpts, sizeof(rcpts), "%u", tx->n_rcpt);
	snprintf(unlisted, sizeof(unlisted), "%lu", tx->rcpts_unlisted);
	snprintf(size, sizeof(size), "%llu",
		 (unsigned long long)(tx->df ? data_filter_size(tx->df) : 0));
	snprintf(code, sizeof(code), "%d %s", rep->code, rep->enhanced);
	snprintf(ms, sizeof(ms), "%llu",
		 (unsigned long long)((session_now(s) - tx->data_start) / 1000));
	/* Postfix, Exchange and most others: "... queued as ID". */
	qid = strstr(rep->text, "queued as ");
#define KV(k, v) (kv[n++] = (struct audit_kv){ (k), (v) })
	KV("session", s->sid);
	KV("client", s->client_ip);
	KV("user", s->user);
	KV("from", tx->mail.path);
	KV("rcpts", rcpts);
	/* Each recipient with its answer: to=ADDRESS,CODE,ENHANCED. */
	for (size_t i = 0; i < tx->n_rcpts; i++) {
		to[i] = xasprintf("%s,%d,%s", tx->rcpts[i].path,
				  tx->rcpts[i].code, tx->rcpts[i].enhanced);
		KV("to", to[i]);
	}
	KV("rcpts_unlisted", tx->rcpts_unlisted ? unlisted : NULL);
	KV("size", size);
	KV("message_id", tx->df ? data_filter_message_id(tx->df) : NULL);
	KV("smarthost", s->relay ? relay_host(s->relay) : NULL);
	KV("reply", code);
	KV("reply_text", rep->text);
	KV("queue_id", qid ? qid + 10 : NULL);
	KV("duration_ms", ms);
#undef KV
	audit_event(rep->code / 100 == 2 ? LOG_LVL_INFO : LOG_LVL_NOTICE,
		    "message", kv, n);
	for (size_t i = 0; i < tx->n_rcpts; i++)
		free(to[i]);
	free(to);
	free(kv);
}

void session_audit_tx_free(struct smtp_tx *tx)
{
	for (size_t i = 0; i < tx->n_rcpts; i++)
		free(tx->rcpts[i].path);
	free(tx->rcpts);
	tx->rcpts = NULL;
	tx->n_rcpts = tx->rcpts_cap = 0;
}
