#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <systemd/sd-journal.h>

#include "audit.h"
#include "strbuf.h"
#include "xalloc.h"

/* Room kept at the end of the text line for " omitted=N". */
#define AUDIT_OMITTED_ROOM 24

/* An octet the text form takes as it is: not a quote or backslash
 * (escaped), nor a control character, which would end or forge a line
 * ('?' instead). */
static bool plain_octet(unsigned char c)
{
	return c >= 0x20 && c != 0x7f && c != '"' && c != '\\';
}

/* key=value for the text form; quoted when it has spaces, quotes, '='
 * or is empty, so a line splits back into its fields. Into tmp first:
 * a field goes into the line whole or not at all (false). */
static bool put_kv(struct strbuf *sb, struct strbuf *tmp, const char *key,
		   const char *value)
{
	bool quote = value[0] == '\0' || strpbrk(value, " \t\"=\\") != NULL;
	const char *p = value;

	strbuf_reset(tmp);
	strbuf_addc(tmp, ' ');
	strbuf_add(tmp, key);
	strbuf_add(tmp, quote ? "=\"" : "=");
	/* Runs of plain octets at once; one call per octet was most of
	 * the cost of a message's record. */
	for (;;) {
		size_t n = 0;

		while (p[n] != '\0' && plain_octet((unsigned char)p[n]))
			n++;
		strbuf_addn(tmp, p, n);
		p += n;
		if (*p == '\0')
			break;
		if (*p == '"' || *p == '\\') {
			strbuf_addc(tmp, '\\');
			strbuf_addc(tmp, *p);
		} else {
			strbuf_addc(tmp, '?');
		}
		p++;
	}
	if (quote)
		strbuf_addc(tmp, '"');
	if (strbuf_truncated(tmp) ||
	    strbuf_len(tmp) + AUDIT_OMITTED_ROOM > strbuf_room(sb))
		return false;
	strbuf_add(sb, strbuf_str(tmp));
	return true;
}

/* Journal field names: upper case, digits, underscore. */
static void field_name(const char *key, char *name, size_t size)
{
	size_t j;

	for (j = 0; key[j] != '\0' && j < size - 1; j++) {
		char c = key[j];

		name[j] = (c >= 'a' && c <= 'z') ? (char)(c - 32) :
			  ((c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9')) ? c : '_';
	}
	name[j] = '\0';
}

static void journal_send(enum log_level level, const char *event,
			 const char *line, const struct audit_kv *kv, size_t n)
{
	struct iovec *iov = xmalloc((n + 4) * sizeof(*iov));
	char **fields = xmalloc((n + 4) * sizeof(*fields));
	size_t k = 0;

	fields[k++] = xasprintf("MESSAGE=%s", line);
	fields[k++] = xasprintf("PRIORITY=%d", (int)level);
	fields[k++] = xstrdup("SYSLOG_IDENTIFIER=authrelay");
	fields[k++] = xasprintf("AUTHRELAY_EVENT=%s", event);
	for (size_t i = 0; i < n; i++) {
		char name[64];

		if (kv[i].value == NULL)
			continue;
		field_name(kv[i].key, name, sizeof(name));
		fields[k++] = xasprintf("AUTHRELAY_%s=%.*s", name,
					AUDIT_FIELD_MAX, kv[i].value);
	}
	for (size_t i = 0; i < k; i++) {
		iov[i].iov_base = fields[i];
		iov[i].iov_len = strlen(fields[i]);
	}
	sd_journal_sendv(iov, (int)k);
	for (size_t i = 0; i < k; i++)
		free(fields[i]);
	free(fields);
	free(iov);
}

void audit_event(enum log_level level, const char *event,
		 const struct audit_kv *kv, size_t n)
{
	char *line = xmalloc(AUDIT_LINE_MAX);
	char field[AUDIT_FIELD_MAX + 64];
	struct strbuf sb, tmp;
	size_t omitted = 0;

	strbuf_init(&sb, line, AUDIT_LINE_MAX);
	strbuf_init(&tmp, field, sizeof(field));
	strbuf_add(&sb, event);
	for (size_t i = 0; i < n; i++)
		if (kv[i].value != NULL &&
		    !put_kv(&sb, &tmp, kv[i].key, kv[i].value))
			omitted++;
	if (omitted > 0)
		strbuf_printf(&sb, " omitted=%zu", omitted);
	if (log_to_journal())
		journal_send(level, event, strbuf_str(&sb), kv, n);
	else
		log_msg(level, "%s", strbuf_str(&sb));
	free(line);
}

void audit(enum log_level level, const char *event, ...)
{
	struct audit_kv kv[AUDIT_MAX_FIELDS];
	size_t n = 0;
	va_list ap;
	const char *key;

	va_start(ap, event);
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);

		if (n < AUDIT_MAX_FIELDS) {
			kv[n].key = key;
			kv[n].value = value;
			n++;
		}
	}
	va_end(ap);
	audit_event(level, event, kv, n);
}
