#include "autoconf.h"

#include <string.h>

#include "auth_proto.h"
#include "message_tag.h"

/* Client-chosen strings go into a structured header: keep them to
 * characters that cannot end a comment or a line (';' too for the EHLO
 * name, which stands before the date). */
static void put_safe(struct strbuf *sb, const char *in, size_t max,
		     bool helo)
{
	for (size_t i = 0; in[i] != '\0' && i < max; i++) {
		char c = in[i];
		bool ok = c >= ' ' && c <= '~' && c != '(' && c != ')' &&
			  c != '\\' && (!helo || (c != ' ' && c != ';'));

		strbuf_addc(sb, ok ? c : '?');
	}
}

int message_tag_headers(const struct message_tag *t, struct strbuf *sb)
{
	const char *hdr = t->identity_header;
	char date[64];
	struct tm tm;

	/* identity_header = (empty): no such header, not ": USER". */
	if (hdr != NULL && hdr[0] == '\0')
		hdr = NULL;
	localtime_r(&t->now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	strbuf_add(sb, "Received: from ");
	put_safe(sb, t->helo, 79, true);
	strbuf_printf(sb, " ([%s])\r\n"
		      "\tby %s (authrelay) with ESMTPSA id %lu.%lu\r\n"
		      "\t(version=%s cipher=%s)\r\n"
		      "\t(Authenticated sender: ",
		      t->client_ip, t->hostname, t->session_id, t->message_no,
		      t->tls_version ? t->tls_version : "none",
		      t->tls_cipher ? t->tls_cipher : "none");
	put_safe(sb, t->user, AUTH_USER_MAX, false);
	strbuf_add(sb, ")");
	/* RFC 5321 §4.4: "for" only with a single recipient. */
	if (t->rcpt != NULL && strpbrk(t->rcpt, "\r\n") == NULL)
		strbuf_printf(sb, "\r\n\tfor <%s>", t->rcpt);
	strbuf_printf(sb, ";\r\n\t%s\r\n", date);
	if (hdr != NULL) {
		strbuf_printf(sb, "%s: ", hdr);
		put_safe(sb, t->user, AUTH_USER_MAX, false);
		strbuf_add(sb, "\r\n");
	}
	return strbuf_truncated(sb) ? -1 : 0;
}
