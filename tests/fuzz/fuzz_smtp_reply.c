/* The smarthost reply parser (proxy/smtp_reply.h) and EHLO keywords.
 * The input is what a smarthost sends: split into lines at LF (a CR
 * before it dropped, as the line reader does), each line longer than
 * 510 octets cut, fed one by one; after each whole reply the parser is
 * reset, as the relay does before its next command.
 *
 * Invariants beyond the sanitizers:
 * - a whole reply has a code 200..599, an enhanced code "C.x.y" of its
 *   class, and a text of at most SMTP_REPLY_TEXT_MAX printable ASCII
 *   octets;
 * - every line of a reply has its code, and a reply has at most
 *   SMTP_REPLY_LINES lines;
 * - the text handed back for EHLO keywords lies within the line. After a
 *   BAD line the relay drops the connection; here the parser is reset
 *   and reading goes on. */
#include "autoconf.h"

#include <string.h>

#include "fuzz.h"
#include "smtp_reply.h"

#define LINE_MAX_ 510

static void check_done(const struct smtp_reply *r)
{
	size_t n = strnlen(r->text, SMTP_REPLY_TEXT_MAX + 1);

	FUZZ_CHECK(r->code >= 200 && r->code <= 599, "code %d", r->code);
	FUZZ_CHECK(r->enhanced[0] == '0' + r->code / 100 &&
		   r->enhanced[1] == '.', "enhanced \"%s\" for %d", r->enhanced,
		   r->code);
	FUZZ_CHECK(n <= SMTP_REPLY_TEXT_MAX, "text of %zu octets", n);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(r->text[i] >= ' ' && r->text[i] <= '~',
			   "text octet 0x%02x", (unsigned char)r->text[i]);
	FUZZ_CHECK(r->lines >= 1 && r->lines <= SMTP_REPLY_LINES, "%u lines",
		   r->lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply rep;
	struct smtp_ehlo_caps caps;
	char line[LINE_MAX_ + 1];
	size_t off = 0;

	if (size > 65536)
		return 0;
	smtp_reply_reset(&rep);
	memset(&caps, 0, sizeof(caps));
	while (off < size) {
		const uint8_t *lf = memchr(data + off, '\n', size - off);
		size_t n = lf ? (size_t)(lf - (data + off)) : size - off;
		size_t next = off + n + (lf != NULL);
		enum smtp_reply_status st;
		const char *text = NULL;
		int code;

		if (n > 0 && data[off + n - 1] == '\r')
			n--;
		if (n > LINE_MAX_)
			n = LINE_MAX_;
		memcpy(line, data + off, n);
		line[n] = '\0';
		off = next;
		st = smtp_reply_line(&rep, line, n, &text);
		if (st == SMTP_REPLY_BAD) {
			smtp_reply_reset(&rep);
			continue;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		       (line[2] - '0');
		FUZZ_CHECK(code == rep.code, "line code %d in a %d reply", code,
			   rep.code);
		FUZZ_CHECK(text != NULL && (text[0] == '\0' ||
					    (text > line && text < line + n)),
			   "text outside the line");
		smtp_ehlo_keyword(text, &caps);
		if (st == SMTP_REPLY_DONE) {
			check_done(&rep);
			smtp_reply_reset(&rep);
		} else {
			FUZZ_CHECK(rep.lines < SMTP_REPLY_LINES + 1,
				   "MORE past the line limit");
		}
	}
	return 0;
}
