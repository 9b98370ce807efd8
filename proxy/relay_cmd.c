/* The commands of a mail transaction towards the smarthost (relay.h):
 * MAIL, RCPT, RSET, DATA and the message data, rebuilt from the parsed
 * fields, never copied from the client's line. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "relay.h"
#include "relay_int.h"
#include "strbuf.h"

/* Data queued for the smarthost past this stops reading from the client. */
#define RELAY_DATA_HIGH (256 * 1024)

/* xtext (RFC 3461 §4): '+', '=', controls and non-ASCII as "+XX". */
void relay_xtext(struct strbuf *sb, const char *in)
{
	for (const unsigned char *p = (const void *)in; *p; p++) {
		if (*p < '!' || *p > '~' || *p == '+' || *p == '=')
			strbuf_printf(sb, "+%02X", *p);
		else
			strbuf_addc(sb, (char)*p);
	}
}

int relay_mail(struct relay *r, const struct smtp_mail_args *m,
	       struct relay_reply *rep)
{
	char params[1200];
	struct strbuf sb;

	if (m->smtputf8 && !r->caps.smtputf8) {
		rep->code = 553;
		snprintf(rep->enhanced, sizeof(rep->enhanced), "5.6.7");
		snprintf(rep->text, sizeof(rep->text),
			 "The smarthost does not support SMTPUTF8");
		return -1;
	}
	strbuf_init(&sb, params, sizeof(params));
	if (m->has_size && r->caps.size)
		strbuf_printf(&sb, " SIZE=%llu", (unsigned long long)m->size);
	if (m->body == SMTP_BODY_8BITMIME && r->caps.eightbitmime)
		strbuf_add(&sb, " BODY=8BITMIME");
	else if (m->body == SMTP_BODY_7BIT && r->caps.eightbitmime)
		strbuf_add(&sb, " BODY=7BIT");
	if (m->smtputf8)
		strbuf_add(&sb, " SMTPUTF8");
	if (r->caps.dsn && m->ret[0] != '\0')
		strbuf_printf(&sb, " RET=%s", m->ret);
	if (r->caps.dsn && m->envid[0] != '\0')
		strbuf_printf(&sb, " ENVID=%s", m->envid);
	relay_cache_keep_mail(r, m);
	if (r->authenticated) {
		/* RFC 4954 §5: who submitted it, never the client's claim. */
		if (r->address != NULL) {
			strbuf_add(&sb, " AUTH=");
			relay_xtext(&sb, r->address);
		} else {
			strbuf_add(&sb, " AUTH=<>");
		}
	}
	relay_send_line(r, R_CMD, r->cfg->command_timeout_usec, "MAIL FROM:<%s>%s",
		  m->path, params);
	return 0;
}

void relay_rcpt(struct relay *r, const struct smtp_rcpt_args *rc)
{
	char params[SMTP_XTEXT_MAX + 100];
	struct strbuf sb;

	strbuf_init(&sb, params, sizeof(params));
	if (r->caps.dsn && rc->notify[0] != '\0')
		strbuf_printf(&sb, " NOTIFY=%s", rc->notify);
	if (r->caps.dsn && rc->orcpt[0] != '\0')
		strbuf_printf(&sb, " ORCPT=%s", rc->orcpt);
	relay_send_line(r, R_CMD, r->cfg->command_timeout_usec, "RCPT TO:<%s>%s",
		  rc->path, params);
}

void relay_rset(struct relay *r)
{
	relay_send_line(r, R_CMD, r->cfg->command_timeout_usec, "RSET");
}

void relay_data(struct relay *r)
{
	r->data_full = false;
	relay_send_line(r, R_CMD, r->cfg->command_timeout_usec, "DATA");
}

void relay_data_write(struct relay *r, const char *buf, size_t len)
{
	conn_write(r->conn, buf, len);
	if (conn_output_pending(r->conn) > RELAY_DATA_HIGH)
		r->data_full = true;
	/* A smarthost that stops reading is cut off like a client. */
	conn_set_deadline(r->conn, r->cfg->data_timeout_usec);
}

bool relay_data_full(const struct relay *r)
{
	return r->data_full;
}

void relay_data_end(struct relay *r)
{
	/* RFC 5321 §4.1.1.4: the one and only end of data. */
	relay_send_line(r, R_DOT, r->cfg->data_timeout_usec, ".");
}
