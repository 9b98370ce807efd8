#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include <systemd/sd-journal.h>

#include "audit.h"
#include "strbuf.h"

#define AUDIT_LINE_MAX 2048

/* key=value for the text form; quoted when it has spaces, quotes, '='
 * or is empty, so a line splits back into its fields. A value cut at
 * the end of the line keeps its closing quote. */
static void put_kv(struct strbuf *sb, const char *key, const char *value)
{
	bool quote = value[0] == '\0' || strpbrk(value, " \t\"=\\") != NULL;

	strbuf_printf(sb, " %s=%s", key, quote ? "\"" : "");
	for (const char *p = value; *p != '\0' && strbuf_room(sb) > 2; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"' || c == '\\')
			strbuf_addc(sb, '\\');
		/* Control characters would end or forge a line. */
		strbuf_addc(sb, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
	}
	if (quote)
		strbuf_addc(sb, '"');
}

void audit_event(enum log_level level, const char *event,
		 const struct audit_kv *kv, size_t n)
{
	char line[AUDIT_LINE_MAX];
	struct strbuf sb;

	if (n > AUDIT_MAX_FIELDS)
		n = AUDIT_MAX_FIELDS;
	strbuf_init(&sb, line, sizeof(line));
	strbuf_add(&sb, event);
	for (size_t i = 0; i < n; i++)
		if (kv[i].value != NULL)
			put_kv(&sb, kv[i].key, kv[i].value);
	if (!log_to_journal()) {
		log_msg(level, "%s", line);
		return;
	}

	struct iovec iov[AUDIT_MAX_FIELDS + 4];
	char message[AUDIT_LINE_MAX + 16];
	char fields[AUDIT_MAX_FIELDS + 4][AUDIT_LINE_MAX / 2];
	size_t k = 1;

	snprintf(message, sizeof(message), "MESSAGE=%s", line);
	snprintf(fields[k], sizeof(fields[k]), "PRIORITY=%d", (int)level);
	k++;
	snprintf(fields[k], sizeof(fields[k]), "SYSLOG_IDENTIFIER=authrelay");
	k++;
	snprintf(fields[k], sizeof(fields[k]), "AUTHRELAY_EVENT=%s", event);
	k++;
	for (size_t i = 0; i < n; i++) {
		char name[64];
		size_t j;

		if (kv[i].value == NULL)
			continue;
		/* Journal field names: upper case, digits, underscore. */
		for (j = 0; kv[i].key[j] != '\0' && j < sizeof(name) - 1; j++) {
			char c = kv[i].key[j];

			name[j] = (c >= 'a' && c <= 'z') ? (char)(c - 32) :
				  ((c >= 'A' && c <= 'Z') ||
				   (c >= '0' && c <= '9')) ? c : '_';
		}
		name[j] = '\0';
		snprintf(fields[k], sizeof(fields[k]), "AUTHRELAY_%s=%s", name,
			 kv[i].value);
		k++;
	}
	iov[0].iov_base = message;
	iov[0].iov_len = strlen(message);
	for (size_t i = 1; i < k; i++) {
		iov[i].iov_base = fields[i];
		iov[i].iov_len = strlen(fields[i]);
	}
	sd_journal_sendv(iov, (int)k);
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
